namespace Sputnik.Models;

/// <summary>
/// The compressed MLA cache: per layer and position one row of [normalised kv latent (kv_lora_rank) | roped k_pe
/// (qk_rope)], shared by all heads. This is all absorbed attention needs; keys and values are never
/// decompressed. Layout [layer][position][rank + rope] keeps one position of one layer contiguous.
/// </summary>
public sealed class LatentKvCache
{
    private readonly float[][] _rows;

    public LatentKvCache(int layers, int capacity, int rank, int ropeDim)
    {
        Capacity = capacity;
        Rank = rank;
        RopeDim = ropeDim;
        _rows = new float[layers][];
        for (int l = 0; l < layers; l++) _rows[l] = new float[checked((long)capacity * RowLength)];
    }

    public int Capacity { get; }
    public int Rank { get; }
    public int RopeDim { get; }
    public int RowLength => Rank + RopeDim;

    public Span<float> Row(int layer, int pos) => _rows[layer].AsSpan(pos * RowLength, RowLength);

    /// <summary>Rows of positions [0, count) of one layer.</summary>
    public ReadOnlySpan<float> Rows(int layer, int count) => _rows[layer].AsSpan(0, count * RowLength);

    public long Bytes => (long)_rows.Length * Capacity * RowLength * sizeof(float);
}

/// <summary>
/// The reference path's cache: fully decompressed per-head keys [k_nope | k_pe] and values, as plain multi-head
/// attention would store them. Used only to test the absorbed path against.
/// </summary>
public sealed class NaiveMlaCache(int layers, int capacity, int heads, int qkHeadDim, int vHeadDim)
{
    private readonly float[][] _keys = Enumerable.Range(0, layers).Select(_ => new float[checked((long)capacity * heads * qkHeadDim)]).ToArray();
    private readonly float[][] _values = Enumerable.Range(0, layers).Select(_ => new float[checked((long)capacity * heads * vHeadDim)]).ToArray();

    public int KeyRow => heads * qkHeadDim;
    public int ValueRow => heads * vHeadDim;
    public Span<float> Key(int layer, int pos) => _keys[layer].AsSpan(pos * KeyRow, KeyRow);
    public Span<float> Value(int layer, int pos) => _values[layer].AsSpan(pos * ValueRow, ValueRow);
    public long Bytes => (long)_keys.Length * capacity * (KeyRow + ValueRow) * sizeof(float);
}
