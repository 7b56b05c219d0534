using System.Numerics.Tensors;
using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// `qwen35` (Qwen3.5 0.8B–27B) as llama.cpp's src/models/qwen35.cpp: a hybrid where three of every four layers are
/// Gated DeltaNet linear attention (<see cref="GatedDeltaNet"/>: a short causal convolution, L2-normed q/k, a decayed
/// delta-rule update of a fixed-size state per head, gated RMSNorm output) and the fourth is gated full attention
/// (attn_q yields a query and an output gate per head, per-head Q/K norms, partial rotary: rope.dimension_count of
/// the head, llama.cpp's interleaved M-RoPE, which for text is NeoX RoPE). Each layer is
/// x += mixer(norm(x)); x += ffn(post_attention_norm(x)). Files may carry MTP layers (nextn_predict_layers) after the
/// trunk; they only draft tokens and are not run here.
/// </summary>
internal static class Qwen35
{
    public const string Name = "qwen35";

    /// <summary>
    /// The keys qwen35/qwen35moe add to <see cref="ModelConfig"/> (llama.cpp's load_arch_hparams): the DeltaNet sizes
    /// (ssm.*), which layers are full attention, the M-RoPE sections, MTP layers and the shared expert's size.
    /// </summary>
    /// <param name="ConvKernel">ssm.conv_kernel: taps of the causal convolution (4).</param>
    /// <param name="InnerSize">ssm.inner_size: value heads × value head size.</param>
    /// <param name="StateSize">ssm.state_size: key (and value) head size.</param>
    /// <param name="TimeStepRank">ssm.time_step_rank: value heads.</param>
    /// <param name="GroupCount">ssm.group_count: key heads (value head h reads key head h mod groups).</param>
    /// <param name="Recurrent">Per trunk layer, whether it is a DeltaNet layer (else full attention).</param>
    /// <param name="RopeSections">rope.dimension_sections: M-RoPE's t/h/w/e sections in rotated pairs.</param>
    /// <param name="NextnLayers">nextn_predict_layers: MTP blocks stored after the trunk (not run).</param>
    /// <param name="SharedExpertFfn">qwen35moe's shared expert width (0: none, dense models).</param>
    public sealed record Params(int ConvKernel, int InnerSize, int StateSize, int TimeStepRank, int GroupCount, bool[] Recurrent,
        int[] RopeSections, int NextnLayers = 0, int SharedExpertFfn = 0) : IArchKeys
    {
        public const int DefaultInterval = 4;

        public int KeyHeads => GroupCount;
        public int ValueHeads => TimeStepRank;
        public int HeadSize => StateSize;
        public int KeyDim => StateSize * GroupCount;
        public int ValueDim => InnerSize;
        /// <summary>Channels of the convolution: q, k and v side by side.</summary>
        public int ConvDim => 2 * KeyDim + ValueDim;

        /// <summary>llama.cpp's default: layer l is recurrent unless (l + 1) mod interval = 0.</summary>
        public static bool[] Pattern(int layers, int interval) => Enumerable.Range(0, layers).Select(l => (l + 1) % interval != 0).ToArray();

        public static Params FromGguf(GgufFile f, ModelConfig c, int trunk)
        {
            string a = c.Architecture;
            int Key(string name, int max)
            {
                string key = GgufKeys.Of(a, name);
                if (!f.TryGetInt64(key, out long v)) throw new GgufFormatException($"{f.Path}: metadata '{key}' is missing");
                if (v < 1 || v > max) throw new GgufFormatException($"metadata '{key}' = {v} is out of range (1 to {max})");
                return (int)v;
            }
            int conv = Key(GgufKeys.SsmConvKernel, 64), inner = Key(GgufKeys.SsmInnerSize, 1 << 20), state = Key(GgufKeys.SsmStateSize, 4096);
            int rank = Key(GgufKeys.SsmTimeStepRank, 4096), groups = Key(GgufKeys.SsmGroupCount, 4096);
            if (inner != state * rank)
                throw new GgufFormatException($"{f.Path}: ssm.inner_size {inner} is not ssm.state_size {state} × ssm.time_step_rank {rank} (key and value heads must have one size)");
            if (rank % groups != 0)
                throw new GgufFormatException($"{f.Path}: ssm.time_step_rank {rank} is not a multiple of ssm.group_count {groups}");

            bool[] recurrent;
            string layersKey = GgufKeys.Of(a, GgufKeys.RecurrentLayers);
            if (f.Metadata.TryGetValue(layersKey, out var rl) && rl.Value is GgufArray { Items: bool[] perLayer })
            {
                if (perLayer.Length < trunk) throw new GgufFormatException($"metadata '{layersKey}' has {perLayer.Length} entries for {trunk} layers");
                recurrent = perLayer[..trunk];
            }
            else
            {
                string key = GgufKeys.Of(a, GgufKeys.FullAttentionInterval);
                long interval = f.TryGetInt64(key, out long v) ? v : DefaultInterval;
                if (interval < 1 || interval > 1 << 16) throw new GgufFormatException($"metadata '{key}' = {interval} is out of range");
                recurrent = Pattern(trunk, (int)interval);
            }

            string sectionsKey = GgufKeys.Of(a, GgufKeys.RopeDimensionSections);
            if (!f.Metadata.TryGetValue(sectionsKey, out var sv) || sv.Value is not GgufArray { Count: >= 3 and <= 4 } arr)
                throw new GgufFormatException($"{f.Path}: metadata '{sectionsKey}' (3 or 4 integers) is missing");
            var sections = new int[4];
            for (int i = 0; i < arr.Count; i++)
            {
                long s = Convert.ToInt64(arr.Items.GetValue(i), System.Globalization.CultureInfo.InvariantCulture);
                if (s < 0 || s > 4096) throw new GgufFormatException($"metadata '{sectionsKey}'[{i}] = {s} is out of range");
                sections[i] = (int)s;
            }
            if (sections[0] + sections[1] + sections[2] == 0) throw new GgufFormatException($"metadata '{sectionsKey}' has no t/h/w section");

            int shared = 0;
            if (c.Moe != null)
                shared = f.TryGetInt64(GgufKeys.Of(a, GgufKeys.ExpertSharedFeedForwardLength), out long sh) && sh > 0 && sh <= 1 << 20 ? (int)sh : c.FfnDim;
            int nextn = f.TryGetInt64(GgufKeys.Of(a, GgufKeys.NextnPredictLayers), out long nx) ? (int)Math.Clamp(nx, 0, 1 << 10) : 0;
            return new Params(conv, inner, state, rank, groups, recurrent, sections, nextn, shared);
        }

        public void WriteKeys(GgufWriter w, string arch)
        {
            string K(string key) => GgufKeys.Of(arch, key);
            w.Set(K(GgufKeys.SsmConvKernel), (uint)ConvKernel);
            w.Set(K(GgufKeys.SsmInnerSize), (uint)InnerSize);
            w.Set(K(GgufKeys.SsmStateSize), (uint)StateSize);
            w.Set(K(GgufKeys.SsmTimeStepRank), (uint)TimeStepRank);
            w.Set(K(GgufKeys.SsmGroupCount), (uint)GroupCount);
            int interval = Enumerable.Range(1, Recurrent.Length + 1).FirstOrDefault(n => Pattern(Recurrent.Length, n).SequenceEqual(Recurrent));
            if (interval > 0) w.Set(K(GgufKeys.FullAttentionInterval), (uint)interval);
            else w.Set(K(GgufKeys.RecurrentLayers), GgufValue.Of(new GgufArray(GgufValueType.Bool, Recurrent)));
            w.Set(K(GgufKeys.RopeDimensionSections), RopeSections);
            if (NextnLayers > 0) w.Set(K(GgufKeys.NextnPredictLayers), (uint)NextnLayers);
            if (SharedExpertFfn > 0) w.Set(K(GgufKeys.ExpertSharedFeedForwardLength), (uint)SharedExpertFfn);
        }

        // Arrays compare by content, so a file read back equals the record that wrote it.
        public bool Equals(Params? o) =>
            o is not null && ConvKernel == o.ConvKernel && InnerSize == o.InnerSize && StateSize == o.StateSize && TimeStepRank == o.TimeStepRank
            && GroupCount == o.GroupCount && Recurrent.AsSpan().SequenceEqual(o.Recurrent) && RopeSections.AsSpan().SequenceEqual(o.RopeSections)
            && NextnLayers == o.NextnLayers && SharedExpertFfn == o.SharedExpertFfn;

        public override int GetHashCode() => HashCode.Combine(ConvKernel, InnerSize, StateSize, TimeStepRank, GroupCount, Recurrent.Length, NextnLayers, SharedExpertFfn);
    }

    /// <summary>The config and its qwen35 keys; <paramref name="routing"/> for qwen35moe's experts.</summary>
    public static (ModelConfig Config, Params Extra) Read(GgufFile file, string arch, RouterConfig? routing = null)
    {
        var c = ModelConfig.FromGguf(file, arch, ropeNeox: true) with { QkNorm = true };
        if (routing != null) c = c.WithExperts(file, routing);
        int nextn = file.TryGetInt64(GgufKeys.Of(arch, GgufKeys.NextnPredictLayers), out long nx) ? (int)nx : 0;
        if (nextn < 0 || nextn >= c.Layers) throw new GgufFormatException($"{file.Path}: {arch}.{GgufKeys.NextnPredictLayers} {nextn} leaves no trunk of {c.Layers} blocks");
        c = c with { Layers = c.Layers - nextn };
        var extra = Params.FromGguf(file, c, c.Layers);
        return (c with { ArchParams = extra }, extra);
    }

    public static ModelConfig Config(GgufFile file) => Read(file, Name).Config;

    public static LanguageModel Load(GgufFile file, WorkerPool pool)
    {
        var (c, p) = Read(file, Name);
        return new Qwen35Decoder(file, c, p, pool);
    }

    /// <summary>
    /// Qwen3.5's chat format as synthetic files carry it (llama.cpp's models/templates/Qwen3.5-4B.jinja, less the
    /// vision and tool parts): thinking is opened by the generation prompt ('&lt;think&gt;\n'), or closed empty with
    /// enable_thinking false; earlier turns' reasoning is dropped, the last turn's kept.
    /// </summary>
    public const string ChatTemplate =
        "{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}{%- endif %}" +
        "{%- set ns = namespace(last_query_index=messages|length - 1) %}" +
        "{%- for message in messages %}{%- if message.role == 'user' %}{%- set ns.last_query_index = loop.index0 %}{%- endif %}{%- endfor %}" +
        "{%- for message in messages %}{%- set content = message.content %}" +
        "{%- if message.role == 'user' %}{{- '<|im_start|>user\\n' + content + '<|im_end|>\\n' }}" +
        "{%- elif message.role == 'assistant' %}{%- set reasoning_content = '' %}" +
        "{%- if message.reasoning_content is string %}{%- set reasoning_content = message.reasoning_content %}" +
        "{%- elif '</think>' in content %}{%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}" +
        "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}" +
        "{%- if loop.index0 > ns.last_query_index %}{{- '<|im_start|>assistant\\n<think>\\n' + reasoning_content|trim + '\\n</think>\\n\\n' + content }}" +
        "{%- else %}{{- '<|im_start|>assistant\\n' + content }}{%- endif %}{{- '<|im_end|>\\n' }}" +
        "{%- elif message.role == 'tool' %}{{- '<|im_start|>user\\n<tool_response>\\n' + content + '\\n</tool_response><|im_end|>\\n' }}{%- endif %}" +
        "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}" +
        "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- else %}{{- '<think>\\n' }}{%- endif %}{%- endif %}";

    /// <summary>
    /// A Qwen3.5 shape: full attention every fourth layer (head size 256, a quarter of it rotated with base 1e7 in
    /// sections 11/11/10), DeltaNet heads of 128 with a 4-tap convolution.
    /// </summary>
    internal static ModelConfig Shape(string arch, int dim, int layers, int ffn, int heads, int kvHeads, int vocab, int context,
        int keyHeads, int valueHeads, int headDim = 256, int ropeDims = 64, int stateSize = 128, int interval = Params.DefaultInterval, int sharedFfn = 0)
    {
        var c = ModelConfig.Create(arch, dim, layers, ffn, heads, kvHeads, vocab, context, ropeBase: 1e7f, rmsEps: 1e-6f, ropeNeox: true, headDim) with
        {
            QkNorm = true, RopeDims = ropeDims,
        };
        int pairs = ropeDims / 2;
        int[] sections = pairs == 32 ? [11, 11, 10, 0] : [pairs - 2 * (pairs / 3), pairs / 3, pairs / 3, 0];
        return c with
        {
            ArchParams = new Params(4, stateSize * valueHeads, stateSize, valueHeads, keyHeads, Params.Pattern(layers, interval), sections, SharedExpertFfn: sharedFfn),
        };
    }

    /// <summary>The tensors llama.cpp's load_arch_tensors reads for a file of this shape (no MTP layers).</summary>
    internal static IEnumerable<TensorDecl> Tensors(SynthPreset preset)
    {
        var c = preset.Config;
        var p = (Params)c.ArchParams!;
        long dim = c.Dim, vocab = c.VocabSize, hd = c.HeadDim;
        yield return new(TensorNames.Weight(TensorNames.TokenEmbd), [dim, vocab], TensorFill.Matrix);
        for (int l = 0; l < c.Layers; l++)
        {
            yield return new(TensorNames.Weight(l, TensorNames.AttnNorm), [dim], TensorFill.Ones);
            yield return new(TensorNames.Weight(l, TensorNames.AttnPostNorm), [dim], TensorFill.Ones);
            if (p.Recurrent[l])
            {
                yield return new(TensorNames.Weight(l, TensorNames.AttnQkv), [dim, p.ConvDim], TensorFill.Matrix);
                yield return new(TensorNames.Weight(l, TensorNames.AttnGate), [dim, p.ValueDim], TensorFill.Matrix);
                yield return new(TensorNames.Weight(l, TensorNames.SsmConv1d), [p.ConvKernel, p.ConvDim], TensorFill.Matrix);
                yield return new(TensorNames.Bias(l, TensorNames.SsmDt), [p.ValueHeads], TensorFill.Bias);
                // −exp(A_log) as the converter stores it: negative, so the state decays (1/4 … 2 per unit of softplus).
                yield return new(TensorNames.Bare(l, TensorNames.SsmA), [p.ValueHeads], TensorFill.Computed, v =>
                {
                    for (int i = 0; i < v.Length; i++) v[i] = -(1 + i % 8) / 4f;
                });
                yield return new(TensorNames.Weight(l, TensorNames.SsmBeta), [dim, p.ValueHeads], TensorFill.Matrix);
                yield return new(TensorNames.Weight(l, TensorNames.SsmAlpha), [dim, p.ValueHeads], TensorFill.Matrix);
                yield return new(TensorNames.Weight(l, TensorNames.SsmNorm), [p.HeadSize], TensorFill.NormJitter);
                yield return new(TensorNames.Weight(l, TensorNames.SsmOut), [p.ValueDim, dim], TensorFill.Matrix);
            }
            else
            {
                yield return new(TensorNames.Weight(l, TensorNames.AttnQ), [dim, 2 * c.QDim], TensorFill.Matrix);
                yield return new(TensorNames.Weight(l, TensorNames.AttnK), [dim, c.KvDim], TensorFill.Matrix);
                yield return new(TensorNames.Weight(l, TensorNames.AttnV), [dim, c.KvDim], TensorFill.Matrix);
                yield return new(TensorNames.Weight(l, TensorNames.AttnOutput), [c.QDim, dim], TensorFill.Matrix);
                yield return new(TensorNames.Weight(l, TensorNames.AttnQNorm), [hd], TensorFill.NormJitter);
                yield return new(TensorNames.Weight(l, TensorNames.AttnKNorm), [hd], TensorFill.NormJitter);
            }
            if (c.Moe is { } moe)
            {
                long experts = moe.ExpertCount, eff = c.ExpertFfnDim, sff = p.SharedExpertFfn;
                yield return new(TensorNames.Weight(l, TensorNames.FfnGateInp), [dim, experts], TensorFill.Matrix);
                yield return new(TensorNames.Weight(l, TensorNames.FfnGateExps), [dim, eff, experts], TensorFill.Matrix);
                yield return new(TensorNames.Weight(l, TensorNames.FfnUpExps), [dim, eff, experts], TensorFill.Matrix);
                yield return new(TensorNames.Weight(l, TensorNames.FfnDownExps), [eff, dim, experts], TensorFill.Matrix);
                yield return new(TensorNames.Weight(l, TensorNames.FfnGateInpShexp), [dim], TensorFill.Bias);
                yield return new(TensorNames.Weight(l, TensorNames.FfnGateShexp), [dim, sff], TensorFill.Matrix);
                yield return new(TensorNames.Weight(l, TensorNames.FfnUpShexp), [dim, sff], TensorFill.Matrix);
                yield return new(TensorNames.Weight(l, TensorNames.FfnDownShexp), [sff, dim], TensorFill.Matrix);
                continue;
            }
            yield return new(TensorNames.Weight(l, TensorNames.FfnGate), [dim, c.FfnDim], TensorFill.Matrix);
            yield return new(TensorNames.Weight(l, TensorNames.FfnUp), [dim, c.FfnDim], TensorFill.Matrix);
            yield return new(TensorNames.Weight(l, TensorNames.FfnDown), [c.FfnDim, dim], TensorFill.Matrix);
        }
        yield return new(TensorNames.Weight(TensorNames.OutputNorm), [dim], TensorFill.Ones);
        if (!preset.TiedEmbeddings) yield return new(TensorNames.Weight(TensorNames.Output), [dim, vocab], TensorFill.Matrix);
    }

    public static readonly ArchitectureInfo Info = new(Name, Load)
    {
        RopeNeox = true,
        Synth = new SynthStyle("qwen35", AddBos: false, ChatTemplate),
        Tensors = Tensors,
        SynthPresets =
        [
            // Two DeltaNet layers then full attention, then one more DeltaNet layer (four layers, interval 3): both
            // layer kinds, GQA in the attention, two value heads per key head in the DeltaNet.
            new("qwen35-tiny", Shape(Name, 256, 4, 512, 4, 2, 1000, 4096, keyHeads: 2, valueHeads: 4, headDim: 64, ropeDims: 16, stateSize: 32, interval: 3), TiedEmbeddings: false),
            // Qwen3.5-4B and 9B as their config.json: 16 query / 4 KV heads of 256, DeltaNet with 16 key and 32 value heads of 128.
            new("qwen3.5-4b", Shape(Name, 2560, 32, 9216, 16, 4, 248320, 262144, keyHeads: 16, valueHeads: 32), TiedEmbeddings: true),
            new("qwen3.5-9b", Shape(Name, 4096, 32, 12288, 16, 4, 248320, 262144, keyHeads: 16, valueHeads: 32), TiedEmbeddings: false),
        ],
    };
}

/// <summary>
/// The qwen35 / qwen35moe layer stack: DeltaNet layers keep a recurrent state per sequence (<see cref="RecurrentState"/>
/// on each <see cref="DecoderState"/>), full-attention layers the usual KV cache, which holds only those layers.
/// </summary>
internal sealed class Qwen35Decoder : DecoderModel
{
    private sealed record Layer(float[] AttnNorm, float[] PostNorm, AttentionWeights? Attention, DeltaNetWeights? DeltaNet,
        FfnWeights? Ffn, MoeWeights? Experts, SharedExpert? Shared);

    /// <summary>qwen35moe's shared expert and its per-token sigmoid gate.</summary>
    private sealed record SharedExpert(float[] GateInp, WeightMatrix Gate, WeightMatrix Up, WeightMatrix Down);

    private readonly Layer[] _layers;
    private readonly int[] _recurrentIndex;
    private readonly int _firstRecurrent, _lastRecurrent;

    public Qwen35.Params Params { get; }

    public Qwen35Decoder(GgufFile file, ModelConfig config, Qwen35.Params p, WorkerPool pool) : base(file, config, pool)
    {
        Params = p;
        int dim = config.Dim;
        _layers = new Layer[config.Layers];
        _recurrentIndex = new int[config.Layers];
        var slots = new int[config.Layers];
        int recurrent = 0, attention = 0;
        _firstRecurrent = _lastRecurrent = -1;
        for (int l = 0; l < config.Layers; l++)
        {
            bool rec = p.Recurrent[l];
            slots[l] = rec ? -1 : attention++;
            _recurrentIndex[l] = rec ? recurrent++ : -1;
            if (rec && _firstRecurrent < 0) _firstRecurrent = l;
            if (rec) _lastRecurrent = l;
            SharedExpert? shared = null;
            if (config.Moe != null)
                shared = new SharedExpert(Vector(TensorNames.Weight(l, TensorNames.FfnGateInpShexp), dim),
                    Matrix(TensorNames.Weight(l, TensorNames.FfnGateShexp), dim, p.SharedExpertFfn),
                    Matrix(TensorNames.Weight(l, TensorNames.FfnUpShexp), dim, p.SharedExpertFfn),
                    Matrix(TensorNames.Weight(l, TensorNames.FfnDownShexp), p.SharedExpertFfn, dim));
            _layers[l] = new Layer(
                Vector(TensorNames.Weight(l, TensorNames.AttnNorm), dim),
                Vector(TensorNames.Weight(l, TensorNames.AttnPostNorm), dim),
                rec ? null : LoadAttention(l, qkNorm: true, gatedQuery: true),
                rec ? LoadDeltaNet(l) : null,
                config.Moe == null ? LoadFfn(l) : null,
                config.Moe != null ? LoadExperts(l) : null,
                shared);
        }
        CacheSlots = slots;
        RecurrentLayers = recurrent;
    }

    /// <summary>Prefill runs the delta rule in chunks (the default); false steps it token by token (tests compare the two).</summary>
    internal bool ChunkedPrefill { get; set; } = true;

    /// <summary>DeltaNet layers (each keeps a state per sequence).</summary>
    public int RecurrentLayers { get; }

    private DeltaNetWeights LoadDeltaNet(int l)
    {
        var p = Params;
        int dim = Config.Dim;
        var conv = Matrix(TensorNames.Weight(l, TensorNames.SsmConv1d), p.ConvKernel, p.ConvDim, mayInterleave: false);
        // Tap-major copy of the kernel (taps × channels), so a token's convolution is a few whole-row multiply-adds.
        var taps = new float[p.ConvKernel * p.ConvDim];
        var row = new float[p.ConvKernel];
        for (int ch = 0; ch < p.ConvDim; ch++)
        {
            conv.GetRow(ch, row);
            for (int k = 0; k < p.ConvKernel; k++) taps[k * p.ConvDim + ch] = row[k];
        }
        return new DeltaNetWeights
        {
            Qkv = Matrix(TensorNames.Weight(l, TensorNames.AttnQkv), dim, p.ConvDim),
            Gate = Matrix(TensorNames.Weight(l, TensorNames.AttnGate), dim, p.ValueDim),
            Beta = Matrix(TensorNames.Weight(l, TensorNames.SsmBeta), dim, p.ValueHeads),
            Alpha = Matrix(TensorNames.Weight(l, TensorNames.SsmAlpha), dim, p.ValueHeads),
            ConvTaps = taps,
            DtBias = Vector(TensorNames.Bias(l, TensorNames.SsmDt), p.ValueHeads),
            A = Vector(TensorNames.Bare(l, TensorNames.SsmA), p.ValueHeads),
            Norm = Vector(TensorNames.Weight(l, TensorNames.SsmNorm), p.HeadSize),
            Out = Matrix(TensorNames.Weight(l, TensorNames.SsmOut), p.ValueDim, dim),
        };
    }

    // A recurrent state cannot be re-rotated or cut in the middle: no context shift.
    public override bool CanShiftContext => false;

    protected override void InitState(DecoderState s) => s.Recurrent = new RecurrentState(Params, RecurrentLayers);

    /// <summary>
    /// llama.cpp's interleaved M-RoPE with every text position equal: pairs in a t/h/w section rotate as NeoX RoPE does,
    /// pairs in the fourth section see position 0 (a frequency divided by ∞ is 0).
    /// </summary>
    protected override float[]? RopeFreqFactors(int contextLength)
    {
        var s = Params.RopeSections;
        int sectors = s[0] + s[1] + s[2] + s[3], pairs = Config.RopeDims / 2;
        var factors = new float[pairs];
        for (int i = 0; i < pairs; i++)
        {
            int sector = i % sectors;
            bool textPosition = (sector % 3 == 1 && sector < 3 * s[1]) || (sector % 3 == 2 && sector < 3 * s[2]) || (sector % 3 == 0 && sector < 3 * s[0]);
            factors[i] = textPosition ? 1f : float.PositiveInfinity;
        }
        return factors;
    }

    protected override void ForwardLayer(DecoderState w, int l, int n)
    {
        var layer = _layers[l];
        int dim = Config.Dim;
        NormRows(w, n, layer.AttnNorm);
        if (layer.DeltaNet is { } d)
        {
            // A prompt feed (not a multi-sequence step) may reach a checkpoint the state was asked to keep.
            if (l == _firstRecurrent && w.Seqs == null) w.Recurrent!.BeginFeed(w.Position, n);
            DeltaNetMixer(w, _recurrentIndex[l], n, d);
            if (l == _lastRecurrent && w.Seqs == null) w.Recurrent!.EndFeed();
        }
        else SelfAttention(w, l, n, layer.Attention!);
        AddResidual(w, n, dim);
        NormRows(w, n, layer.PostNorm);
        if (layer.Experts != null) SharedExpertsFfn(w, n, layer.Experts, layer.Shared!);
        else SwiGluFfn(w, n, layer.Ffn!);
        AddResidual(w, n, dim);
    }

    /// <summary>Xb = ssm_out(GatedDeltaNet(Xb)): the projections, then convolution, recurrence and gated norm per row.</summary>
    private void DeltaNetMixer(DecoderState w, int r, int n, DeltaNetWeights d)
    {
        var s = w.DeltaNet ??= new GatedDeltaNet.Scratch(Params, Config.RmsEps, Pool);
        s.Reserve(n);
        ProjectShared(w, w.Xb, n, d.Qkv, s.Qkv, d.Gate, s.Z, d.Beta, s.Beta);
        Project(w, d.Alpha, w.Xb, n, s.Alpha);
        s.Run(w, r, n, d, ChunkedPrefill);
        w.ActSource = null;
        Project(w, d.Out, s.Core, n, w.Xb);
    }

    /// <summary>
    /// qwen35moe's FFN: routed experts (qwen3moe's routing) plus the shared expert scaled per token by
    /// sigmoid(ffn_gate_inp_shexp · x), summed in one <see cref="ExpertBatch"/> pass.
    /// </summary>
    private void SharedExpertsFfn(DecoderState w, int n, MoeWeights m, SharedExpert shared)
    {
        var moe = Config.Moe!;
        int e = moe.ExpertCount, k = moe.ExpertsUsed, dim = Config.Dim;
        var s = w.Moe ??= new DecoderState.MoeScratch(Pool, Config);
        s.Reserve(n);
        var dn = w.DeltaNet ??= new GatedDeltaNet.Scratch(Params, Config.RmsEps, Pool);
        dn.Reserve(n);
        Project(w, m.Router, w.Xb, n, s.Logits);
        for (int i = 0; i < n; i++)
        {
            s.Router.Route(s.Logits.AsSpan(i * e, e), default, s.Experts.AsSpan(i * k, k), s.Weights.AsSpan(i * k, k));
            float g = TensorPrimitives.Dot(w.Xb.AsSpan(i * dim, dim), shared.GateInp);
            dn.SharedWeights[i] = 1f / (1f + MathF.Exp(-g));
        }
        s.Batch.RunMoe(m.Gate, m.Up, m.Down, s.Experts.AsSpan(0, n * k), s.Weights.AsSpan(0, n * k), k,
            shared.Gate, shared.Up, shared.Down, w.Xb, n, w.Xb, LoraRowsOf(w), dn.SharedWeights.AsSpan(0, n));
        w.ActSource = null;
    }
}
