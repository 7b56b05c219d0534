using System.Numerics.Tensors;
using System.Text.Json;
using Sputnik.Conversion;
using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

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

    /// <summary>
    /// Gemma 3's chat template (google/gemma-3-*-it tokenizer_config.json) for synthetic files: a system message is
    /// folded into the first user turn, the assistant is "model", no thinking.
    /// </summary>
    public const string ChatTemplate =
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

    /// <summary>
    /// The hyper-parameters gemma3 adds to <see cref="ModelConfig"/> (hung on its <see cref="ModelConfig.ArchParams"/>),
    /// read and written under llama.cpp's keys (src/models/gemma3.cpp, load_arch_hparams).
    /// </summary>
    /// <param name="SlidingWindow">Positions a local layer attends to, itself included (0: every layer is global).</param>
    /// <param name="SlidingLayers">Per layer, whether it is local (sliding window); by default five local, then one global.</param>
    /// <param name="RopeBaseSliding">RoPE base of the local layers (rope.freq_base_swa, 10000); global layers take rope.freq_base and any rope scaling.</param>
    /// <param name="AttentionScale">Scale of q·k (no key: <see cref="Scale"/> of the config), 1/√head size except Gemma 3 27B's.</param>
    /// <param name="FinalLogitSoftcap">c in c·tanh(logit/c) on the output logits; 0 for none (Gemma 3 checkpoints have none).</param>
    public sealed record Params(int SlidingWindow, bool[] SlidingLayers, float RopeBaseSliding, float AttentionScale, float FinalLogitSoftcap) : IArchKeys
    {
        public const int DefaultPattern = 6;
        public const float DefaultRopeBaseSliding = 10000f;

        /// <summary>llama.cpp's pattern n: layer l is local unless l mod n = n − 1 (n = 0: all local).</summary>
        public static bool[] Pattern(int layers, int n)
        {
            var local = new bool[layers];
            for (int l = 0; l < layers; l++) local[l] = n == 0 || l % n < n - 1;
            return local;
        }

        /// <summary>Per layer, the window it attends to: <see cref="SlidingWindow"/> on local layers, 0 (everything) on global ones.</summary>
        public int[] LayerWindows() => SlidingLayers.Select(local => SlidingWindow > 0 && local ? SlidingWindow : 0).ToArray();

        /// <summary>As llama.cpp's load_arch_hparams: 27B's (62 layers) scale by width / heads (gemma_pytorch's query_pre_attn_scalar), the rest by head size.</summary>
        public static float Scale(ModelConfig c) =>
            c.Layers == 62 ? 1f / MathF.Sqrt(c.Dim / c.Heads) : 1f / MathF.Sqrt(c.HeadDim);

        /// <summary>The parameters of a config: the window on the layers of pattern n, the default local base, no soft-capping.</summary>
        public static Params Of(ModelConfig c, int window, int pattern = DefaultPattern) =>
            new(window, Pattern(c.Layers, pattern), DefaultRopeBaseSliding, Scale(c), 0f);

        public static Params FromGguf(GgufFile f, ModelConfig c)
        {
            string a = c.Architecture;
            int window = 0;
            string windowKey = GgufKeys.Of(a, GgufKeys.AttentionSlidingWindow);
            if (f.TryGetInt64(windowKey, out long w))
            {
                if (w < 0 || w > 1 << 24) throw new GgufFormatException($"metadata '{windowKey}' = {w} is out of range");
                window = (int)w;
            }
            var local = new bool[c.Layers];
            if (window > 0)
            {
                string key = GgufKeys.Of(a, GgufKeys.SlidingWindowPattern);
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
            float softcap = ModelConfig.FloatKey(f, GgufKeys.Of(a, GgufKeys.FinalLogitSoftcapping), 0f, 0f, float.MaxValue);
            return new Params(window, local, ModelConfig.PositiveFloat(f, GgufKeys.Of(a, GgufKeys.RopeFreqBaseSwa), DefaultRopeBaseSliding), Scale(c), softcap);
        }

        /// <summary>The keys <see cref="FromGguf"/> reads, for `synth` and `convert` (the pattern as its period when it is one).</summary>
        public void WriteKeys(GgufWriter w, string arch)
        {
            if (FinalLogitSoftcap > 0) w.Set(GgufKeys.Of(arch, GgufKeys.FinalLogitSoftcapping), FinalLogitSoftcap);
            if (SlidingWindow <= 0) return;
            w.Set(GgufKeys.Of(arch, GgufKeys.AttentionSlidingWindow), (uint)SlidingWindow);
            int period = Enumerable.Range(1, SlidingLayers.Length + 1).FirstOrDefault(n => Pattern(SlidingLayers.Length, n).SequenceEqual(SlidingLayers));
            string patternKey = GgufKeys.Of(arch, GgufKeys.SlidingWindowPattern);
            if (period != DefaultPattern)
            {
                if (period > 0) w.Set(patternKey, (uint)period);
                else w.Set(patternKey, GgufValue.Of(new GgufArray(GgufValueType.Bool, SlidingLayers)));
            }
            if (RopeBaseSliding != DefaultRopeBaseSliding) w.Set(GgufKeys.Of(arch, GgufKeys.RopeFreqBaseSwa), RopeBaseSliding);
        }

        // The layer pattern is an array: compare it by content, so a file read back equals the record that wrote it.
        public bool Equals(Params? other) =>
            other is not null && SlidingWindow == other.SlidingWindow && SlidingLayers.AsSpan().SequenceEqual(other.SlidingLayers)
            && RopeBaseSliding.Equals(other.RopeBaseSliding) && AttentionScale.Equals(other.AttentionScale) && FinalLogitSoftcap.Equals(other.FinalLogitSoftcap);

        public override int GetHashCode() => HashCode.Combine(SlidingWindow, SlidingLayers.Length, RopeBaseSliding, AttentionScale, FinalLogitSoftcap);
    }

    public static (ModelConfig Config, Params Extra) Read(GgufFile file)
    {
        var c = ModelConfig.FromGguf(file, Name, Info.RopeNeox) with { QkNorm = true };
        var extra = Params.FromGguf(file, c);
        return (c with { ArchParams = extra }, extra);
    }

    public static ModelConfig Config(GgufFile file) => Read(file).Config;

    public static LanguageModel Load(GgufFile file, WorkerPool pool)
    {
        var (config, extra) = Read(file);
        return new Gemma3Decoder(file, config, extra, pool);
    }

    /// <summary>A Gemma 3 size: head size 256 (128 in the tiny one), NeoX RoPE, Q/K norms, window on the layers of the pattern.</summary>
    private static ModelConfig Shape(int dim, int layers, int ffn, int heads, int kvHeads, int vocab, int context, int headDim,
        int window, float linearRope = 1f, int pattern = Params.DefaultPattern)
    {
        var c = ModelConfig.Create(Name, dim, layers, ffn, heads, kvHeads, vocab, context, ropeBase: 1e6f, rmsEps: 1e-6f, ropeNeox: true, headDim) with
        {
            QkNorm = true, RopeScalingFactor = linearRope,
        };
        return c with { ArchParams = Params.Of(c, window, pattern) };
    }

    /// <summary>Llama's layer tensors with Q/K norms, plus the post-attention and post-FFN norms after each block's output.</summary>
    private static IEnumerable<TensorDecl> Tensors(SynthPreset p)
    {
        long dim = p.Config.Dim;
        int attnLayer = 0, ffnLayer = 0;
        foreach (var t in LlamaTensors.Declare(p, qkvBias: false))
        {
            yield return t;
            if (TensorNames.IsLayer(t.Name, TensorNames.AttnOutput))
                yield return new(TensorNames.Weight(attnLayer++, TensorNames.AttnPostNorm), [dim], TensorFill.NormJitter);
            else if (TensorNames.IsLayer(t.Name, TensorNames.FfnDown))
                yield return new(TensorNames.Weight(ffnLayer++, TensorNames.FfnPostNorm), [dim], TensorFill.NormJitter);
        }
    }

    // ---- convert: Gemma3ForCausalLM as llama.cpp's Gemma3Model converts it ----

    /// <summary>
    /// Gemma3ForCausalLM's config.json: Gemma's defaults (head size 256, 4 KV heads, θ 1e6, ε 1e-6), the vocabulary
    /// trimmed to the tokenizer (the embedding has rows beyond it, which llama.cpp drops), linear rope scaling on the
    /// global layers, and <see cref="Params"/>: the sliding window (none when every layer is global), which layers are
    /// local, the local RoPE base and the final soft-capping.
    /// </summary>
    private static ModelConfig ConfigFromHf(HfCheckpoint ck)
    {
        if (ck.TryGet("attn_logit_softcapping", out var als) && als.ValueKind == JsonValueKind.Number)
            throw new UnsupportedModelException("config.json: attn_logit_softcapping is set; Gemma 3 has none (llama.cpp's gemma3 cannot run it)");
        int vocab = Math.Min(ck.Int("vocab_size"), ck.TokenizerSize());
        int layers = ck.Int("num_hidden_layers");
        var c = ModelConfig.Create(Name, ck.Int("hidden_size"), layers, ck.Int("intermediate_size"), ck.Int("num_attention_heads"), ck.Int("num_key_value_heads", 4),
            vocab, ck.Int("max_position_embeddings", 131072), ck.Float("rope_theta", 1e6f), ck.Float("rms_norm_eps", 1e-6f),
            ropeNeox: Info.RopeNeox, ck.Int("head_dim", 256)) with { QkNorm = true };
        if (ck.RopeScaling() is { } rs && HfCheckpoint.RopeScalingType(rs) == "linear")
            c = c with { RopeScalingFactor = HfCheckpoint.Number(rs, "factor", 1f) };
        // Which layers are local: layer_types (newer transformers) or sliding_window_pattern (every n-th layer global).
        int pattern = ck.Int("sliding_window_pattern", Params.DefaultPattern);
        var local = Params.Pattern(layers, pattern);
        if (ck.TryGet("layer_types", out var lt) && lt.ValueKind == JsonValueKind.Array && lt.GetArrayLength() == layers)
            local = lt.EnumerateArray().Select(e => e.GetString() == "sliding_attention").ToArray();
        int window = pattern == 1 || !local.Any(x => x) ? 0 : ck.Int("sliding_window", 4096);
        return c with
        {
            ArchParams = new Params(window, local, ck.Float("rope_local_base_freq", Params.DefaultRopeBaseSliding), Params.Scale(c), ck.Float("final_logit_softcapping", 0f)),
        };
    }

    /// <summary>
    /// Gemma3ForCausalLM's tensors: the head tied unless stated otherwise, pre- and post-norms around attention and the
    /// feed-forward, per-head Q/K norms, and every norm weight stored as 1 + w (Gemma's RMSNorm multiplies by 1 + w;
    /// llama.cpp's converter adds the 1 so the norm applies as any other).
    /// </summary>
    private static void PlanHfTensors(HfTensorPlan plan, ModelConfig c)
    {
        const float normShift = 1f;
        plan.AddEmbeddingsAndHead(normShift, tiedByDefault: true, vocabRows: c.VocabSize);
        LlamaHf.AddLlama3RopeFreqs(plan, c.HeadDim);
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"model.layers.{l}.";
            string W(string name) => TensorNames.Weight(l, name);
            plan.Add(W(TensorNames.AttnNorm), p + "input_layernorm.weight", shift: normShift);
            plan.Add(W(TensorNames.AttnQ), p + "self_attn.q_proj.weight");
            plan.Add(W(TensorNames.AttnK), p + "self_attn.k_proj.weight");
            plan.Add(W(TensorNames.AttnV), p + "self_attn.v_proj.weight");
            plan.Add(W(TensorNames.AttnQNorm), p + "self_attn.q_norm.weight", shift: normShift);
            plan.Add(W(TensorNames.AttnKNorm), p + "self_attn.k_norm.weight", shift: normShift);
            plan.Add(W(TensorNames.AttnOutput), p + "self_attn.o_proj.weight");
            plan.Add(W(TensorNames.AttnPostNorm), p + "post_attention_layernorm.weight", shift: normShift);
            plan.Add(W(TensorNames.FfnNorm), p + "pre_feedforward_layernorm.weight", shift: normShift);
            LlamaHf.AddSwiGlu(plan, l, p + "mlp.");
            plan.Add(W(TensorNames.FfnPostNorm), p + "post_feedforward_layernorm.weight", shift: normShift);
        }
    }

    /// <summary>`info`: the local layers' window, which layers use it, their RoPE base, and the q·k scale.</summary>
    private static void DescribeInfo(GgufFile file, System.Text.Json.Nodes.JsonObject o)
    {
        if (!file.TryGetInt64(GgufKeys.Of(Name, GgufKeys.AttentionSlidingWindow), out long window) || window <= 0
            || !file.TryGetInt64(GgufKeys.Of(Name, GgufKeys.BlockCount), out long layers) || layers is <= 0 or > 4096) return;
        o["sliding_window"] = window;
        var p = Read(file).Extra;
        o["local_layers"] = $"{p.SlidingLayers.Count(x => x)} of {layers} (global: {string.Join(", ", Enumerable.Range(0, p.SlidingLayers.Length).Where(l => !p.SlidingLayers[l]))})";
        o["rope_freq_base_local"] = p.RopeBaseSliding;
        o["attention_scale"] = p.AttentionScale;
    }

    public static readonly ArchitectureInfo Info = new(Name, Load)
    {
        RopeNeox = true,
        HfArchitectures = ["Gemma3ForCausalLM"],
        Convert = HfConversion.Of<ModelConfig>(ConfigFromHf, PlanHfTensors),
        DescribeInfo = DescribeInfo,
        // Gemma's tokenizer adds BOS; its vocabulary carries Gemma's control tokens (end_of_turn ends a reply).
        Synth = new SynthStyle("llama-bpe", AddBos: true, ChatTemplate) { CreateVocab = n => Tools.SyntheticVocab.Create(n, "llama-bpe", gemma: true) },
        Tensors = Tensors,
        SynthPresets =
        [
            // Head size 256 in every size, five local (sliding-window) layers to one global. gemma3-tiny puts a 16-token
            // window on alternate layers and Gemma 3 4B's linear ×8 RoPE scaling on the global ones, so the llama.cpp
            // check covers prompts longer than the window and both RoPE tables; its output head is untied, since with
            // random weights a tied head mostly repeats the last token (its √d-scaled embedding dominates the stream).
            new("gemma3-tiny", Shape(256, 4, 512, 4, 2, 1000, 4096, 128, window: 16, linearRope: 8f, pattern: 2), TiedEmbeddings: false),
            new("gemma3-1b", Shape(1152, 26, 6912, 4, 1, 262144, 32768, 256, window: 512), TiedEmbeddings: true),
            new("gemma3-4b", Shape(2560, 34, 10240, 8, 4, 262208, 131072, 256, window: 1024, linearRope: 8f), TiedEmbeddings: true),
            new("gemma3-12b", Shape(3840, 48, 15360, 16, 8, 262208, 131072, 256, window: 1024, linearRope: 8f), TiedEmbeddings: true),
        ],
    };
}

internal sealed class Gemma3Decoder : DecoderModel
{
    private sealed record Layer(float[] AttnNorm, AttentionWeights Attention, float[] AttnPostNorm, float[] FfnNorm, FfnWeights Ffn, float[] FfnPostNorm);

    private readonly Layer[] _layers;
    private readonly float _embedScale;

    public Gemma3.Params Params { get; }

    public Gemma3Decoder(GgufFile file, ModelConfig config, Gemma3.Params p, WorkerPool pool) : base(file, config, pool)
    {
        Params = p;
        _embedScale = MathF.Sqrt(config.Dim);
        _layers = new Layer[config.Layers];
        for (int l = 0; l < config.Layers; l++)
        {
            _layers[l] = new Layer(
                Vector(TensorNames.Weight(l, TensorNames.AttnNorm), config.Dim),
                LoadAttention(l, qkNorm: true),
                Vector(TensorNames.Weight(l, TensorNames.AttnPostNorm), config.Dim),
                Vector(TensorNames.Weight(l, TensorNames.FfnNorm), config.Dim),
                LoadFfn(l),
                Vector(TensorNames.Weight(l, TensorNames.FfnPostNorm), config.Dim));
        }
        // Local layers attend to their window (a token at p sees p − window + 1 … p) and keep only a ring of it.
        LayerWindows = p.LayerWindows();
        LayerScales = Enumerable.Repeat(p.AttentionScale, config.Layers).ToArray();
    }

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
