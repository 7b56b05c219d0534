using Sputnik.Gguf;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;

namespace Sputnik.Models;

/// <summary>
/// The shapes of the `deepseek2` synth presets (<see cref="DeepSeek2.Info"/> names them) and the streaming writer of
/// synthetic `deepseek2` GGUF files (random weights with the real shapes and llama.cpp's keys), for `sputnik synth`,
/// benchmarks and tests. The caller adds tokenizer keys.
/// </summary>
internal static class DeepSeek2Synth
{
    /// <summary>DeepSeek-V2-Lite shapes: ≈15.7B parameters, ≈2.4B active per token (MLA without q-LoRA, softmax routing).</summary>
    public static DeepSeek2Config V2Lite => new()
    {
        Dim = 2048, Layers = 27, Heads = 16, VocabSize = 102400, ContextLength = 163840, RmsEps = 1e-6f,
        QLoraRank = 0, KvLoraRank = 512, QkNopeDim = 128, QkRopeDim = 64, VHeadDim = 128,
        FfnDim = 10944, LeadingDenseLayers = 1, ExpertCount = 64, ExpertsUsed = 6, SharedExperts = 2, ExpertFfnDim = 1408,
        ExpertWeightsScale = 1f, ExpertWeightsNorm = false, Gating = ExpertGating.Softmax,
        RopeBase = 10000f, RopeScalingFactor = 40f, Yarn = true, RopeOriginalContext = 4096, YarnLogMultiplier = 0.707f,
    };

    /// <summary>A few-MB V3-style model (q-LoRA, sigmoid routing with selection bias, groups) for tests.</summary>
    public static DeepSeek2Config Tiny => new()
    {
        Dim = 64, Layers = 3, Heads = 4, VocabSize = 256, ContextLength = 4096, RmsEps = 1e-6f,
        QLoraRank = 32, KvLoraRank = 32, QkNopeDim = 16, QkRopeDim = 8, VHeadDim = 16,
        FfnDim = 128, LeadingDenseLayers = 1, ExpertCount = 8, ExpertsUsed = 2, SharedExperts = 1, ExpertFfnDim = 32,
        ExpertWeightsScale = 2.5f, ExpertWeightsNorm = true, Gating = ExpertGating.Sigmoid, ExpertGroups = 2, ExpertGroupsUsed = 1,
        RopeBase = 10000f, RopeScalingFactor = 4f, Yarn = true, RopeOriginalContext = 1024, YarnLogMultiplier = 1f,
    };

    /// <summary>general.architecture, general.name and the `deepseek2.*` keys (<see cref="DeepSeek2Config.WriteKeys"/>).</summary>
    public static void SetMetadata(GgufWriter w, DeepSeek2Config c, string name)
    {
        w.Set(GgufKeys.GeneralArchitecture, DeepSeek2Config.Arch).Set(GgufKeys.GeneralName, name);
        c.WriteKeys(w);
    }

    /// <summary>Every tensor of the model: GGUF name, ggml dims (columns first), and whether it is a norm (ones) or a weight.</summary>
    public static IEnumerable<(string Name, long[] Dims, bool Norm)> Tensors(DeepSeek2Config c)
    {
        yield return (TensorNames.Weight(TensorNames.TokenEmbd), [c.Dim, c.VocabSize], false);
        yield return (TensorNames.Weight(TensorNames.OutputNorm), [c.Dim], true);
        yield return (TensorNames.Weight(TensorNames.Output), [c.Dim, c.VocabSize], false);
        for (int l = 0; l < c.Layers + c.NextnLayers; l++)
        {
            if (l >= c.Layers)
            {
                // An MTP block (llama.cpp's nextn layout): its projection and norms, then an ordinary block. It
                // shares the embedding and the output head (no nextn.embed_tokens / shared_head_head).
                yield return (TensorNames.Weight(l, TensorNames.NextnEhProj), [2 * c.Dim, c.Dim], false);
                yield return (TensorNames.Weight(l, TensorNames.NextnEnorm), [c.Dim], true);
                yield return (TensorNames.Weight(l, TensorNames.NextnHnorm), [c.Dim], true);
                yield return (TensorNames.Weight(l, TensorNames.NextnSharedHeadNorm), [c.Dim], true);
            }
            yield return (TensorNames.Weight(l, TensorNames.AttnNorm), [c.Dim], true);
            if (c.QLoraRank > 0)
            {
                yield return (TensorNames.Weight(l, TensorNames.AttnQA), [c.Dim, c.QLoraRank], false);
                yield return (TensorNames.Weight(l, TensorNames.AttnQANorm), [c.QLoraRank], true);
                yield return (TensorNames.Weight(l, TensorNames.AttnQB), [c.QLoraRank, c.Heads * c.QkHeadDim], false);
            }
            else
            {
                yield return (TensorNames.Weight(l, TensorNames.AttnQ), [c.Dim, c.Heads * c.QkHeadDim], false);
            }
            yield return (TensorNames.Weight(l, TensorNames.AttnKvAMqa), [c.Dim, c.KvLoraRank + c.QkRopeDim], false);
            yield return (TensorNames.Weight(l, TensorNames.AttnKvANorm), [c.KvLoraRank], true);
            yield return (TensorNames.Weight(l, TensorNames.AttnKB), [c.QkNopeDim, c.KvLoraRank, c.Heads], false);
            yield return (TensorNames.Weight(l, TensorNames.AttnVB), [c.KvLoraRank, c.VHeadDim, c.Heads], false);
            yield return (TensorNames.Weight(l, TensorNames.AttnOutput), [c.Heads * c.VHeadDim, c.Dim], false);
            yield return (TensorNames.Weight(l, TensorNames.FfnNorm), [c.Dim], true);
            if (!c.IsMoeLayer(l))
            {
                yield return (TensorNames.Weight(l, TensorNames.FfnGate), [c.Dim, c.FfnDim], false);
                yield return (TensorNames.Weight(l, TensorNames.FfnUp), [c.Dim, c.FfnDim], false);
                yield return (TensorNames.Weight(l, TensorNames.FfnDown), [c.FfnDim, c.Dim], false);
                continue;
            }
            yield return (TensorNames.Weight(l, TensorNames.FfnGateInp), [c.Dim, c.ExpertCount], false);
            if (c.Gating == ExpertGating.Sigmoid) yield return (TensorNames.Bias(l, TensorNames.ExpProbsB), [c.ExpertCount], false);
            yield return (TensorNames.Weight(l, TensorNames.FfnGateExps), [c.Dim, c.ExpertFfnDim, c.ExpertCount], false);
            yield return (TensorNames.Weight(l, TensorNames.FfnUpExps), [c.Dim, c.ExpertFfnDim, c.ExpertCount], false);
            yield return (TensorNames.Weight(l, TensorNames.FfnDownExps), [c.ExpertFfnDim, c.Dim, c.ExpertCount], false);
            if (c.SharedExperts > 0)
            {
                int sh = c.SharedExperts * c.ExpertFfnDim;
                yield return (TensorNames.Weight(l, TensorNames.FfnGateShexp), [c.Dim, sh], false);
                yield return (TensorNames.Weight(l, TensorNames.FfnUpShexp), [c.Dim, sh], false);
                yield return (TensorNames.Weight(l, TensorNames.FfnDownShexp), [sh, c.Dim], false);
            }
        }
    }

    /// <summary>
    /// Adds metadata and every tensor of <paramref name="c"/> to <paramref name="w"/> with deterministic random weights
    /// (uniform ±0.05/√cols·8; norms 1; router and 1-D tensors F32). Data is produced in slabs of rows when the
    /// writer streams, so the V2-Lite preset never sits in memory; rows are generated and quantized in parallel (each
    /// row jumps the tensor's generator ahead to its own start, so the bytes do not depend on the thread count).
    /// Types fall back per tensor when rows do not fill blocks.
    /// </summary>
    public static void Write(GgufWriter w, DeepSeek2Config c, GgmlType type, int seed, string name = "deepseek2-synth", int threads = 0)
    {
        SetMetadata(w, c, name);
        if (threads < 1) threads = Environment.ProcessorCount;
        foreach (var (tname, dims, norm) in Tensors(c))
        {
            bool f32 = dims.Length == 1 || TensorNames.IsLayer(tname, TensorNames.FfnGateInp);
            var t = f32 ? GgmlType.F32 : Fit(type, dims[0]);
            int cols = (int)dims[0];
            long rows = dims.Aggregate(1L, (x, y) => x * y) / cols;
            uint state = (uint)seed * 2654435761u ^ Fnv1a(tname);
            float amp = 8f * 0.05f / MathF.Sqrt(cols);
            long rowBytes = GgmlTypeInfo.RowBytes(t, cols);
            w.AddTensor(tname, t, dims, s => Sputnik.Tools.TensorStreams.WriteRows(s, rows, rowBytes, threads, (r, dst) =>
            {
                var row = t_row != null && t_row.Length >= cols ? t_row : t_row = new float[cols];
                uint st = LcgJump(state, r * cols);
                for (int i = 0; i < cols; i++)
                {
                    st = st * LcgA + LcgC;
                    row[i] = norm ? 1f : ((st >> 8) / (float)(1 << 24) - 0.5f) * 2 * amp;
                }
                Quant.Row(t, row.AsSpan(0, cols), dst);
            }));
        }
    }

    [ThreadStatic] private static float[]? t_row;

    private const uint LcgA = 1664525, LcgC = 1013904223;

    /// <summary>The generator's state after <paramref name="steps"/> steps, by squaring the affine map x → a·x + c.</summary>
    private static uint LcgJump(uint state, long steps)
    {
        uint mulAcc = 1, addAcc = 0, mul = LcgA, add = LcgC;
        for (ulong n = (ulong)steps; n != 0; n >>= 1)
        {
            if ((n & 1) != 0) { mulAcc *= mul; addAcc = addAcc * mul + add; }
            add = (mul + 1) * add;
            mul *= mul;
        }
        return mulAcc * state + addAcc;
    }

    // string.GetHashCode is randomised per process; files must be reproducible.
    private static uint Fnv1a(string s)
    {
        uint h = 2166136261;
        foreach (char ch in s) h = (h ^ ch) * 16777619;
        return h;
    }

    /// <summary>The requested type when a row fills whole blocks, else the nearest type that does (as llama-quantize falls back).</summary>
    public static GgmlType Fit(GgmlType type, long cols)
    {
        if (type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16) return type;
        int block = GgmlTypeInfo.BlockSize(type);
        if (cols % block == 0) return type;
        if (block == 256 && cols % 32 == 0) return type == GgmlType.Q6_K ? GgmlType.Q8_0 : GgmlType.Q5_0;
        return GgmlType.F16;
    }
}
