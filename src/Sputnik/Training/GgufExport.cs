using Sputnik.Inference;
using System.Runtime.InteropServices;
using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Training.Tasks;

namespace Sputnik.Training;

/// <summary>
/// Writes a trained <see cref="TransformerModel"/> as an F32 GGUF that Sputnik and llama.cpp run — architecture
/// `llama` for the dense layout, `deepseek2` (MLA + MoE) for the DeepSeek layout — with the character tokenizer and
/// the R1 chat template, and reads such a file back for further training (GRPO --init).
/// <para>
/// The deepseek2 keys are exactly those <see cref="DeepSeek2Synth.SetMetadata"/> writes for synthetic files, and the
/// tensor list is checked against <see cref="DeepSeek2Synth.Tensors"/>. Every parameter is a straight copy except
/// MLA's kv up-projection: training keeps it as one attn_kv_b [H·(nope+v), rank]; the file carries it split, as
/// llama.cpp's converter writes it, into attn_k_b (ggml dims [nope, rank, H]: per head, W_UKᵀ) and attn_v_b ([rank, v, H]).
/// </para>
/// </summary>
internal static class GgufExport
{
    public static string ArchitectureOf(TrainConfig c) => c.DeepSeek == null ? Llama.Name : DeepSeek2.Name;

    public static void Write(TransformerModel m, string path, string? name = null)
    {
        var c = m.Config;
        name ??= c.DeepSeek == null ? "sputnik-r1-tiny" : "sputnik-r1-tiny-ds";
        var w = new GgufWriter();
        if (c.DeepSeek == null)
        {
            w.Set("general.architecture", Llama.Name);
            w.Set("general.name", name);
            ToModelConfig(c).WriteKeys(w);
        }
        else
        {
            DeepSeek2Synth.SetMetadata(w, ToDeepSeek2Config(c), name);
        }
        w.Set("general.file_type", 0u); // ALL_F32
        R1Format.Vocabulary().WriteTo(w);
        w.Set("tokenizer.chat_template", R1Format.ChatTemplate);
        // Greedy by default: these models are trained and evaluated greedily, and sampling at T 0.7 scores about
        // 15 points lower (docs/training.md). Flags and request fields still override it.
        w.Set(RecommendedSampling.Temperature, 0f);
        var written = new Dictionary<string, long[]>();
        foreach (var (tname, dims, data) in FileTensors(m))
        {
            w.AddTensor(tname, GgmlType.F32, dims, MemoryMarshal.AsBytes(data.AsSpan()).ToArray());
            written.Add(tname, dims);
        }
        if (c.DeepSeek != null) CheckAgainstSynth(written, ToDeepSeek2Config(c));
        string tmp = path + ".tmp";
        w.Write(tmp);
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Rebuilds the trainable model from a file this class wrote (llama or deepseek2).</summary>
    public static TransformerModel Read(string path)
    {
        using var f = GgufFile.Open(path);
        var c = f.Architecture switch
        {
            Llama.Name => FromLlama(f, path),
            DeepSeek2.Name => FromDeepSeek2(DeepSeek2Config.FromGguf(f), path),
            var a => throw new GgufFormatException($"{path}: architecture '{a}' is not one Sputnik trains (llama, deepseek2)"),
        };
        var m = new TransformerModel(c);
        foreach (var s in m.P.Slices)
        {
            if (s.Name.EndsWith("attn_kv_b.weight", StringComparison.Ordinal)) ReadKvB(f, path, m, s);
            else ReadF32(f, path, s.Name, GgufDims(s), m.P.W(s));
        }
        return m;
    }

    // ---- llama ------------------------------------------------------------------------------------------

    private static ModelConfig ToModelConfig(TrainConfig c) => new()
    {
        Architecture = Llama.Name, Dim = c.Dim, Layers = c.Layers, Heads = c.Heads, KvHeads = c.KvHeads, HeadDim = c.HeadDim,
        FfnDim = c.FfnDim, VocabSize = c.Vocab, ContextLength = c.MaxSeq, RopeBase = c.RopeBase, RopeDims = c.HeadDim, RmsEps = c.RmsEps,
    };

    private static TrainConfig FromLlama(GgufFile f, string path)
    {
        var mc = ModelConfig.FromGguf(f, Llama.Name, ropeNeox: false);
        if (mc.HeadDim != mc.Dim / mc.Heads || mc.RopeDims != mc.HeadDim)
            throw new GgufFormatException($"{path}: head size {mc.HeadDim} / rope dims {mc.RopeDims} differ from what training builds (dim / heads)");
        return new TrainConfig
        {
            Vocab = mc.VocabSize, Dim = mc.Dim, Layers = mc.Layers, Heads = mc.Heads, KvHeads = mc.KvHeads, FfnDim = mc.FfnDim,
            MaxSeq = mc.ContextLength, RopeBase = mc.RopeBase, RmsEps = mc.RmsEps,
        };
    }

    // ---- deepseek2 --------------------------------------------------------------------------------------

    public static DeepSeek2Config ToDeepSeek2Config(TrainConfig c)
    {
        var ds = c.DeepSeek ?? throw new ArgumentException("not a DeepSeek-layout config");
        return new DeepSeek2Config
        {
            Dim = c.Dim, Layers = c.Layers, Heads = c.Heads, VocabSize = c.Vocab, ContextLength = c.MaxSeq, RmsEps = c.RmsEps,
            QLoraRank = 0, KvLoraRank = ds.KvLoraRank, QkNopeDim = ds.QkNopeDim, QkRopeDim = ds.QkRopeDim, VHeadDim = ds.VHeadDim,
            FfnDim = c.FfnDim, LeadingDenseLayers = ds.LeadingDenseLayers, ExpertCount = ds.Experts, ExpertsUsed = ds.ExpertsUsed,
            SharedExperts = ds.SharedExperts, ExpertFfnDim = ds.ExpertFfnDim,
            ExpertWeightsScale = ds.RouteScale, ExpertWeightsNorm = true, Gating = ExpertGating.Sigmoid, RopeBase = c.RopeBase,
        };
    }

    private static TrainConfig FromDeepSeek2(DeepSeek2Config d, string path)
    {
        // The training blocks implement one variant of deepseek2: say which feature of the file is outside it.
        string? why = d.QLoraRank != 0 ? "q_lora_rank > 0"
            : d.ExpertCount == 0 ? "no MoE layers"
            : d.Gating != ExpertGating.Sigmoid ? "softmax routing"
            : !d.ExpertWeightsNorm ? "unnormalised expert weights"
            : d.ExpertGroups > 1 ? "grouped routing"
            : d.SharedExperts < 1 ? "no shared expert"
            : d.Yarn ? "YaRN rope scaling" : null;
        if (why != null) throw new GgufFormatException($"{path}: deepseek2 with {why} is not a layout Sputnik trains");
        return new TrainConfig
        {
            Vocab = d.VocabSize, Dim = d.Dim, Layers = d.Layers, Heads = d.Heads, KvHeads = 1, FfnDim = d.FfnDim, MaxSeq = d.ContextLength,
            RopeBase = d.RopeBase, RmsEps = d.RmsEps,
            DeepSeek = new DeepSeekShape
            {
                KvLoraRank = d.KvLoraRank, QkNopeDim = d.QkNopeDim, QkRopeDim = d.QkRopeDim, VHeadDim = d.VHeadDim,
                LeadingDenseLayers = d.LeadingDenseLayers, Experts = d.ExpertCount, ExpertsUsed = d.ExpertsUsed,
                SharedExperts = d.SharedExperts, ExpertFfnDim = d.ExpertFfnDim, RouteScale = d.ExpertWeightsScale,
            },
        };
    }

    /// <summary>The file's tensors: GGUF name, ggml dims (fastest first) and F32 values.</summary>
    private static IEnumerable<(string Name, long[] Dims, float[] Data)> FileTensors(TransformerModel m)
    {
        foreach (var s in m.P.Slices)
        {
            if (!s.Name.EndsWith("attn_kv_b.weight", StringComparison.Ordinal))
            {
                yield return (s.Name, GgufDims(s), m.P.W(s).ToArray());
                continue;
            }
            var ds = m.Config.DeepSeek!;
            int h = m.Config.Heads, rank = ds.KvLoraRank, nope = ds.QkNopeDim, v = ds.VHeadDim, stride = nope + v;
            var kvb = m.P.W(s);
            var kb = new float[h * rank * nope];   // [h][rank][nope]
            var vb = new float[h * v * rank];      // [h][v][rank]
            for (int hh = 0; hh < h; hh++)
                for (int r = 0; r < rank; r++)
                {
                    for (int i = 0; i < nope; i++) kb[(hh * rank + r) * nope + i] = kvb[(hh * stride + i) * rank + r];
                    for (int j = 0; j < v; j++) vb[(hh * v + j) * rank + r] = kvb[(hh * stride + nope + j) * rank + r];
                }
            string prefix = s.Name[..^"attn_kv_b.weight".Length];
            yield return (prefix + "attn_k_b.weight", [nope, rank, h], kb);
            yield return (prefix + "attn_v_b.weight", [rank, v, h], vb);
        }
    }

    private static void ReadKvB(GgufFile f, string path, TransformerModel m, ParamSlice s)
    {
        var ds = m.Config.DeepSeek!;
        int h = m.Config.Heads, rank = ds.KvLoraRank, nope = ds.QkNopeDim, v = ds.VHeadDim, stride = nope + v;
        string prefix = s.Name[..^"attn_kv_b.weight".Length];
        var kb = new float[h * rank * nope];
        var vb = new float[h * v * rank];
        ReadF32(f, path, prefix + "attn_k_b.weight", [nope, rank, h], kb);
        ReadF32(f, path, prefix + "attn_v_b.weight", [rank, v, h], vb);
        var kvb = m.P.W(s);
        for (int hh = 0; hh < h; hh++)
            for (int r = 0; r < rank; r++)
            {
                for (int i = 0; i < nope; i++) kvb[(hh * stride + i) * rank + r] = kb[(hh * rank + r) * nope + i];
                for (int j = 0; j < v; j++) kvb[(hh * stride + nope + j) * rank + r] = vb[(hh * v + j) * rank + r];
            }
    }

    /// <summary>Export must produce exactly the tensors (names and shapes) the synthetic deepseek2 writer does for the same config.</summary>
    private static void CheckAgainstSynth(Dictionary<string, long[]> written, DeepSeek2Config dc)
    {
        var expected = DeepSeek2Synth.Tensors(dc).ToDictionary(t => t.Name, t => t.Dims);
        foreach (var (name, dims) in expected)
            if (!written.TryGetValue(name, out var got) || !got.SequenceEqual(dims))
                throw new InvalidOperationException($"deepseek2 export: tensor {name} [{string.Join(", ", dims)}] " +
                    (got == null ? "is missing" : $"written as [{string.Join(", ", got)}]"));
        foreach (var name in written.Keys)
            if (!expected.ContainsKey(name)) throw new InvalidOperationException($"deepseek2 export: unexpected tensor {name}");
    }

    // ---- shared -----------------------------------------------------------------------------------------

    /// <summary>GGUF dims are fastest-first: a [rows, cols] weight is written as [cols, rows].</summary>
    private static long[] GgufDims(ParamSlice s) => s.Shape.Reverse().Select(d => (long)d).ToArray();

    private static void ReadF32(GgufFile f, string path, string name, long[] dims, Span<float> dst)
    {
        var info = f.GetTensor(name);
        if (info.Type != GgmlType.F32 || !info.Dims.SequenceEqual(dims))
            throw new GgufFormatException($"{path}: tensor {name} is {info.Type} [{string.Join(", ", info.Dims)}], expected F32 [{string.Join(", ", dims)}]");
        MemoryMarshal.Cast<byte, float>(f.GetData(info)).CopyTo(dst);
    }
}
