namespace Sputnik.Models;

/// <summary>
/// Keys and values of every layer for one sequence, F32, laid out [layer][position][kvDim] so one position of
/// one layer is a contiguous row. <see cref="Length"/> is how many positions are filled.
/// </summary>
public sealed class KvCache
{
    private readonly float[][] _keys;
    private readonly float[][] _values;

    public int Capacity { get; }
    public int KvDim { get; }
    public int Length { get; set; }

    public KvCache(int layers, int capacity, int kvDim)
    {
        Capacity = capacity;
        KvDim = kvDim;
        _keys = new float[layers][];
        _values = new float[layers][];
        for (int l = 0; l < layers; l++)
        {
            _keys[l] = new float[(long)capacity * kvDim];
            _values[l] = new float[(long)capacity * kvDim];
        }
    }

    public Span<float> Key(int layer, int pos) => _keys[layer].AsSpan(pos * KvDim, KvDim);
    public Span<float> Value(int layer, int pos) => _values[layer].AsSpan(pos * KvDim, KvDim);

    /// <summary>All keys of a layer for positions [0, count), row-major.</summary>
    public ReadOnlySpan<float> Keys(int layer, int count) => _keys[layer].AsSpan(0, count * KvDim);
    public ReadOnlySpan<float> Values(int layer, int count) => _values[layer].AsSpan(0, count * KvDim);

    public long Bytes => 2L * _keys.Length * Capacity * KvDim * sizeof(float);
}
