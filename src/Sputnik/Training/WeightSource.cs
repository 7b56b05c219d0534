using Sputnik.Gguf;
using Sputnik.Models;

namespace Sputnik.Training;

/// <summary>
/// Where a trainable decoder's tensors come from, asked by name in the order the model declares them. From scratch
/// (<see cref="ParamWeights"/>) every tensor is a fresh slice of one F32 <see cref="ParameterBuffer"/>; over a GGUF base
/// for LoRA (<see cref="FrozenBase"/>) matrices stay in the file in its own types and are frozen, norms are copied
/// into the buffer (tiny, and their gradients are simply never applied), and targeted matrices get a LoRA pair.
/// </summary>
internal interface IWeightSource
{
    /// <summary>Holds the vectors (norms, the MoE selection bias) and, from scratch, every weight.</summary>
    ParameterBuffer P { get; }

    /// <summary>A weight [rows = outputs, cols = inputs].</summary>
    Linear Matrix(string name, int rows, int cols);

    /// <summary>A stack of <paramref name="count"/> expert weights [rows, cols] (ggml dims [cols, rows, count]); the slice is the whole stack when trainable.</summary>
    (Linear[] Experts, ParamSlice? Slice) Experts(string name, int count, int rows, int cols);

    /// <summary>A vector in the buffer (a norm's gain, a selection bias).</summary>
    ParamSlice Vector(string name, int length);

    /// <summary>A frozen bias the file carries (qwen2's q/k/v), or null.</summary>
    float[]? Bias(string name, int length);

    /// <summary>MLA's kv up-projection as one [heads·(nope + v), rank] matrix (the file may carry it split into attn_k_b/attn_v_b).</summary>
    Linear MlaKvB(int layer, int heads, int rank, int nope, int vDim);

    /// <summary>Called once after <see cref="ParameterBuffer.Allocate"/>: fills the vectors of a base model.</summary>
    void Loaded();
}

/// <summary>Every tensor a trainable F32 slice: training from scratch, exactly the layout the buffer always had.</summary>
internal sealed class ParamWeights(ParameterBuffer p) : IWeightSource
{
    public ParameterBuffer P => p;

    public Linear Matrix(string name, int rows, int cols) => Linear.Trainable(p, p.Add(name, rows, cols));

    public (Linear[] Experts, ParamSlice? Slice) Experts(string name, int count, int rows, int cols)
    {
        var s = p.Add(name, count, rows, cols);
        var experts = new Linear[count];
        for (int e = 0; e < count; e++) experts[e] = Linear.Trainable(p, new ParamSlice($"{name}[{e}]", s.Offset + e * rows * cols, [rows, cols]));
        return (experts, s);
    }

    public ParamSlice Vector(string name, int length) => p.Add(name, length);
    public float[]? Bias(string name, int length) => null;
    public Linear MlaKvB(int layer, int heads, int rank, int nope, int vDim) => Matrix(TensorNames.Weight(layer, TensorNames.AttnKvB), heads * (nope + vDim), rank);
    public void Loaded() { }
}

/// <summary>
/// A GGUF base model, frozen, for LoRA: matrices are <see cref="Linear.Frozen"/> views of the mapped file (any type
/// <see cref="WeightMatrix.GetRow"/> decodes), shapes checked against the config; matrices whose kind is in the
/// adapter's targets get their pair declared in <paramref name="lora"/>.
/// </summary>
internal sealed class FrozenBase(GgufFile file, LoraSet? lora) : IWeightSource
{
    private readonly List<ParamSlice> _vectors = [];

    public ParameterBuffer P { get; } = new();

    private GgufTensorInfo Tensor(string name, params long[] dims)
    {
        var info = file.FindTensor(name) ?? throw new GgufFormatException($"{file.Path}: tensor '{name}' is missing");
        if (!info.Dims.SequenceEqual(dims))
            throw new GgufFormatException($"{file.Path}: tensor '{name}' is [{string.Join(", ", info.Dims)}], expected [{string.Join(", ", dims)}]");
        return info;
    }

    public Linear Matrix(string name, int rows, int cols)
    {
        var l = Linear.Frozen(new WeightMatrix(file, Tensor(name, cols, rows), mayInterleave: false), name);
        lora?.Attach(name, [l]);
        return l;
    }

    public (Linear[] Experts, ParamSlice? Slice) Experts(string name, int count, int rows, int cols)
    {
        var experts = TensorSlices.Split3D(file, name, cols, rows, count).Select(w => Linear.Frozen(w, name)).ToArray();
        lora?.Attach(name, experts);
        return (experts, null);
    }

    public ParamSlice Vector(string name, int length)
    {
        Tensor(name, length);
        var s = P.Add(name, length);
        _vectors.Add(s);
        return s;
    }

    public float[]? Bias(string name, int length) => file.FindTensor(name) == null ? null : Floats(Tensor(name, length));

    public Linear MlaKvB(int layer, int heads, int rank, int nope, int vDim)
    {
        string joint = TensorNames.Weight(layer, TensorNames.AttnKvB);
        if (file.FindTensor(joint) != null) return Matrix(joint, heads * (nope + vDim), rank);
        var kb = Floats(Tensor(TensorNames.Weight(layer, TensorNames.AttnKB), nope, rank, heads));
        var vb = Floats(Tensor(TensorNames.Weight(layer, TensorNames.AttnVB), rank, vDim, heads));
        var kvb = new float[heads * (nope + vDim) * rank];
        GgufExport.JoinKvB(kb, vb, kvb, heads, rank, nope, vDim);
        return Linear.FrozenDense(joint, kvb, heads * (nope + vDim), rank);
    }

    /// <summary>output.weight, or token_embd when the model ties them (qwen2-0.5B, the small Qwen3s).</summary>
    public Linear OutputHead(int vocab, int dim)
    {
        string output = TensorNames.Weight(TensorNames.Output);
        return Matrix(file.FindTensor(output) != null ? output : TensorNames.Weight(TensorNames.TokenEmbd), vocab, dim);
    }

    public void Loaded()
    {
        foreach (var s in _vectors) Floats(file.GetTensor(s.Name)).CopyTo(P.W(s));
    }

    private float[] Floats(GgufTensorInfo info)
    {
        var flat = new GgufTensorInfo(info.Name, [info.Columns, info.Rows], info.Type, info.Offset, info.ByteSize) { Shard = info.Shard };
        return new WeightMatrix(file, flat, mayInterleave: false).ToFloatVector();
    }
}
