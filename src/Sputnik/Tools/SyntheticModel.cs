using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;
using Sputnik.Tokenizers;

namespace Sputnik.Tools;

/// <summary>The shape of a real (or tiny test) model that <see cref="SyntheticModel"/> can fake.</summary>
/// <remarks>
/// <paramref name="HeadSize"/> 0 means dim / heads; <paramref name="Experts"/> &gt; 0 replaces every layer's dense FFN
/// by that many routed experts of <paramref name="ExpertFfn"/> rows, <paramref name="ExpertsUsed"/> per token (qwen3moe);
/// <paramref name="YarnFactor"/> &gt; 1 extends the context with YaRN from <paramref name="YarnOriginalContext"/>;
/// <paramref name="LinearRopeFactor"/> &gt; 1 with linear scaling (gemma3's global layers). <paramref name="SlidingWindow"/>
/// &gt; 0 makes layers local in gemma3's pattern: l mod <paramref name="SlidingPattern"/> &lt; pattern − 1.
/// </remarks>
internal sealed record SynthPreset(
    string Name, string Arch, int Dim, int Layers, int Ffn, int Heads, int KvHeads, int Vocab, float RopeBase, int Context,
    bool TiedEmbeddings, float RmsEps, float? Llama3RopeFactor = null, int HeadSize = 0, int Experts = 0, int ExpertsUsed = 0, int ExpertFfn = 0,
    float YarnFactor = 1f, int YarnOriginalContext = 0, float LinearRopeFactor = 1f, int SlidingWindow = 0, int SlidingPattern = Gemma3Params.DefaultPattern)
{
    public int HeadDim => HeadSize > 0 ? HeadSize : Dim / Heads;
    public bool QkvBias => Arch == Qwen2.Name;
    public bool QkNorm => Arch is Qwen3.Name or Qwen3Moe.Name or Gemma3.Name;
    public bool IsQwen => Arch is Qwen2.Name or Qwen3.Name or Qwen3Moe.Name;
    public bool IsGemma => Arch == Gemma3.Name;
    public string Pre => IsQwen ? "qwen2" : "llama-bpe";
}

/// <summary>Options for <see cref="SyntheticModel.Write"/>.</summary>
internal sealed record SynthOptions
{
    public required SynthPreset Preset { get; init; }
    public FileType FileType { get; init; } = FileType.F16;
    public ulong Seed { get; init; }

    /// <summary>A real vocabulary (e.g. from tokenizer.json); null builds a <see cref="SyntheticVocab"/> of the preset's size.</summary>
    public TokenizerData? Tokenizer { get; init; }

    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>Standard deviation of the random weights.</summary>
    public float Sigma { get; init; } = 0.02f;
}

/// <summary>
/// Writes a GGUF with random weights in a real model's shapes, real metadata and a usable tokenizer, so real sizes can
/// be benchmarked without downloads. Weight matrices are filled by sampling blocks from a pool of up to 4M N(0, σ) weights
/// (quantized once per type): each row picks its blocks with a seeded generator, so output is deterministic, rows are
/// independent (filled in parallel) and a 7B file streams to disk at write speed. Norm weights are 1, biases N(0, σ).
/// Tensor types follow llama.cpp's quantization mix for the requested file type (<see cref="QuantMix"/>).
/// </summary>
internal static class SyntheticModel
{
    private const string ChatMl =
        "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
        "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

    // Qwen3's way of switching thinking off: with enable_thinking false the generation prompt carries an empty
    // think block (the official template does the same after '<|im_start|>assistant\n').
    private const string Qwen3Chat =
        "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
        "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}" +
        "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}";

    // Gemma 3's chat template (google/gemma-3-*-it tokenizer_config.json): a system message is folded into the first
    // user turn, the assistant is "model", no thinking.
    internal const string Gemma3Chat =
        "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n    {%- if messages[0]['content'] is string -%}\n" +
        "        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n    {%- else -%}\n" +
        "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n    {%- endif -%}\n" +
        "    {%- set loop_messages = messages[1:] -%}\n{%- else -%}\n    {%- set first_user_prefix = \"\" -%}\n" +
        "    {%- set loop_messages = messages -%}\n{%- endif -%}\n{%- for message in loop_messages -%}\n" +
        "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n" +
        "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n    {%- endif -%}\n" +
        "    {%- if (message['role'] == 'assistant') -%}\n        {%- set role = \"model\" -%}\n    {%- else -%}\n" +
        "        {%- set role = message['role'] -%}\n    {%- endif -%}\n" +
        "    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n" +
        "    {%- if message['content'] is string -%}\n        {{ message['content'] | trim }}\n" +
        "    {%- elif message['content'] is iterable -%}\n        {%- for item in message['content'] -%}\n" +
        "            {%- if item['type'] == 'image' -%}\n                {{ '<start_of_image>' }}\n" +
        "            {%- elif item['type'] == 'text' -%}\n                {{ item['text'] | trim }}\n            {%- endif -%}\n" +
        "        {%- endfor -%}\n    {%- else -%}\n        {{ raise_exception(\"Invalid content type\") }}\n    {%- endif -%}\n" +
        "    {{ '<end_of_turn>\n' }}\n{%- endfor -%}\n{%- if add_generation_prompt -%}\n    {{'<start_of_turn>model\n'}}\n{%- endif -%}\n";

    private const string Llama3Chat =
        "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + " +
        "message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}" +
        "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";

    public static readonly IReadOnlyList<SynthPreset> Presets =
    [
        new("qwen2-tiny", "qwen2", 256, 4, 512, 4, 2, 1000, 1e6f, 4096, TiedEmbeddings: true, 1e-6f),
        new("llama-tiny", "llama", 256, 4, 512, 4, 2, 800, 500000f, 4096, TiedEmbeddings: false, 1e-5f),
        new("qwen2-0.5b", "qwen2", 896, 24, 4864, 14, 2, 151936, 1e6f, 32768, TiedEmbeddings: true, 1e-6f),
        new("qwen2-1.5b", "qwen2", 1536, 28, 8960, 12, 2, 151936, 1e6f, 32768, TiedEmbeddings: true, 1e-6f),
        new("qwen2-7b", "qwen2", 3584, 28, 18944, 28, 4, 152064, 1e6f, 32768, TiedEmbeddings: false, 1e-6f),
        new("llama-3.2-1b", "llama", 2048, 16, 8192, 32, 8, 128256, 500000f, 131072, TiedEmbeddings: true, 1e-5f, Llama3RopeFactor: 32f),
        new("llama-3.2-3b", "llama", 3072, 28, 8192, 24, 8, 128256, 500000f, 131072, TiedEmbeddings: true, 1e-5f, Llama3RopeFactor: 32f),
        new("llama-3.1-8b", "llama", 4096, 32, 14336, 32, 8, 128256, 500000f, 131072, TiedEmbeddings: false, 1e-5f, Llama3RopeFactor: 8f),
        // qwen3: head size 128 whatever the width (Qwen3's config.json head_dim), so heads·128 ≠ dim in most sizes.
        // qwen3-tiny carries R1-0528-Qwen3-8B's YaRN ×4 (over a 1,024-token original context) so the llama.cpp check covers it.
        new("qwen3-tiny", "qwen3", 256, 4, 512, 4, 2, 1000, 1e6f, 4096, TiedEmbeddings: true, 1e-6f, HeadSize: 128, YarnFactor: 4f, YarnOriginalContext: 1024),
        new("qwen3-0.6b", "qwen3", 1024, 28, 3072, 16, 8, 151936, 1e6f, 40960, TiedEmbeddings: true, 1e-6f, HeadSize: 128),
        // DeepSeek-R1-0528-Qwen3-8B: Qwen3-8B's shape with YaRN ×4 over 32,768 tokens (131,072 in all), as its config.json.
        new("qwen3-8b", "qwen3", 4096, 36, 12288, 32, 8, 151936, 1e6f, 131072, TiedEmbeddings: false, 1e-6f, HeadSize: 128,
            YarnFactor: 4f, YarnOriginalContext: 32768),
        new("qwen3moe-tiny", "qwen3moe", 256, 4, 512, 4, 2, 1000, 1e6f, 4096, TiedEmbeddings: false, 1e-6f, HeadSize: 64,
            Experts: 16, ExpertsUsed: 4, ExpertFfn: 128),
        new("qwen3-30b-a3b", "qwen3moe", 2048, 48, 6144, 32, 4, 151936, 1e6f, 40960, TiedEmbeddings: false, 1e-6f, HeadSize: 128,
            Experts: 128, ExpertsUsed: 8, ExpertFfn: 768),
        // gemma3: head size 256 in every size, five local (sliding-window) layers to one global. gemma3-tiny puts
        // a 16-token window on alternate layers and Gemma 3 4B's linear ×8 RoPE scaling on the global ones, so the
        // llama.cpp check covers prompts longer than the window and both RoPE tables; its output head is untied, since
        // with random weights a tied head mostly repeats the last token (its √d-scaled embedding dominates the stream).
        new("gemma3-tiny", "gemma3", 256, 4, 512, 4, 2, 1000, 1e6f, 4096, TiedEmbeddings: false, 1e-6f, HeadSize: 128,
            LinearRopeFactor: 8f, SlidingWindow: 16, SlidingPattern: 2),
        new("gemma3-1b", "gemma3", 1152, 26, 6912, 4, 1, 262144, 1e6f, 32768, TiedEmbeddings: true, 1e-6f, HeadSize: 256, SlidingWindow: 512),
        new("gemma3-4b", "gemma3", 2560, 34, 10240, 8, 4, 262208, 1e6f, 131072, TiedEmbeddings: true, 1e-6f, HeadSize: 256,
            LinearRopeFactor: 8f, SlidingWindow: 1024),
        new("gemma3-12b", "gemma3", 3840, 48, 15360, 16, 8, 262208, 1e6f, 131072, TiedEmbeddings: true, 1e-6f, HeadSize: 256,
            LinearRopeFactor: 8f, SlidingWindow: 1024),
    ];

    public static SynthPreset FindPreset(string name) =>
        Presets.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"unknown preset '{name}' (available: {string.Join(", ", Presets.Select(p => p.Name))})");

    // NormJitter: 1 + N(0, 0.1), for the per-head Q/K norms, so a test notices a weight applied to the wrong slice.
    private enum Kind { Matrix, Ones, Bias, RopeFreqs, NormJitter }

    private sealed record Spec(string Name, long[] Dims, Kind Kind);

    public static void Write(string path, SynthOptions o, Action<ToolProgress>? progress = null)
    {
        var p = o.Preset;
        if (!p.IsQwen && !p.IsGemma && p.Arch != Llama.Name) throw new ArgumentException($"preset '{p.Name}': architecture '{p.Arch}' cannot be synthesized");
        if (Directory.Exists(path)) throw new ArgumentException($"output '{path}' is a directory");
        var tok = o.Tokenizer is { } real ? SyntheticVocab.PadTo(real, p.Vocab)
            : p.IsGemma ? SyntheticVocab.Create(p.Vocab, p.Pre, gemma: true) : SyntheticVocab.Create(p.Vocab, p.Pre);
        int vocab = tok.Tokens.Length;
        int threads = Math.Max(1, o.Threads);

        var specs = TensorSpecs(p, vocab);
        var mix = new QuantMix(o.FileType, p.Layers, hasOutput: !p.TiedEmbeddings);
        var w = new GgufWriter();
        WriteMetadata(w, p, o, tok, vocab);

        var pools = new Dictionary<GgmlType, WeightPool>();
        // Pool size: a quarter of the largest matrix (power of two), 64K..4M weights — small models stay quick to write.
        long largest = specs.Where(s => s.Kind == Kind.Matrix).Max(s => s.Dims[0] * s.Dims[1]);
        int poolWeights = (int)Math.Clamp(1L << (int)Math.Ceiling(Math.Log2(Math.Max(1, largest / 4))), 1 << 16, 1 << 22);
        long total = specs.Sum(s => GgufWriter.ByteSize(mix.Choose(s.Name, s.Dims, GgmlType.F32), s.Dims));
        long done = 0;
        for (int i = 0; i < specs.Count; i++)
        {
            var s = specs[i];
            var type = mix.Choose(s.Name, s.Dims, GgmlType.F32);
            int index = i;
            ulong tensorSeed = Mix(o.Seed ^ Mix((ulong)index + 0x9E37));
            w.AddTensor(s.Name, type, s.Dims, output =>
            {
                progress?.Invoke(new ToolProgress(s.Name, index, specs.Count, done, total));
                void Written(long n)
                {
                    done += n;
                    progress?.Invoke(new ToolProgress(s.Name, index, specs.Count, done, total));
                }
                long rows = s.Dims.Skip(1).Aggregate(1L, (a, b) => a * b); // 3-D expert stacks: all experts' rows
                long cols = s.Dims[0];
                if (s.Kind == Kind.Matrix)
                {
                    if (!pools.TryGetValue(type, out var pool)) pools[type] = pool = new WeightPool(type, o.Seed, o.Sigma, poolWeights, threads);
                    TensorStreams.WriteRows(output, rows, GgmlTypeInfo.RowBytes(type, cols), threads,
                        (row, dst) => pool.FillRow(dst, cols, Mix(tensorSeed ^ Mix((ulong)row))), Written);
                    return;
                }
                var v = new float[cols];
                switch (s.Kind)
                {
                    case Kind.Ones: Array.Fill(v, 1f); break;
                    case Kind.Bias: Gaussian(tensorSeed, o.Sigma, v); break;
                    case Kind.NormJitter:
                        Gaussian(tensorSeed, 0.1f, v);
                        for (int j = 0; j < v.Length; j++) v[j] += 1f;
                        break;
                    case Kind.RopeFreqs: Llama3RopeFactors(p, v); break;
                }
                var bytes = new byte[GgmlTypeInfo.RowBytes(type, cols)];
                Quant.Row(type, v, bytes);
                output.Write(bytes);
                Written(bytes.Length);
            });
        }
        w.Write(path);
    }

    private static List<Spec> TensorSpecs(SynthPreset p, int vocab)
    {
        int q = p.Heads * p.HeadDim, kv = p.KvHeads * p.HeadDim;
        var list = new List<Spec>();
        if (p.Llama3RopeFactor != null) list.Add(new("rope_freqs.weight", [p.HeadDim / 2], Kind.RopeFreqs));
        list.Add(new("token_embd.weight", [p.Dim, vocab], Kind.Matrix));
        for (int l = 0; l < p.Layers; l++)
        {
            string b = $"blk.{l}.";
            list.Add(new(b + "attn_norm.weight", [p.Dim], Kind.Ones));
            list.Add(new(b + "attn_q.weight", [p.Dim, q], Kind.Matrix));
            if (p.QkvBias) list.Add(new(b + "attn_q.bias", [q], Kind.Bias));
            list.Add(new(b + "attn_k.weight", [p.Dim, kv], Kind.Matrix));
            if (p.QkvBias) list.Add(new(b + "attn_k.bias", [kv], Kind.Bias));
            list.Add(new(b + "attn_v.weight", [p.Dim, kv], Kind.Matrix));
            if (p.QkvBias) list.Add(new(b + "attn_v.bias", [kv], Kind.Bias));
            if (p.QkNorm)
            {
                list.Add(new(TensorNames.Weight(l, TensorNames.AttnQNorm), [p.HeadDim], Kind.NormJitter));
                list.Add(new(TensorNames.Weight(l, TensorNames.AttnKNorm), [p.HeadDim], Kind.NormJitter));
            }
            list.Add(new(b + "attn_output.weight", [q, p.Dim], Kind.Matrix));
            if (p.IsGemma) list.Add(new(TensorNames.Weight(l, TensorNames.AttnPostNorm), [p.Dim], Kind.NormJitter));
            list.Add(new(b + "ffn_norm.weight", [p.Dim], Kind.Ones));
            if (p.Experts > 0)
            {
                list.Add(new(TensorNames.Weight(l, TensorNames.FfnGateInp), [p.Dim, p.Experts], Kind.Matrix));
                list.Add(new(TensorNames.Weight(l, TensorNames.FfnGateExps), [p.Dim, p.ExpertFfn, p.Experts], Kind.Matrix));
                list.Add(new(TensorNames.Weight(l, TensorNames.FfnUpExps), [p.Dim, p.ExpertFfn, p.Experts], Kind.Matrix));
                list.Add(new(TensorNames.Weight(l, TensorNames.FfnDownExps), [p.ExpertFfn, p.Dim, p.Experts], Kind.Matrix));
                continue;
            }
            list.Add(new(b + "ffn_gate.weight", [p.Dim, p.Ffn], Kind.Matrix));
            list.Add(new(b + "ffn_up.weight", [p.Dim, p.Ffn], Kind.Matrix));
            list.Add(new(b + "ffn_down.weight", [p.Ffn, p.Dim], Kind.Matrix));
            if (p.IsGemma) list.Add(new(TensorNames.Weight(l, TensorNames.FfnPostNorm), [p.Dim], Kind.NormJitter));
        }
        list.Add(new("output_norm.weight", [p.Dim], Kind.Ones));
        if (!p.TiedEmbeddings) list.Add(new("output.weight", [p.Dim, vocab], Kind.Matrix));
        return list;
    }

    private static void WriteMetadata(GgufWriter w, SynthPreset p, SynthOptions o, TokenizerData tok, int vocab)
    {
        string a = p.Arch;
        w.Set("general.architecture", a);
        w.Set("general.type", "model");
        w.Set("general.name", $"Sputnik synthetic {p.Name}");
        w.Set("general.description", $"random weights, not a trained model (sputnik synth --preset {p.Name} --seed {o.Seed})");
        new ModelConfig
        {
            Architecture = a, Dim = p.Dim, Layers = p.Layers, Heads = p.Heads, KvHeads = p.KvHeads, HeadDim = p.HeadDim, FfnDim = p.Ffn,
            VocabSize = vocab, ContextLength = p.Context, RopeBase = p.RopeBase, RopeDims = p.HeadDim, RopeNeox = p.IsQwen || p.IsGemma, RmsEps = p.RmsEps,
            QkNorm = p.QkNorm, ExpertFfnDim = p.ExpertFfn,
            RopeScalingFactor = p.YarnFactor != 1f ? p.YarnFactor : p.LinearRopeFactor, RopeYarn = p.YarnFactor != 1f, RopeOriginalContext = p.YarnOriginalContext,
            Moe = p.Experts > 0 ? Qwen3Moe.Routing with { ExpertCount = p.Experts, ExpertsUsed = p.ExpertsUsed } : null,
        }.WriteKeys(w);
        if (p.IsGemma)
            new Gemma3Params(p.SlidingWindow, Gemma3Params.Pattern(p.Layers, p.SlidingPattern), Gemma3Params.DefaultRopeBaseSliding, 0f, 0f)
                .WriteKeys(w, a);
        w.Set("general.file_type", (uint)o.FileType);
        if (QuantMix.IsQuantized(QuantMix.DefaultType(o.FileType))) w.Set("general.quantization_version", GgufQuantizer.QuantizationVersion);

        WriteTokenizer(w, tok, string.IsNullOrEmpty(tok.Pre) || tok.Pre == "default" ? p.Pre : tok.Pre,
            tok.AddBos ?? (p.Arch == Llama.Name || p.IsGemma), p.IsGemma ? Gemma3Chat : p.QkNorm ? Qwen3Chat : p.IsQwen ? ChatMl : Llama3Chat);
    }

    private static void WriteTokenizer(GgufWriter w, TokenizerData tok, string pre, bool addBos, string chatTemplate)
    {
        (tok with { Pre = pre, AddBos = addBos }).WriteTo(w);
        w.Set("tokenizer.chat_template", chatTemplate);
    }

    /// <summary>
    /// A `deepseek2` file (MLA + MoE) in the shapes of <paramref name="config"/>, with a synthetic byte-level vocabulary.
    /// Expert matrices take the file type's base quant type (K-quant mixes are a llama/qwen2 notion here).
    /// </summary>
    public static void WriteDeepSeek2(string path, string name, DeepSeek2Config config, FileType fileType, ulong seed)
    {
        if (Directory.Exists(path)) throw new ArgumentException($"output '{path}' is a directory");
        var tok = SyntheticVocab.Create(Math.Max(config.VocabSize, 512), "deepseek-v3"); // byte tokens + specials need room
        var w = new GgufWriter();
        DeepSeek2Synth.Write(w, config with { VocabSize = tok.Tokens.Length }, QuantMix.DefaultType(fileType), (int)(seed & 0x7fffffff), $"Sputnik synthetic {name}");
        w.Set("general.file_type", (uint)fileType);
        WriteTokenizer(w, tok, "deepseek-v3", addBos: true, ChatMl);
        w.Write(path);
    }

    /// <summary>Llama 3.1-style RoPE frequency factors (original context 8192, low/high frequency factors 1 and 4).</summary>
    private static void Llama3RopeFactors(SynthPreset p, Span<float> dst)
    {
        double factor = p.Llama3RopeFactor ?? 1, oldCtx = 8192, lowFreqWavelen = oldCtx / 1.0, highFreqWavelen = oldCtx / 4.0;
        for (int i = 0; i < dst.Length; i++)
        {
            double freq = 1.0 / Math.Pow(p.RopeBase, 2.0 * i / p.HeadDim);
            double wavelen = 2 * Math.PI / freq;
            if (wavelen < highFreqWavelen) dst[i] = 1f;
            else if (wavelen > lowFreqWavelen) dst[i] = (float)factor;
            else
            {
                double smooth = (oldCtx / wavelen - 1.0) / (4.0 - 1.0);
                dst[i] = (float)(1.0 / ((1 - smooth) / factor + smooth));
            }
        }
    }

    /// <summary>SplitMix64's finalizer: a good 64-bit mixer for deriving independent seeds.</summary>
    internal static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    internal static void Gaussian(ulong seed, float sigma, Span<float> dst)
    {
        ulong s = seed;
        for (int i = 0; i < dst.Length; i += 2)
        {
            s = Mix(s);
            double u1 = ((s >> 11) + 1) * (1.0 / 9007199254740993.0); // (0, 1]
            s = Mix(s);
            double u2 = (s >> 11) * (1.0 / 9007199254740992.0);
            double r = Math.Sqrt(-2 * Math.Log(u1)) * sigma;
            dst[i] = (float)(r * Math.Cos(2 * Math.PI * u2));
            if (i + 1 < dst.Length) dst[i + 1] = (float)(r * Math.Sin(2 * Math.PI * u2));
        }
    }

    /// <summary>Up to 4M N(0, σ) weights encoded in one ggml type, sampled block by block to fill rows.</summary>
    private sealed class WeightPool
    {
        private const int PoolRow = 256;
        private readonly int _poolWeights;
        private readonly byte[] _bytes;
        private readonly GgmlType _type;
        private readonly int _unitWeights, _unitBytes, _unitMask;
        private readonly float[] _floats;

        public WeightPool(GgmlType type, ulong seed, float sigma, int poolWeights, int threads)
        {
            _poolWeights = poolWeights;
            _type = type;
            _floats = new float[_poolWeights];
            Gaussian(Mix(seed ^ 0x5EED), sigma, _floats);
            _unitWeights = GgmlTypeInfo.BlockSize(type) == 256 ? 256 : 32;
            _unitBytes = (int)GgmlTypeInfo.RowBytes(type, _unitWeights);
            _unitMask = _poolWeights / _unitWeights - 1;
            int rowBytes = (int)GgmlTypeInfo.RowBytes(type, PoolRow);
            _bytes = new byte[_poolWeights / PoolRow * rowBytes];
            Parallel.For(0, _poolWeights / PoolRow, new ParallelOptions { MaxDegreeOfParallelism = threads }, r =>
                Quant.Row(type, _floats.AsSpan(r * PoolRow, PoolRow), _bytes.AsSpan(r * rowBytes, rowBytes)));
        }

        public void FillRow(Span<byte> dst, long cols, ulong seed)
        {
            ulong s = seed;
            if (cols % _unitWeights == 0)
            {
                int units = (int)(cols / _unitWeights);
                for (int u = 0; u < units; u++)
                {
                    s = Mix(s);
                    int k = (int)(s >> 32) & _unitMask;
                    _bytes.AsSpan(k * _unitBytes, _unitBytes).CopyTo(dst.Slice(u * _unitBytes, _unitBytes));
                }
                return;
            }
            // Float types with an odd row length: sample single weights.
            var row = new float[cols];
            for (long i = 0; i < cols; i++)
            {
                s = Mix(s);
                row[i] = _floats[(int)(s >> 32) & (_poolWeights - 1)];
            }
            Quant.Row(_type, row, dst);
        }
    }
}
