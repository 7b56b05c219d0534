using System.Numerics.Tensors;
using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>Self-attention weights of one layer: projections, optional Q/K/V biases (qwen2) and output bias (gpt-oss), per-head Q/K norms (qwen3).</summary>
internal sealed class AttentionWeights
{
    public required WeightMatrix Wq, Wk, Wv, Wo;
    public float[]? Bq, Bk, Bv;
    /// <summary>Bias of the output projection (bert's attn_output.bias).</summary>
    public float[]? Bo;
    /// <summary>RMSNorm weights (head size) applied to every head of Q and of K before RoPE.</summary>
    public float[]? QNorm, KNorm;
    /// <summary>
    /// attn_q also yields an output gate per head (rows [query | gate] per head, qwen35): the attention output is
    /// multiplied by sigmoid(gate) before attn_output.
    /// </summary>
    public bool GatedQuery;
}

/// <summary>
/// A position-dependent factor on Q after RoPE, 1 + scale·ln(⌊pos / floorLength⌋ + 1) (llama.cpp's attention
/// temperature, Llama 4 / Ministral 3): 1 up to the first floorLength positions, then slowly growing so attention
/// stays sharp far beyond the trained context.
/// </summary>
internal sealed record QueryTemperature(float Scale, int FloorLength)
{
    public float Factor(int pos) => (float)(Math.Log(Math.Floor((float)pos / FloorLength) + 1.0) * Scale + 1.0);
}

/// <summary>A gated feed-forward: down(act(gate·x) ⊙ up·x).</summary>
internal sealed class FfnWeights
{
    public required WeightMatrix Gate, Up, Down;
}

/// <summary>An ungated feed-forward with biases: down·act(up·x + b_up) + b_down (bert's GELU FFN).</summary>
internal sealed class DenseFfnWeights
{
    public required WeightMatrix Up, Down;
    public float[]? UpBias, DownBias;
}

/// <summary>Routed experts in place of the dense feed-forward: the router and the stacked expert matrices.</summary>
internal sealed class MoeWeights
{
    public required WeightMatrix Router;
    public required WeightMatrix[] Gate, Up, Down;
    /// <summary>ffn_gate_inp.bias, added to the router logits before gating (gpt-oss); null for none.</summary>
    public float[]? RouterBias;
    /// <summary>Per-expert biases and the clamped SwiGLU (gpt-oss); null for plain SwiGLU experts.</summary>
    public ExpertBiases? Biases;
}

// The blocks architectures build their layers from. Each reads the normalised rows in Xb (or the residual X) and
// leaves its output in Xb, so a layer is a plain sequence of calls (see Llama.cs for the reference layer).
internal abstract partial class DecoderModel
{
    /// <summary>
    /// blk.{l}.attn_q/k/v/output, with the optional biases and, when <paramref name="qkNorm"/>, attn_q_norm/attn_k_norm;
    /// with <paramref name="gatedQuery"/> attn_q holds a gate after each head's query (twice the rows).
    /// </summary>
    protected AttentionWeights LoadAttention(int l, bool qkNorm, bool gatedQuery = false)
    {
        var c = Config;
        return new AttentionWeights
        {
            GatedQuery = gatedQuery,
            Wq = Matrix(TensorNames.Weight(l, TensorNames.AttnQ), c.Dim, gatedQuery ? 2 * c.QDim : c.QDim),
            Wk = Matrix(TensorNames.Weight(l, TensorNames.AttnK), c.Dim, c.KvDim),
            Wv = Matrix(TensorNames.Weight(l, TensorNames.AttnV), c.Dim, c.KvDim),
            Wo = Matrix(TensorNames.Weight(l, TensorNames.AttnOutput), c.QDim, c.Dim),
            Bq = OptionalVector(TensorNames.Bias(l, TensorNames.AttnQ), c.QDim),
            Bk = OptionalVector(TensorNames.Bias(l, TensorNames.AttnK), c.KvDim),
            Bv = OptionalVector(TensorNames.Bias(l, TensorNames.AttnV), c.KvDim),
            Bo = OptionalVector(TensorNames.Bias(l, TensorNames.AttnOutput), c.Dim),
            QNorm = qkNorm ? Vector(TensorNames.Weight(l, TensorNames.AttnQNorm), c.HeadDim) : null,
            KNorm = qkNorm ? Vector(TensorNames.Weight(l, TensorNames.AttnKNorm), c.HeadDim) : null,
        };
    }

    /// <summary>attn_qkv split into its Q, K and V rows (and its bias, if any; phi3, nomic-bert), or separate attn_q/k/v as llama.cpp also accepts.</summary>
    protected AttentionWeights LoadFusedAttention(int l)
    {
        var c = Config;
        string qkvName = TensorNames.Weight(l, TensorNames.AttnQkv);
        if (File.FindTensor(qkvName) is null) return LoadAttention(l, qkNorm: false);
        var qkv = RowSplit(qkvName, c.Dim, c.QDim, c.KvDim, c.KvDim);
        var bias = OptionalVector(TensorNames.Bias(l, TensorNames.AttnQkv), c.QDim + 2 * c.KvDim);
        return new AttentionWeights
        {
            Wq = qkv[0], Wk = qkv[1], Wv = qkv[2],
            Wo = Matrix(TensorNames.Weight(l, TensorNames.AttnOutput), c.QDim, c.Dim),
            Bo = OptionalVector(TensorNames.Bias(l, TensorNames.AttnOutput), c.Dim),
            Bq = bias?[..c.QDim], Bk = bias?[c.QDim..(c.QDim + c.KvDim)], Bv = bias?[(c.QDim + c.KvDim)..],
        };
    }

    /// <summary>
    /// Consecutive row ranges of one 2-D weight as matrices of their own, checked against the shape the parts add up
    /// to: a fused projection (phi3's attn_qkv into Q, K, V; its ffn_up into gate and up) then runs through the same
    /// blocks as separate tensors, each part keeping the fast layout and the shared-input hand-off.
    /// </summary>
    protected WeightMatrix[] RowSplit(string name, int cols, params int[] rows)
    {
        var info = File.GetTensor(name);
        long total = rows.Sum(r => (long)r);
        if (info.Columns != cols || info.Rows != total || info.Dims.Skip(2).Any(d => d != 1))
            throw new GgufFormatException($"tensor '{name}' has shape [{string.Join(", ", info.Dims)}], expected [{cols}, {total}]");
        long rowBytes = GgmlTypeInfo.RowBytes(info.Type, cols), start = 0;
        var parts = new WeightMatrix[rows.Length];
        for (int i = 0; i < rows.Length; i++)
        {
            var part = new GgufTensorInfo($"{name}[{start}:{start + rows[i]}]", [cols, rows[i]], info.Type, info.Offset + start * rowBytes, rows[i] * rowBytes);
            parts[i] = Adaptable(new WeightMatrix(File, part), name, (int)start);
            _maxInputBytes = Math.Max(_maxInputBytes, parts[i].InputBytes);
            start += rows[i];
        }
        return parts;
    }

    /// <summary>blk.{l}.ffn_gate/up/down of the dense feed-forward.</summary>
    protected FfnWeights LoadFfn(int l)
    {
        var c = Config;
        return new FfnWeights
        {
            Gate = Matrix(TensorNames.Weight(l, TensorNames.FfnGate), c.Dim, c.FfnDim),
            Up = Matrix(TensorNames.Weight(l, TensorNames.FfnUp), c.Dim, c.FfnDim),
            Down = Matrix(TensorNames.Weight(l, TensorNames.FfnDown), c.FfnDim, c.Dim),
        };
    }

    /// <summary>blk.{l}.ffn_gate_inp and the stacked ffn_*_exps of a routed layer.</summary>
    protected MoeWeights LoadExperts(int l)
    {
        var c = Config;
        int e = c.Moe!.ExpertCount, eff = c.ExpertFfnDim;
        return new MoeWeights
        {
            Router = Matrix(TensorNames.Weight(l, TensorNames.FfnGateInp), c.Dim, e),
            Gate = Experts(TensorNames.Weight(l, TensorNames.FfnGateExps), c.Dim, eff, e),
            Up = Experts(TensorNames.Weight(l, TensorNames.FfnUpExps), c.Dim, eff, e),
            Down = Experts(TensorNames.Weight(l, TensorNames.FfnDownExps), eff, c.Dim, e),
        };
    }

    /// <summary>The slices of a 3-D expert stack, adapters may target.</summary>
    protected WeightMatrix[] Experts(string name, int cols, int rows, int count) =>
        AdaptableExperts(TensorSlices.Split3D(File, name, cols, rows, count, experts: true), name);

    /// <summary>Xb = RMSNorm(X) · weight, row by row.</summary>
    protected void NormRows(DecoderState w, int n, float[] weight) => RmsNormRows(w, n, weight);

    /// <summary>X += Xb (the residual connection).</summary>
    protected static void AddResidual(DecoderState w, int n, int dim)
    {
        var x = w.X.AsSpan(0, n * dim);
        TensorPrimitives.Add(x, w.Xb.AsSpan(0, n * dim), x);
    }

    /// <summary>
    /// Grouped-query self-attention of layer l over the normalised rows in Xb: Q/K/V projections (one prepared input
    /// shared by the three), biases, per-head Q/K norms, RoPE at each row's position, the cache write, attention,
    /// and the output projection into Xb. <paramref name="rope"/> false leaves Q and K unrotated (smollm3's NoPE
    /// layers); <paramref name="temperature"/> scales Q by its position factor after RoPE (mistral3).
    /// </summary>
    protected void SelfAttention(DecoderState w, int l, int n, AttentionWeights a, bool rope = true, QueryTemperature? temperature = null)
    {
        var c = Config;
        int pairs = c.RopeDims / 2;
        bool sliding = WindowOf(l) > 0; // sliding-window layers rotate with their own table (gemma3's local base)
        var seqs = w.Seqs;
        if (a.GatedQuery)
        {
            if (w.QGate.Length < n * 2 * c.QDim) w.QGate = new float[n * 2 * c.QDim];
            ProjectShared(w, w.Xb, n, a.Wq, w.QGate, a.Wk, w.K, a.Wv, w.V);
            SplitQueries(w, n);
        }
        else ProjectShared(w, w.Xb, n, a.Wq, w.Q, a.Wk, w.K, a.Wv, w.V);
        for (int i = 0; i < n; i++)
        {
            var q = w.Q.AsSpan(i * c.QDim, c.QDim);
            var k = w.K.AsSpan(i * c.KvDim, c.KvDim);
            var v = w.V.AsSpan(i * c.KvDim, c.KvDim);
            if (a.Bq != null) TensorPrimitives.Add(q, a.Bq, q);
            if (a.Bk != null) TensorPrimitives.Add(k, a.Bk, k);
            if (a.Bv != null) TensorPrimitives.Add(v, a.Bv, v);
            if (a.QNorm != null) HeadNorms(q, c.Heads, a.QNorm);
            if (a.KNorm != null) HeadNorms(k, c.KvHeads, a.KNorm);
            var seq = seqs == null ? w : (DecoderState)seqs[i];
            // Packed sequences: the row's position in its own sequence, its cache row the batch row.
            bool packed = w.PackedCount > 0;
            int pos = packed ? w.PackedPos[i] : seqs == null ? w.Position + i : seq.Position;
            var cos = (sliding ? seq.SlidingRopeCos : seq.RopeCos).AsSpan(pos * pairs, pairs);
            var sin = (sliding ? seq.SlidingRopeSin : seq.RopeSin).AsSpan(pos * pairs, pairs);
            if (rope)
            {
                for (int h = 0; h < c.Heads; h++) Ops.Rope(q.Slice(h * c.HeadDim, c.RopeDims), cos, sin, c.RopeNeox);
                for (int h = 0; h < c.KvHeads; h++) Ops.Rope(k.Slice(h * c.HeadDim, c.RopeDims), cos, sin, c.RopeNeox);
            }
            if (temperature != null) TensorPrimitives.Multiply(q, temperature.Factor(pos), q);
            seq.Cache.Write(SlotOf(l), packed ? i : pos, k, v);
        }
        Attention(w, l, w.Position, n);
        if (a.GatedQuery) GateOutputs(w, n);
        Project(w, a.Wo, w.AttnOut, n, w.Xb);
        if (a.Bo != null) AddBiasRows(w.Xb, n, a.Bo);
    }

    /// <summary>Xb = down·GELU(up·Xb + b_up) + b_down, GELU as ggml's (tanh approximation through its half table).</summary>
    protected void GeluFfn(DecoderState w, int n, DenseFfnWeights f)
    {
        Project(w, f.Up, w.Xb, n, w.H1);
        if (f.UpBias != null) AddBiasRows(w.H1, n, f.UpBias);
        Pool.For(n * Config.FfnDim, w.GeluBody!, minPerThread: 1 << 15);
        Project(w, f.Down, w.H1, n, w.Xb);
        if (f.DownBias != null) AddBiasRows(w.Xb, n, f.DownBias);
    }

    /// <summary>Adds <paramref name="bias"/> to each of the first n rows of <paramref name="rows"/> (rows of bias.Length).</summary>
    protected static void AddBiasRows(float[] rows, int n, float[] bias)
    {
        for (int i = 0; i < n; i++)
        {
            var row = rows.AsSpan(i * bias.Length, bias.Length);
            TensorPrimitives.Add(row, bias, row);
        }
    }

    /// <summary>The query half of each head of QGate into Q (the gates stay in QGate for <see cref="GateOutputs"/>).</summary>
    private void SplitQueries(DecoderState w, int n)
    {
        int hd = Config.HeadDim, heads = Config.Heads;
        for (int i = 0; i < n; i++)
            for (int h = 0; h < heads; h++)
                w.QGate.AsSpan((i * heads + h) * 2 * hd, hd).CopyTo(w.Q.AsSpan((i * heads + h) * hd, hd));
    }

    /// <summary>AttnOut ⊙= sigmoid(gate), each head by its own gate.</summary>
    private void GateOutputs(DecoderState w, int n)
    {
        int hd = Config.HeadDim, heads = Config.Heads;
        for (int i = 0; i < n; i++)
            for (int h = 0; h < heads; h++)
            {
                var o = w.AttnOut.AsSpan((i * heads + h) * hd, hd);
                var gate = w.QGate.AsSpan((i * heads + h) * 2 * hd + hd, hd);
                for (int d = 0; d < hd; d++) o[d] /= 1f + MathF.Exp(-gate[d]);
            }
        w.ActSource = null;
    }

    /// <summary>Xb = down(SiLU(gate·Xb) ⊙ up·Xb): gate and up in one hand-off.</summary>
    protected void SwiGluFfn(DecoderState w, int n, FfnWeights f)
    {
        ProjectShared(w, w.Xb, n, f.Gate, w.H1, f.Up, w.H3);
        SwiGluRows(w, n * Config.FfnDim);
        Project(w, f.Down, w.H1, n, w.Xb);
    }

    /// <summary>Xb = down(GELU(gate·Xb) ⊙ up·Xb), GELU's tanh approximation (gemma's GeGLU).</summary>
    protected void GeGluFfn(DecoderState w, int n, FfnWeights f)
    {
        ProjectShared(w, w.Xb, n, f.Gate, w.H1, f.Up, w.H3);
        GeGluRows(w, n * Config.FfnDim);
        Project(w, f.Down, w.H1, n, w.Xb);
    }

    /// <summary>Xb = RMSNorm(Xb) · weight in place, row by row: a norm on a block's output before the residual (gemma's post-norms).</summary>
    protected void NormOutputRows(DecoderState w, int n, float[] weight)
    {
        int dim = Config.Dim;
        for (int i = 0; i < n; i++)
        {
            var row = w.Xb.AsSpan(i * dim, dim);
            Ops.RmsNorm(row, weight, Config.RmsEps, row);
        }
        w.ActSource = null;
    }

    /// <summary>
    /// Routed experts over the n normalised rows in Xb: the router (one product for the batch), each row's top-k,
    /// and <see cref="ExpertBatch"/> running every selected expert once over the rows sent to it; the weighted sum
    /// replaces Xb. Decode (n = 1), prefill chunks and multi-sequence steps all take this path.
    /// </summary>
    protected void ExpertsFfn(DecoderState w, int n, MoeWeights m)
    {
        var moe = Config.Moe!;
        int e = moe.ExpertCount, k = moe.ExpertsUsed;
        var s = w.Moe ??= new DecoderState.MoeScratch(Pool, Config);
        s.Reserve(n);
        Project(w, m.Router, w.Xb, n, s.Logits);
        for (int i = 0; i < n; i++)
        {
            var logits = s.Logits.AsSpan(i * e, e);
            if (m.RouterBias != null) TensorPrimitives.Add(logits, m.RouterBias, logits);
            s.Router.Route(logits, default, s.Experts.AsSpan(i * k, k), s.Weights.AsSpan(i * k, k));
        }
        // Reads Xb (gathered per expert first), then overwrites it with the weighted expert outputs.
        s.Batch.RunMoe(m.Gate, m.Up, m.Down, s.Experts.AsSpan(0, n * k), s.Weights.AsSpan(0, n * k), k,
            null, null, null, w.Xb, n, w.Xb, LoraRowsOf(w), biases: m.Biases);
        w.ActSource = null;
    }

    /// <summary>RMSNorm of each head-size slice of one token's Q or K, in place (qwen3's attn_q_norm / attn_k_norm).</summary>
    private void HeadNorms(Span<float> x, int heads, float[] weight)
    {
        int hd = Config.HeadDim;
        for (int h = 0; h < heads; h++)
        {
            var head = x.Slice(h * hd, hd);
            Ops.RmsNorm(head, weight, Config.RmsEps, head);
        }
    }
}
