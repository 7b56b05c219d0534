namespace Sputnik.Tests.Models;

/// <summary>
/// One RoPE as ggml applies it, for the reference forwards: pair i of the first <paramref name="Dims"/> dims of a head
/// (dims i and i + Dims/2 with NeoX pairing, 2i and 2i + 1 otherwise) turns by pos·base^(−2i/Dims), divided by the
/// pair's factor (LongRoPE, rope_freqs) and by a linear scaling factor; with YaRN, by factor on the pairs below ggml's
/// correction range, blended by its ramp inside it (β_fast 32, β_slow 1); cos and sin scaled by the magnitude.
/// </summary>
internal sealed record ReferenceRope(double Base, int Dims, bool Neox)
{
    public double LinearFactor { get; init; } = 1;
    public float[]? PairFactors { get; init; }
    public double YarnFactor { get; init; } = 1;
    public int YarnOriginalContext { get; init; }
    public double Magnitude { get; init; } = 1;

    /// <summary>The angle of pair <paramref name="i"/> at <paramref name="pos"/> (ggml_rope_yarn_corr_dims, rope_yarn_ramp).</summary>
    public double Theta(int pos, int i)
    {
        double theta = pos * Math.Pow(Base, -2.0 * i / Dims) / (PairFactors?[i] ?? 1) / LinearFactor;
        if (YarnFactor == 1) return theta;
        double Corr(double beta) => Dims * Math.Log(YarnOriginalContext / (beta * 2 * Math.PI)) / (2 * Math.Log(Base));
        double low = Math.Max(0, Math.Floor(Corr(32))), high = Math.Min(Dims - 1, Math.Ceiling(Corr(1)));
        double ramp = 1 - Math.Clamp((i - low) / Math.Max(0.001, high - low), 0, 1);
        return theta / YarnFactor * (1 - ramp) + theta * ramp;
    }

    /// <summary>Rotates the head starting at <paramref name="offset"/> of <paramref name="v"/> in place.</summary>
    public void Apply(double[] v, int offset, int pos)
    {
        int half = Dims / 2;
        for (int i = 0; i < half; i++)
        {
            double t = Theta(pos, i), cos = Math.Cos(t) * Magnitude, sin = Math.Sin(t) * Magnitude;
            int j0 = offset + (Neox ? i : 2 * i), j1 = Neox ? j0 + half : j0 + 1;
            double a = v[j0], b = v[j1];
            v[j0] = a * cos - b * sin;
            v[j1] = a * sin + b * cos;
        }
    }
}

/// <summary>
/// The textbook double-precision decoder the model tests compare the engine against: weights by GGUF name (row-major,
/// [rows][cols]), the blocks llama.cpp builds its graphs from written out plainly (matrix-vector product, RMSNorm,
/// SwiGLU, causal grouped attention over a per-layer cache, optionally windowed), and the loop from the token
/// embedding to the logits. Each architecture's reference (TinyQwen2Tests, TinyQwen3, TinyPhi3, TinyGemma3,
/// TinyLlamaVariant, TinyDeepSeek2Tests) is its own layer, written from llama.cpp's src/models/{arch}.cpp, over these.
/// </summary>
internal sealed class ReferenceDecoder
{
    private readonly Dictionary<string, float[]> _t;
    private readonly List<double[]>[] _keys, _values;

    public int Dim { get; }
    public int Vocab { get; }
    public double Eps { get; }

    public ReferenceDecoder(Dictionary<string, float[]> weights, int dim, int vocab, int layers, double eps)
    {
        _t = weights;
        Dim = dim;
        Vocab = vocab;
        Eps = eps;
        _keys = Enumerable.Range(0, layers).Select(_ => new List<double[]>()).ToArray();
        _values = Enumerable.Range(0, layers).Select(_ => new List<double[]>()).ToArray();
    }

    public float[] this[string name] => _t[name];

    public static double[] MatVec(float[] w, int cols, int rows, double[] x, int offset = 0)
    {
        var y = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double s = 0;
            for (int c = 0; c < cols; c++) s += w[offset + r * cols + c] * x[c];
            y[r] = s;
        }
        return y;
    }

    /// <summary>W·x (+ b) of the named weight (rows from <paramref name="offset"/> on: a slice of a fused or stacked tensor).</summary>
    public double[] Linear(string weight, int cols, int rows, double[] x, string? bias = null, int offset = 0)
    {
        var y = MatVec(_t[weight], cols, rows, x, offset);
        if (bias != null) for (int i = 0; i < rows; i++) y[i] += _t[bias][i];
        return y;
    }

    public static double[] RmsNorm(double[] x, float[] g, double eps)
    {
        double k = 1 / Math.Sqrt(x.Sum(v => v * v) / x.Length + eps);
        return x.Select((v, i) => v * k * g[i]).ToArray();
    }

    public double[] RmsNorm(double[] x, string weight) => RmsNorm(x, _t[weight], Eps);

    /// <summary>RMSNorm over each head of <paramref name="v"/> in place (qwen3's and gemma3's Q/K norms).</summary>
    public void NormHeads(double[] v, int heads, int headDim, string weight)
    {
        for (int h = 0; h < heads; h++)
            RmsNorm(v[(h * headDim)..((h + 1) * headDim)], _t[weight], Eps).CopyTo(v, h * headDim);
    }

    public static void RopeHeads(double[] v, int heads, int headDim, int pos, ReferenceRope rope)
    {
        for (int h = 0; h < heads; h++) rope.Apply(v, h * headDim, pos);
    }

    public static double Silu(double x) => x / (1 + Math.Exp(-x));

    /// <summary>down(act(gate·x) ⊙ up·x); <paramref name="expert"/> picks a slice of stacked expert tensors.</summary>
    public double[] GatedFfn(string gate, string up, string down, int ffn, double[] x, Func<double, double>? act = null, int expert = 0, int dim = 0)
    {
        if (dim == 0) dim = Dim;
        var g = MatVec(_t[gate], dim, ffn, x, expert * ffn * dim);
        var u = MatVec(_t[up], dim, ffn, x, expert * ffn * dim);
        act ??= Silu;
        return MatVec(_t[down], ffn, dim, g.Select((gv, i) => act(gv) * u[i]).ToArray(), expert * dim * ffn);
    }

    /// <summary>The SwiGLU of layer prefix p ("blk.N."): ffn_gate, ffn_up, ffn_down.</summary>
    public double[] SwiGlu(string p, int ffn, double[] x) => GatedFfn(p + "ffn_gate.weight", p + "ffn_up.weight", p + "ffn_down.weight", ffn, x);

    /// <summary>
    /// Caches layer <paramref name="layer"/>'s k and v for this position, then softmax(q·k·scale)·v per head over the
    /// cache (the last <paramref name="window"/> positions when set); query head h reads KV head h / (heads / kvHeads).
    /// The scale defaults to 1/√(key head size).
    /// </summary>
    public double[] Attend(int layer, double[] q, double[] k, double[] v, int heads, int kvHeads, int kHeadDim, int vHeadDim = 0,
        int window = 0, double? scale = null)
    {
        if (vHeadDim == 0) vHeadDim = kHeadDim;
        _keys[layer].Add(k);
        _values[layer].Add(v);
        int last = _keys[layer].Count - 1, first = window > 0 ? Math.Max(0, last - window + 1) : 0;
        double kq = scale ?? 1 / Math.Sqrt(kHeadDim);
        var att = new double[heads * vHeadDim];
        for (int hh = 0; hh < heads; hh++)
        {
            int kv = hh / (heads / kvHeads);
            var scores = new double[last + 1 - first];
            for (int t = first; t <= last; t++)
            {
                double s = 0;
                for (int i = 0; i < kHeadDim; i++) s += q[hh * kHeadDim + i] * _keys[layer][t][kv * kHeadDim + i];
                scores[t - first] = s * kq;
            }
            double max = scores.Max();
            var e = scores.Select(s => Math.Exp(s - max)).ToArray();
            double sum = e.Sum();
            for (int t = first; t <= last; t++)
                for (int i = 0; i < vHeadDim; i++) att[hh * vHeadDim + i] += e[t - first] / sum * _values[layer][t][kv * vHeadDim + i];
        }
        return att;
    }

    public static void Add(double[] x, double[] y)
    {
        for (int i = 0; i < x.Length; i++) x[i] += y[i];
    }

    /// <summary>
    /// Runs <paramref name="tokens"/> from position 0 (fresh caches): each token's embedding row (× <paramref name="embedScale"/>)
    /// goes through <paramref name="layer"/>(l, pos, x) for every layer, x updated in place; returns the logits after
    /// the last token: output_norm, then output (or the token embedding when <paramref name="tied"/>).
    /// </summary>
    public double[] Logits(int[] tokens, Action<int, int, double[]> layer, double embedScale = 1, bool tied = false)
    {
        foreach (var c in _keys.Concat(_values)) c.Clear();
        double[] x = [];
        for (int pos = 0; pos < tokens.Length; pos++)
        {
            x = _t["token_embd.weight"].Skip(tokens[pos] * Dim).Take(Dim).Select(v => v * embedScale).ToArray();
            for (int l = 0; l < _keys.Length; l++) layer(l, pos, x);
        }
        return MatVec(tied ? _t["token_embd.weight"] : _t["output.weight"], Dim, Vocab, RmsNorm(x, "output_norm.weight"));
    }
}
