namespace Sputnik.Training;

/// <summary>One named tensor inside a <see cref="ParameterBuffer"/>: an offset and a shape (row-major, last dim fastest).</summary>
internal sealed record ParamSlice(string Name, int Offset, int[] Shape)
{
    public int Length => Shape.Aggregate(1, (a, b) => a * b);
}

/// <summary>
/// llm.c's malloc_and_point_parameters: every parameter lives in one flat float buffer and every gradient in a
/// second one with the same layout, so AdamW, zero-grad, clipping and checkpoints are single loops over one array.
/// Tensors are named slices; names follow GGUF ("blk.0.attn_q.weight") so export is a straight copy.
/// </summary>
internal sealed class ParameterBuffer
{
    private readonly List<ParamSlice> _slices = [];
    private readonly Dictionary<string, ParamSlice> _byName = new(StringComparer.Ordinal);

    public float[] Data { get; private set; } = [];
    public float[] Grad { get; private set; } = [];
    public IReadOnlyList<ParamSlice> Slices => _slices;
    public int Count { get; private set; }

    /// <summary>Declares a tensor; call <see cref="Allocate"/> after the last one.</summary>
    public ParamSlice Add(string name, params int[] shape)
    {
        if (Data.Length != 0) throw new InvalidOperationException("parameters are already allocated");
        var s = new ParamSlice(name, Count, shape);
        _slices.Add(s);
        _byName.Add(name, s);
        Count = checked(Count + s.Length);
        return s;
    }

    public void Allocate()
    {
        Data = new float[Count];
        Grad = new float[Count];
    }

    public ParamSlice this[string name] => _byName[name];

    public Span<float> W(ParamSlice s) => Data.AsSpan(s.Offset, s.Length);
    public Span<float> G(ParamSlice s) => Grad.AsSpan(s.Offset, s.Length);

    public void ZeroGrad() => Array.Clear(Grad);

    /// <summary>Fills a slice with N(0, std²) (Box–Muller; deterministic for a given Random).</summary>
    public void InitNormal(ParamSlice s, float std, Random rng)
    {
        var w = W(s);
        for (int i = 0; i < w.Length; i++)
        {
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            w[i] = (float)(std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
    }

    public void Fill(ParamSlice s, float value) => W(s).Fill(value);
}
