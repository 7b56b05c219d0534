using System.Numerics.Tensors;
using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// gemma3's own hyper-parameters beside <see cref="ModelConfig"/>, read and written under llama.cpp's keys
/// (src/models/gemma3.cpp, load_arch_hparams): the sliding window and which layers use it, the local layers' RoPE
/// base, the attention scale and the optional final logit soft-capping.
/// </summary>
/// <param name="SlidingWindow">Positions a local layer attends to, itself included (0: every layer is global).</param>
/// <param name="SlidingLayers">Per layer, whether it is local (sliding window); by default five local, then one global.</param>
/// <param name="RopeBaseSliding">RoPE base of the local layers (rope.freq_base_swa, 10000); global layers take rope.freq_base and any rope scaling.</param>
/// <param name="AttentionScale">Scale of q·k: 1/√head size, except Gemma 3 27B (62 layers), 1/√(width/heads), as gemma_pytorch's query_pre_attn_scalar.</param>
/// <param name="FinalLogitSoftcap">c in c·tanh(logit/c) on the output logits; 0 for none (Gemma 3 checkpoints have none).</param>
internal sealed record Gemma3Params(int SlidingWindow, bool[] SlidingLayers, float RopeBaseSliding, float AttentionScale, float FinalLogitSoftcap)
{
    public const int DefaultPattern = 6;
    public const float DefaultRopeBaseSliding = 10000f;

    public const string SlidingWindowKey = "attention.sliding_window";
    public const string SlidingWindowPatternKey = "attention.sliding_window_pattern";
    public const string RopeBaseSlidingKey = "rope.freq_base_swa";
    public const string FinalLogitSoftcapKey = "final_logit_softcapping";

    /// <summary>llama.cpp's pattern n: layer l is local unless l mod n = n − 1 (n = 0: all local).</summary>
    public static bool[] Pattern(int layers, int n)
    {
        var local = new bool[layers];
        for (int l = 0; l < layers; l++) local[l] = n == 0 || l % n < n - 1;
        return local;
    }

    /// <summary>As llama.cpp's load_arch_hparams: 27B's scale by layer count, the rest by head size.</summary>
    public static float Scale(ModelConfig c) =>
        c.Layers == 62 ? 1f / MathF.Sqrt(c.Dim / c.Heads) : 1f / MathF.Sqrt(c.HeadDim);

    public static Gemma3Params FromGguf(GgufFile f, ModelConfig c)
    {
        string a = c.Architecture;
        int window = 0;
        if (f.TryGetInt64($"{a}.{SlidingWindowKey}", out long w))
        {
            if (w < 0 || w > 1 << 24) throw new GgufFormatException($"metadata '{a}.{SlidingWindowKey}' = {w} is out of range");
            window = (int)w;
        }
        var local = new bool[c.Layers];
        if (window > 0)
        {
            string key = $"{a}.{SlidingWindowPatternKey}";
            if (f.Metadata.TryGetValue(key, out var v) && v.Value is GgufArray { Items: bool[] perLayer })
            {
                if (perLayer.Length != c.Layers)
                    throw new GgufFormatException($"metadata '{key}' has {perLayer.Length} entries for {c.Layers} layers");
                local = perLayer;
            }
            else
            {
                long n = f.TryGetInt64(key, out long p) ? p : DefaultPattern;
                if (n < 0 || n > c.Layers + 1L) throw new GgufFormatException($"metadata '{key}' = {n} is out of range");
                local = Pattern(c.Layers, (int)n);
            }
        }
        float softcap = ModelConfig.FloatKey(f, $"{a}.{FinalLogitSoftcapKey}", 0f, 0f, float.MaxValue);
        return new Gemma3Params(window, local, ModelConfig.PositiveFloat(f, $"{a}.{RopeBaseSlidingKey}", DefaultRopeBaseSliding), Scale(c), softcap);
    }

    /// <summary>The keys <see cref="FromGguf"/> reads, for `synth` and `convert` (the pattern as its period when it is one).</summary>
    public void WriteKeys(GgufWriter w, string arch)
    {
        if (SlidingWindow <= 0) return;
        w.Set($"{arch}.{SlidingWindowKey}", (uint)SlidingWindow);
        int period = Enumerable.Range(1, SlidingLayers.Length + 1).FirstOrDefault(n => Pattern(SlidingLayers.Length, n).SequenceEqual(SlidingLayers));
        if (period != DefaultPattern)
        {
            if (period > 0) w.Set($"{arch}.{SlidingWindowPatternKey}", (uint)period);
            else w.Set($"{arch}.{SlidingWindowPatternKey}", GgufValue.Of(new GgufArray(GgufValueType.Bool, SlidingLayers)));
        }
        if (RopeBaseSliding != DefaultRopeBaseSliding) w.Set($"{arch}.{RopeBaseSlidingKey}", RopeBaseSliding);
        if (FinalLogitSoftcap > 0) w.Set($"{arch}.{FinalLogitSoftcapKey}", FinalLogitSoftcap);
    }
}

/// <summary>
/// `gemma3` (Gemma 3 270M/1B/4B/12B/27B text): embeddings scaled by √width; per layer
/// x += postnorm(attn(norm(x))), x += postnorm(GeGLU(norm(x))); per-head Q/K norms before NeoX RoPE; local layers
/// (five of every six) attend to a sliding window with their own RoPE base, global layers to everything with
/// rope.freq_base and any rope scaling. Norm weights are stored as (1 + w), as llama.cpp's converter writes them, so
/// they apply like any RMSNorm weight.
/// </summary>
internal static class Gemma3
{
    public const string Name = "gemma3";

    public static ModelConfig Config(GgufFile file) => ModelConfig.FromGguf(file, Name, ropeNeox: true) with { QkNorm = true };

    public static LanguageModel Load(GgufFile file, WorkerPool pool)
    {
        var c = Config(file);
        return new Gemma3Decoder(file, c, Gemma3Params.FromGguf(file, c), pool);
    }
}

internal sealed class Gemma3Decoder : DecoderModel
{
    private sealed record Layer(float[] AttnNorm, AttentionWeights Attention, float[] AttnPostNorm, float[] FfnNorm, FfnWeights Ffn, float[] FfnPostNorm);

    private readonly Layer[] _layers;
    private readonly float _embedScale;

    public Gemma3Params Params { get; }

    public Gemma3Decoder(GgufFile file, ModelConfig config, Gemma3Params p, WorkerPool pool) : base(file, config, pool)
    {
        Params = p;
        _embedScale = MathF.Sqrt(config.Dim);
        _layers = new Layer[config.Layers];
        for (int l = 0; l < config.Layers; l++)
        {
            var attention = LoadAttention(l, qkNorm: true);
            attention.Window = SlidingWindow(l);
            attention.Scale = p.AttentionScale;
            _layers[l] = new Layer(
                Vector(TensorNames.Weight(l, TensorNames.AttnNorm), config.Dim),
                attention,
                Vector(TensorNames.Weight(l, TensorNames.AttnPostNorm), config.Dim),
                Vector(TensorNames.Weight(l, TensorNames.FfnNorm), config.Dim),
                LoadFfn(l),
                Vector(TensorNames.Weight(l, TensorNames.FfnPostNorm), config.Dim));
        }
    }

    protected override int SlidingWindow(int layer) => Params.SlidingWindow > 0 && Params.SlidingLayers[layer] ? Params.SlidingWindow : 0;

    // Local layers rotate with their own base and no context scaling (llama.cpp's rope_freq_scale_train_swa = 1).
    protected override double[]? SlidingRopeFrequencies() =>
        Params.SlidingWindow > 0 ? PlainRopeFrequencies(Params.RopeBaseSliding, Config.RopeDims) : null;

    protected override void Embed(DecoderState w, ReadOnlySpan<int> tokens)
    {
        base.Embed(w, tokens);
        var x = w.X.AsSpan(0, tokens.Length * Config.Dim);
        TensorPrimitives.Multiply(x, _embedScale, x);
    }

    protected override void ForwardLayer(DecoderState w, int l, int n)
    {
        var layer = _layers[l];
        int dim = Config.Dim;
        NormRows(w, n, layer.AttnNorm);
        SelfAttention(w, l, n, layer.Attention);
        NormOutputRows(w, n, layer.AttnPostNorm);
        AddResidual(w, n, dim);
        NormRows(w, n, layer.FfnNorm);
        GeGluFfn(w, n, layer.Ffn);
        NormOutputRows(w, n, layer.FfnPostNorm);
        AddResidual(w, n, dim);
    }

    protected override void FinishLogits(Span<float> logits)
    {
        float cap = Params.FinalLogitSoftcap;
        if (cap <= 0) return;
        TensorPrimitives.Multiply(logits, 1f / cap, logits);
        TensorPrimitives.Tanh(logits, logits);
        TensorPrimitives.Multiply(logits, cap, logits);
    }
}
