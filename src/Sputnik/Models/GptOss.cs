using Sputnik.Gguf;
using Sputnik.Inference;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// `gpt-oss` (OpenAI gpt-oss-20b / 120b; llama.cpp's LLM_ARCH_OPENAI_MOE, src/models/openai-moe.cpp): per layer
/// x += attn(norm(x)), x += moe(post_attention_norm(x)). Attention has biases on Q, K, V and the output, NeoX RoPE with
/// YaRN on every layer, a learned sink logit per head in every softmax, and a sliding window on alternate layers
/// (even layers local by default). Every layer's FFN is routed experts with biases: top-k on the router logits (plus
/// the router bias), a softmax over the k chosen, and the clamped SwiGLU g·σ(1.702·g)·(u + 1) with g ≤ 7, |u| ≤ 7.
/// The experts come in MXFP4 in every file (the checkpoint's own format), so `synth` writes them so whatever the
/// file type.
/// </summary>
internal static class GptOss
{
    public const string Name = "gpt-oss";

    /// <summary>ggml_swiglu_oai's constants, fixed in llama.cpp's graph (no GGUF key).</summary>
    public const float SwiGluAlpha = 1.702f, SwiGluLimit = 7f;

    public static readonly RouterConfig Routing = new(0, 0, ExpertGating.SoftmaxWeight);

    /// <summary>
    /// The keys gpt-oss adds to <see cref="ModelConfig"/> (llama.cpp's load_arch_hparams): the window and which
    /// layers are local (attention.sliding_window_pattern as a period or a per-layer array; period 2 by default).
    /// </summary>
    public sealed record Params(int SlidingWindow, bool[] SlidingLayers) : IArchKeys
    {
        public const int DefaultPattern = 2;

        public static Params FromGguf(GgufFile f, ModelConfig c)
        {
            string a = c.Architecture;
            string windowKey = GgufKeys.Of(a, GgufKeys.AttentionSlidingWindow);
            if (!f.TryGetInt64(windowKey, out long w)) throw new GgufFormatException($"{f.Path}: metadata '{windowKey}' is missing");
            if (w < 1 || w > 1 << 24) throw new GgufFormatException($"metadata '{windowKey}' = {w} is out of range");
            string key = GgufKeys.Of(a, GgufKeys.SlidingWindowPattern);
            bool[] local;
            if (f.Metadata.TryGetValue(key, out var v) && v.Value is GgufArray { Items: bool[] perLayer })
            {
                if (perLayer.Length != c.Layers) throw new GgufFormatException($"metadata '{key}' has {perLayer.Length} entries for {c.Layers} layers");
                local = perLayer;
            }
            else
            {
                long n = f.TryGetInt64(key, out long p) ? p : DefaultPattern;
                if (n < 0 || n > c.Layers + 1L) throw new GgufFormatException($"metadata '{key}' = {n} is out of range");
                local = Gemma3.Params.Pattern(c.Layers, (int)n);
            }
            // llama.cpp rotates local layers with rope.freq_base_swa (default: the global base) and the same scaling;
            // a different base would need a second YaRN table, which no gpt-oss file has.
            string swaBase = GgufKeys.Of(a, GgufKeys.RopeFreqBaseSwa);
            if (f.TryGetFloat(swaBase, out float b) && b != c.RopeBase)
                throw new UnsupportedModelException($"{f.Path}: '{swaBase}' = {b} differs from rope.freq_base {c.RopeBase}; Sputnik runs gpt-oss with one RoPE base");
            return new Params((int)w, local);
        }

        public void WriteKeys(GgufWriter w, string arch)
        {
            w.Set(GgufKeys.Of(arch, GgufKeys.AttentionSlidingWindow), (uint)SlidingWindow);
            if (!SlidingLayers.AsSpan().SequenceEqual(Gemma3.Params.Pattern(SlidingLayers.Length, DefaultPattern)))
                w.Set(GgufKeys.Of(arch, GgufKeys.SlidingWindowPattern), GgufValue.Of(new GgufArray(GgufValueType.Bool, SlidingLayers)));
        }

        public bool Equals(Params? other) =>
            other is not null && SlidingWindow == other.SlidingWindow && SlidingLayers.AsSpan().SequenceEqual(other.SlidingLayers);

        public override int GetHashCode() => HashCode.Combine(SlidingWindow, SlidingLayers.Length);
    }

    public static (ModelConfig Config, Params Extra) Read(GgufFile file)
    {
        var c = ModelConfig.FromGguf(file, Name, Info.RopeNeox).WithExperts(file, Routing);
        var extra = Params.FromGguf(file, c);
        return (c with { ArchParams = extra }, extra);
    }

    public static ModelConfig Config(GgufFile file) => Read(file).Config;

    public static LanguageModel Load(GgufFile file, WorkerPool pool)
    {
        var (config, extra) = Read(file);
        return new GptOssDecoder(file, config, extra, pool);
    }

    /// <summary>A gpt-oss shape: NeoX RoPE base 150000 with YaRN (×32 over 4,096 trained positions), window on even layers.</summary>
    private static ModelConfig Shape(int dim, int layers, int heads, int kvHeads, int headDim, int vocab, int context,
        int experts, int used, int expertFfn, int window, float yarn = 32f, int originalContext = 4096)
    {
        var c = ModelConfig.Create(Name, dim, layers, expertFfn, heads, kvHeads, vocab, context, ropeBase: 150000f, rmsEps: 1e-5f, ropeNeox: true, headDim) with
        {
            RopeScalingFactor = yarn, RopeYarn = true, RopeOriginalContext = originalContext,
            Moe = Routing with { ExpertCount = experts, ExpertsUsed = used }, ExpertFfnDim = expertFfn,
        };
        return c with { ArchParams = new Params(window, Gemma3.Params.Pattern(layers, Params.DefaultPattern)) };
    }

    /// <summary>llama.cpp's load_arch_tensors for openai-moe: every tensor is required (biases and sinks included).</summary>
    private static IEnumerable<TensorDecl> Tensors(SynthPreset p)
    {
        var c = p.Config;
        long dim = c.Dim, q = c.QDim, kv = c.KvDim, vocab = c.VocabSize, experts = c.Moe!.ExpertCount, ffn = c.ExpertFfnDim;
        int heads = c.Heads;
        yield return new(TensorNames.Weight(TensorNames.TokenEmbd), [dim, vocab], TensorFill.Matrix);
        for (int l = 0; l < c.Layers; l++)
        {
            yield return new(TensorNames.Weight(l, TensorNames.AttnNorm), [dim], TensorFill.Ones);
            foreach (var (name, rows) in new[] { (TensorNames.AttnQ, q), (TensorNames.AttnK, kv), (TensorNames.AttnV, kv) })
            {
                yield return new(TensorNames.Weight(l, name), [dim, rows], TensorFill.Matrix);
                yield return new(TensorNames.Bias(l, name), [rows], TensorFill.Bias);
            }
            yield return new(TensorNames.Weight(l, TensorNames.AttnOutput), [q, dim], TensorFill.Matrix);
            yield return new(TensorNames.Bias(l, TensorNames.AttnOutput), [dim], TensorFill.Bias);
            // Sinks spread over −1 … 3 by head, so every head's sink takes a visibly different share of its softmax.
            yield return new(TensorNames.Weight(l, TensorNames.AttnSinks), [heads], TensorFill.Computed, v => SpreadSinks(v));
            yield return new(TensorNames.Weight(l, TensorNames.AttnPostNorm), [dim], TensorFill.Ones);
            yield return new(TensorNames.Weight(l, TensorNames.FfnGateInp), [dim, experts], TensorFill.Matrix);
            yield return new(TensorNames.Bias(l, TensorNames.FfnGateInp), [experts], TensorFill.Bias);
            foreach (var (name, cols, rows) in new[] { (TensorNames.FfnGateExps, dim, ffn), (TensorNames.FfnUpExps, dim, ffn), (TensorNames.FfnDownExps, ffn, dim) })
            {
                yield return new(TensorNames.Weight(l, name), [cols, rows, experts], TensorFill.Matrix) { Type = GgmlType.MXFP4 };
                yield return new(TensorNames.Bias(l, name), [rows, experts], TensorFill.Bias);
            }
        }
        yield return new(TensorNames.Weight(TensorNames.OutputNorm), [dim], TensorFill.Ones);
        yield return new(TensorNames.Weight(TensorNames.Output), [dim, vocab], TensorFill.Matrix);
    }

    private static void SpreadSinks(Span<float> v)
    {
        for (int h = 0; h < v.Length; h++) v[h] = h % 5 - 1f;
    }

    public static readonly ArchitectureInfo Info = new(Name, Load)
    {
        RopeNeox = true,
        HfArchitectures = [],
        Synth = new SynthStyle("gpt-4o", AddBos: false, Harmony.ChatTemplate)
        {
            CreateVocab = size => Tools.SyntheticVocab.Create(size, "gpt-4o", harmony: true),
        },
        Tensors = Tensors,
        SynthPresets =
        [
            // A 16-token window on the even layers, so the llama.cpp check's long prompts slide it; 8 experts, top 4.
            new("gpt-oss-tiny", Shape(256, 4, 4, 2, 64, 1000, 8192, experts: 8, used: 4, expertFfn: 128, window: 16), TiedEmbeddings: false),
            new("gpt-oss-20b", Shape(2880, 24, 64, 8, 64, 201088, 131072, experts: 32, used: 4, expertFfn: 2880, window: 128), TiedEmbeddings: false),
            new("gpt-oss-120b", Shape(2880, 36, 64, 8, 64, 201088, 131072, experts: 128, used: 4, expertFfn: 2880, window: 128), TiedEmbeddings: false),
        ],
    };
}

internal sealed class GptOssDecoder : DecoderModel
{
    private sealed record Layer(float[] AttnNorm, AttentionWeights Attention, float[] PostAttnNorm, MoeWeights Experts);

    private readonly Layer[] _layers;

    public GptOss.Params Params { get; }

    public GptOssDecoder(GgufFile file, ModelConfig config, GptOss.Params p, WorkerPool pool) : base(file, config, pool)
    {
        Params = p;
        int e = config.Moe!.ExpertCount, eff = config.ExpertFfnDim, dim = config.Dim;
        _layers = new Layer[config.Layers];
        var sinks = new float[config.Layers][];
        for (int l = 0; l < config.Layers; l++)
        {
            var experts = LoadExperts(l);
            experts.RouterBias = Vector(TensorNames.Bias(l, TensorNames.FfnGateInp), e);
            experts.Biases = new ExpertBiases(ExpertRows(TensorNames.Bias(l, TensorNames.FfnGateExps), eff, e),
                ExpertRows(TensorNames.Bias(l, TensorNames.FfnUpExps), eff, e), ExpertRows(TensorNames.Bias(l, TensorNames.FfnDownExps), dim, e),
                GptOss.SwiGluAlpha, GptOss.SwiGluLimit);
            var attention = LoadAttention(l, qkNorm: false);
            if (attention.Bq == null || attention.Bk == null || attention.Bv == null || attention.Bo == null)
                throw new GgufFormatException($"{file.Path}: gpt-oss layer {l} lacks an attention bias (attn_q/k/v/output.bias)");
            _layers[l] = new Layer(Vector(TensorNames.Weight(l, TensorNames.AttnNorm), dim), attention,
                Vector(TensorNames.Weight(l, TensorNames.AttnPostNorm), dim), experts);
            sinks[l] = Vector(TensorNames.Weight(l, TensorNames.AttnSinks), config.Heads);
        }
        LayerSinks = sinks;
        // Local layers see p − window + 1 … p and keep only a ring of window + MaxBatch − 1 rows (DecoderModel.CreateState).
        LayerWindows = Enumerable.Range(0, config.Layers).Select(l => p.SlidingLayers[l] ? p.SlidingWindow : 0).ToArray();
    }

    /// <summary>A 2-D [cols, experts] bias as one float row per expert.</summary>
    private float[][] ExpertRows(string name, int cols, int experts)
    {
        var m = Matrix(name, cols, experts, mayInterleave: false);
        var rows = new float[experts][];
        for (int i = 0; i < experts; i++)
        {
            rows[i] = new float[cols];
            m.GetRow(i, rows[i]);
        }
        return rows;
    }

    protected override void ForwardLayer(DecoderState w, int l, int n)
    {
        var layer = _layers[l];
        int dim = Config.Dim;
        NormRows(w, n, layer.AttnNorm);
        SelfAttention(w, l, n, layer.Attention);
        AddResidual(w, n, dim);
        NormRows(w, n, layer.PostAttnNorm);
        ExpertsFfn(w, n, layer.Experts);
        AddResidual(w, n, dim);
    }
}
