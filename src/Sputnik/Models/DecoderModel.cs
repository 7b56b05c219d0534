using System.Numerics.Tensors;
using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// The llama-family decoder shared by `llama` and `qwen2`: pre-RMSNorm blocks of grouped-query attention with
/// RoPE and a SwiGLU feed-forward. Architectures differ only in their <see cref="ModelConfig"/> (RoPE pairing)
/// and in which optional tensors (Q/K/V biases, a separate output matrix) the file carries.
/// </summary>
public sealed class DecoderModel : LanguageModel
{
    private sealed class Layer
    {
        public required float[] AttnNorm, FfnNorm;
        public required WeightMatrix Wq, Wk, Wv, Wo, Gate, Up, Down;
        public float[]? Bq, Bk, Bv;
    }

    private readonly WeightMatrix _tokenEmbedding;
    private readonly WeightMatrix _output;
    private readonly float[] _outputNorm;
    private readonly Layer[] _layers;
    private readonly float[]? _ropeFreqFactors;
    // Largest activation buffer any matrix needs, so each state sizes its buffer once.
    private readonly int _maxInputBytes;

    public DecoderModel(GgufFile file, ModelConfig config, WorkerPool pool) : base(file, config, pool)
    {
        _tokenEmbedding = Matrix("token_embd.weight", config.Dim, config.VocabSize);
        // Tied embeddings: small models reuse the embedding matrix as the output projection.
        _output = file.FindTensor("output.weight") is { } o ? Matrix(o.Name, config.Dim, config.VocabSize) : _tokenEmbedding;
        _outputNorm = Vector("output_norm.weight", config.Dim);
        _ropeFreqFactors = file.FindTensor("rope_freqs.weight") is { } rf ? Vector(rf.Name, config.RopeDims / 2) : null;
        _layers = new Layer[config.Layers];
        for (int l = 0; l < config.Layers; l++)
        {
            string p = $"blk.{l}.";
            _layers[l] = new Layer
            {
                AttnNorm = Vector(p + "attn_norm.weight", config.Dim),
                FfnNorm = Vector(p + "ffn_norm.weight", config.Dim),
                Wq = Matrix(p + "attn_q.weight", config.Dim, config.QDim),
                Wk = Matrix(p + "attn_k.weight", config.Dim, config.KvDim),
                Wv = Matrix(p + "attn_v.weight", config.Dim, config.KvDim),
                Wo = Matrix(p + "attn_output.weight", config.QDim, config.Dim),
                Gate = Matrix(p + "ffn_gate.weight", config.Dim, config.FfnDim),
                Up = Matrix(p + "ffn_up.weight", config.Dim, config.FfnDim),
                Down = Matrix(p + "ffn_down.weight", config.FfnDim, config.Dim),
                Bq = OptionalVector(p + "attn_q.bias", config.QDim),
                Bk = OptionalVector(p + "attn_k.bias", config.KvDim),
                Bv = OptionalVector(p + "attn_v.bias", config.KvDim),
            };
        }
        _maxInputBytes = _layers.SelectMany(l => new[] { l.Wq, l.Wk, l.Wv, l.Wo, l.Gate, l.Up, l.Down })
            .Append(_output).Max(w => w.InputBytes);
    }


    private WeightMatrix Matrix(string name, int cols, int rows)
    {
        var info = File.GetTensor(name);
        if (info.Columns != cols || info.Rows != rows)
            throw new GgufFormatException($"tensor '{name}' has shape [{string.Join(", ", info.Dims)}], expected [{cols}, {rows}]");
        return new WeightMatrix(File, info);
    }

    private float[] Vector(string name, int length)
    {
        var m = Matrix(name, length, 1);
        return m.ToFloatVector();
    }

    private float[]? OptionalVector(string name, int length) => File.FindTensor(name) is null ? null : Vector(name, length);

    public override InferenceState CreateState(int contextLength)
    {
        var c = Config;
        var cache = new KvCache(c.Layers, contextLength, c.KvDim);
        return new DecoderState(cache, c);
    }

    private sealed class DecoderState(KvCache cache, ModelConfig c) : InferenceState(cache, c.VocabSize)
    {
        public readonly float[] X = new float[c.Dim], Xb = new float[Math.Max(c.Dim, c.QDim)];
        public readonly float[] Q = new float[c.QDim], K = new float[c.KvDim], V = new float[c.KvDim];
        public readonly float[] AttnOut = new float[c.QDim];
        public readonly float[] Scores = new float[c.Heads * (long)cache.Capacity > int.MaxValue ? throw new OverflowException() : c.Heads * cache.Capacity];
        public readonly float[] H1 = new float[c.FfnDim], H3 = new float[c.FfnDim];
        public readonly float[] Cos = new float[c.RopeDims / 2], Sin = new float[c.RopeDims / 2];

        // Current matvec job, read by the cached worker delegate (no closure per call).
        public WeightMatrix? MvW;
        public byte[] MvInput = [];
        public float[] MvY = [];
        public Action<int, int>? MvBody;
        public int AttnPos, AttnLayer;
        public Action<int, int>? AttnBody;
    }

    public override ReadOnlySpan<float> Forward(InferenceState state, ReadOnlySpan<int> tokens)
    {
        var s = (DecoderState)state;
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to feed");
        if (s.Position + tokens.Length > s.Capacity)
            throw new InvalidOperationException($"context full: {s.Position} + {tokens.Length} tokens exceed the context of {s.Capacity}");
        for (int i = 0; i < tokens.Length; i++)
            Step(s, tokens[i], computeLogits: i == tokens.Length - 1);
        return s.Logits;
    }

    private void Step(DecoderState s, int token, bool computeLogits)
    {
        var c = Config;
        if ((uint)token >= (uint)c.VocabSize) throw new ArgumentOutOfRangeException(nameof(token), $"token id {token} is outside the vocabulary ({c.VocabSize})");
        int pos = s.Position;
        _tokenEmbedding.GetRow(token, s.X);
        RopeAngles(pos, s.Cos, s.Sin);

        for (int l = 0; l < _layers.Length; l++)
        {
            var layer = _layers[l];
            // attention rmsnorm, then q/k/v projections for this position
            Ops.RmsNorm(s.X, layer.AttnNorm, c.RmsEps, s.Xb.AsSpan(0, c.Dim));
            MatVec(s, layer.Wq, s.Xb, s.Q);
            MatVec(s, layer.Wk, s.Xb, s.K);
            MatVec(s, layer.Wv, s.Xb, s.V);
            if (layer.Bq != null) TensorPrimitives.Add(s.Q, layer.Bq, s.Q);
            if (layer.Bk != null) TensorPrimitives.Add(s.K, layer.Bk, s.K);
            if (layer.Bv != null) TensorPrimitives.Add(s.V, layer.Bv, s.V);

            for (int h = 0; h < c.Heads; h++) Ops.Rope(s.Q.AsSpan(h * c.HeadDim, c.RopeDims), s.Cos, s.Sin, c.RopeNeox);
            for (int h = 0; h < c.KvHeads; h++) Ops.Rope(s.K.AsSpan(h * c.HeadDim, c.RopeDims), s.Cos, s.Sin, c.RopeNeox);
            s.K.CopyTo(s.Cache.Key(l, pos));
            s.V.CopyTo(s.Cache.Value(l, pos));

            // grouped-query attention over positions 0..pos
            s.AttnPos = pos;
            s.AttnLayer = l;
            s.AttnBody ??= (h0, h1) => AttendHeads(s, h0, h1);
            Pool.For(c.Heads, s.AttnBody, minPerThread: Math.Max(1, 4096 / (pos + 1)));

            // output projection and residual
            MatVec(s, layer.Wo, s.AttnOut, s.Xb);
            TensorPrimitives.Add(s.X, s.Xb.AsSpan(0, c.Dim), s.X);

            // ffn rmsnorm, SwiGLU, down projection and residual
            Ops.RmsNorm(s.X, layer.FfnNorm, c.RmsEps, s.Xb.AsSpan(0, c.Dim));
            MatVec(s, layer.Gate, s.Xb, s.H1);
            MatVec(s, layer.Up, s.Xb, s.H3);
            Ops.SwiGlu(s.H1, s.H3);
            MatVec(s, layer.Down, s.H1, s.Xb);
            TensorPrimitives.Add(s.X, s.Xb.AsSpan(0, c.Dim), s.X);
        }
        s.Cache.Length = pos + 1;

        if (computeLogits)
        {
            Ops.RmsNorm(s.X, _outputNorm, c.RmsEps, s.Xb.AsSpan(0, c.Dim));
            MatVec(s, _output, s.Xb, s.Logits);
        }
    }

    private void AttendHeads(DecoderState s, int h0, int h1)
    {
        var c = Config;
        int pos = s.AttnPos, n = pos + 1, group = c.Heads / c.KvHeads, hd = c.HeadDim;
        float scale = 1f / MathF.Sqrt(hd);
        var keys = s.Cache.Keys(s.AttnLayer, n);
        var values = s.Cache.Values(s.AttnLayer, n);
        for (int h = h0; h < h1; h++)
        {
            var q = s.Q.AsSpan(h * hd, hd);
            int kvOff = h / group * hd;
            var scores = s.Scores.AsSpan(h * s.Capacity, n);
            for (int t = 0; t < n; t++)
                scores[t] = TensorPrimitives.Dot(q, keys.Slice(t * c.KvDim + kvOff, hd)) * scale;
            Ops.Softmax(scores);
            var o = s.AttnOut.AsSpan(h * hd, hd);
            o.Clear();
            for (int t = 0; t < n; t++)
                TensorPrimitives.MultiplyAdd(values.Slice(t * c.KvDim + kvOff, hd), scores[t], o, o);
        }
    }

    private void MatVec(DecoderState s, WeightMatrix w, float[] x, float[] y)
    {
        if (s.MvInput.Length < w.InputBytes) s.MvInput = new byte[Math.Max(w.InputBytes, _maxInputBytes)];
        w.PrepareInput(x, s.MvInput);
        s.MvW = w;
        s.MvY = y;
        s.MvBody ??= (r0, r1) => s.MvW!.MatVecRows(s.MvInput, s.MvY, r0, r1);
        // Small matrices are cheaper on one thread than the hand-off to workers.
        int minRows = Math.Max(1, 32768 / Math.Max(1, w.Cols));
        Pool.For(w.Rows, s.MvBody, minPerThread: minRows);
    }

    /// <summary>RoPE angles for one position: θ_i = pos · base^(−2i/d), divided by per-pair factors when the file has rope_freqs.</summary>
    private void RopeAngles(int pos, float[] cos, float[] sin)
    {
        var c = Config;
        for (int i = 0; i < cos.Length; i++)
        {
            double freq = Math.Pow(c.RopeBase, -2.0 * i / c.RopeDims);
            if (_ropeFreqFactors != null) freq /= _ropeFreqFactors[i];
            double theta = pos * freq;
            cos[i] = (float)Math.Cos(theta);
            sin[i] = (float)Math.Sin(theta);
        }
    }
}
