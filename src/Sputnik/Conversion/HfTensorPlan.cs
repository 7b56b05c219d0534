using System.Numerics.Tensors;
using Sputnik.Models;

namespace Sputnik.Conversion;

/// <summary>
/// The GGUF tensors a conversion will write, in file order, each with a producer of its rows as float. An
/// architecture's <see cref="HfConversion"/> fills it from the checkpoint (names from <see cref="TensorNames"/>, the
/// layout transforms its llama.cpp converter applies); <see cref="HfConverter"/> then picks each tensor's type by the
/// quantizer's rules and streams the rows, so nothing is held whole in memory unless a transform needs it.
/// </summary>
internal sealed class HfTensorPlan(HfCheckpoint checkpoint)
{
    /// <summary>One GGUF tensor: ggml dims (columns first) and a producer of row r into a buffer of <see cref="Cols"/> floats.</summary>
    internal sealed record Planned(string Name, long[] Dims, Action<int, float[]> ReadRow)
    {
        public int Cols => (int)Dims[0];
        public int RowCount => (int)(Dims.Aggregate(1L, (a, b) => a * b) / Dims[0]);
    }

    private readonly List<Planned> _tensors = [];

    public HfCheckpoint Checkpoint => checkpoint;

    public IReadOnlyList<Planned> Tensors => _tensors;

    public bool Contains(string name) => _tensors.Exists(t => t.Name == name);

    /// <summary>A tensor whose rows another function produces (split or gathered layouts).</summary>
    public void AddRows(string name, long[] dims, Action<int, float[]> readRow) => _tensors.Add(new Planned(name, dims, readRow));

    /// <summary>A 1-D tensor the architecture computes from config.json (RoPE factors).</summary>
    public void AddValues(string name, float[] values) => AddRows(name, [values.Length], (_, dst) => values.CopyTo(dst, 0));

    /// <summary>
    /// A checkpoint tensor copied as it is (1-D or 2-D; ggml dims are the reverse of its shape). <paramref name="rowMap"/>
    /// reorders rows (llama's Q/K permutation), <paramref name="shift"/> is added to every value (gemma's 1 + w norms),
    /// <paramref name="rows"/> keeps only the first rows of a matrix (an embedding beyond the tokenizer).
    /// </summary>
    public void Add(string name, string hfName, Func<int, int>? rowMap = null, float shift = 0f, int? rows = null)
    {
        var t = checkpoint.Tensor(hfName);
        long[] dims = t.Shape.Length switch
        {
            1 => [t.Shape[0]],
            2 => [t.Shape[1], rows is { } n && n < t.Shape[0] ? n : t.Shape[0]],
            _ => throw new InvalidDataException($"tensor '{hfName}' has {t.Shape.Length} dimensions; expected 1 or 2"),
        };
        int cols = (int)dims[0];
        AddRows(name, dims, (r, dst) =>
        {
            t.File.Read(t, (long)(rowMap?.Invoke(r) ?? r) * cols, dst);
            if (shift != 0f) TensorPrimitives.Add(dst, shift, dst);
        });
    }

    /// <summary>
    /// The model-wide tensors every decoder checkpoint has: model.embed_tokens → token_embd, model.norm → output_norm,
    /// and lm_head → output unless tie_word_embeddings (default <paramref name="tiedByDefault"/>) says the embedding
    /// doubles as it. <paramref name="vocabRows"/> trims the embedding and head to the tokenizer (gemma).
    /// </summary>
    public void AddEmbeddingsAndHead(float normShift = 0f, bool tiedByDefault = false, int? vocabRows = null)
    {
        Add(TensorNames.Weight(TensorNames.TokenEmbd), "model.embed_tokens.weight", rows: vocabRows);
        Add(TensorNames.Weight(TensorNames.OutputNorm), "model.norm.weight", shift: normShift);
        if (!checkpoint.Bool("tie_word_embeddings", tiedByDefault) && checkpoint.HasTensor("lm_head.weight"))
            Add(TensorNames.Weight(TensorNames.Output), "lm_head.weight", rows: vocabRows);
    }

    /// <summary>Stacks each expert's [out, in] matrix (<paramref name="hfPattern"/> formatted with the expert) into ggml dims [in, out, experts].</summary>
    public void AddStackedExperts(string name, string hfPattern, int experts)
    {
        var parts = Enumerable.Range(0, experts).Select(e => checkpoint.Tensor(hfPattern, e)).ToArray();
        long rows = parts[0].Shape[0], cols = parts[0].Shape[1];
        if (parts.Any(t => t.Shape.Length != 2 || t.Shape[0] != rows || t.Shape[1] != cols))
            throw new InvalidDataException($"experts of '{hfPattern}' differ in shape");
        AddRows(name, [cols, rows, experts], (r, dst) =>
        {
            var t = parts[r / rows];
            t.File.Read(t, r % rows * cols, dst);
        });
    }
}
