using Sputnik.Gguf;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;

namespace Sputnik.Models;

/// <summary>
/// One base weight's low-rank pair W' = W + s·B·A, in F32 and PyTorch's orientation (what PEFT's lora_A / lora_B hold):
/// <see cref="A"/> is <see cref="Rank"/> rows of <see cref="Inputs"/> values (ggml dims [n_in, rank]), <see cref="B"/> is
/// <see cref="Outputs"/> rows of <see cref="Rank"/> values (ggml dims [rank, n_out]); for a stack of experts (ggml's
/// 3-D "_exps" tensors) each is <see cref="Experts"/> such blocks one after another. <see cref="BaseName"/> is the base
/// model's tensor, e.g. "blk.3.attn_q.weight".
/// </summary>
internal sealed record LoraPair(string BaseName, int Inputs, int Outputs, int Rank, float[] A, float[] B, int Experts = 1)
{
    /// <summary>Expert e's A (Rank × Inputs).</summary>
    public ReadOnlySpan<float> AOf(int expert) => A.AsSpan(expert * Rank * Inputs, Rank * Inputs);

    /// <summary>Expert e's B (Outputs × Rank).</summary>
    public ReadOnlySpan<float> BOf(int expert) => B.AsSpan(expert * Outputs * Rank, Outputs * Rank);
}

/// <summary>
/// A LoRA adapter file exactly as llama.cpp writes and reads it (convert_lora_to_gguf.py, src/llama-adapter.cpp):
/// general.type = adapter, adapter.type = lora, adapter.lora.alpha (F32), general.architecture of the base, and per
/// adapted weight the tensors "&lt;base name&gt;.lora_a" [n_in, rank] and ".lora_b" [rank, n_out] in ggml dim order
/// (a third dim n_expert for expert stacks). The delta added to W·x is scale·alpha/rank·B·(A·x), or scale·B·(A·x)
/// when alpha is 0 (llama_adapter_lora_weight::get_scale). Reading loads every pair into F32 (adapter files are F32,
/// F16, BF16 or Q8_0), checked against the base model it is meant for.
/// </summary>
internal sealed class LoraAdapter
{
    public string Path { get; }
    public string Architecture { get; }
    public float Alpha { get; }
    public IReadOnlyList<LoraPair> Pairs { get; }

    private LoraAdapter(string path, string architecture, float alpha, IReadOnlyList<LoraPair> pairs)
    {
        Path = path;
        Architecture = architecture;
        Alpha = alpha;
        Pairs = pairs;
    }

    /// <summary>The factor of B·A for a user scale: scale·alpha/rank, or the scale alone when alpha is 0 (llama.cpp's rule).</summary>
    public float EffectiveScale(LoraPair pair, float scale) => Alpha != 0 ? scale * Alpha / pair.Rank : scale;

    /// <summary>
    /// Whether llama.cpp's graph for <paramref name="architecture"/> applies an adapter on <paramref name="baseName"/>
    /// (so Sputnik applies it too, and only there). Its deepseek2 graph multiplies MLA's projections with plain
    /// ggml_mul_mat and the output head too: only attn_output (build_attn's wo), the FFNs (leading dense layers and
    /// the shared expert) and the routed experts go through build_lora_mm / build_lora_mm_id. The llama family sends
    /// Q, K, V, the fused QKV, the attention output, the FFN and experts, and the output head through them.
    /// </summary>
    public static bool IsApplied(string architecture, string baseName)
    {
        bool ffn = IsLayerWeight(baseName, TensorNames.FfnGate, TensorNames.FfnUp, TensorNames.FfnDown,
            TensorNames.FfnGateShexp, TensorNames.FfnUpShexp, TensorNames.FfnDownShexp,
            TensorNames.FfnGateExps, TensorNames.FfnUpExps, TensorNames.FfnDownExps);
        if (ffn || IsLayerWeight(baseName, TensorNames.AttnOutput)) return true;
        if (architecture == DeepSeek2Config.Arch) return false;
        return IsLayerWeight(baseName, TensorNames.AttnQ, TensorNames.AttnK, TensorNames.AttnV, TensorNames.AttnQkv)
            || baseName == TensorNames.Weight(TensorNames.Output);
    }

    private static bool IsLayerWeight(string tensor, params ReadOnlySpan<string> names)
    {
        foreach (string name in names)
            if (TensorNames.IsLayer(tensor, name)) return true;
        return false;
    }

    // ---- writing ------------------------------------------------------------------------------

    /// <summary>
    /// Writes an adapter for a base of <paramref name="architecture"/> in F32, each pair as "&lt;base&gt;.lora_a" and
    /// ".lora_b" (the file appears only once complete). Throws ArgumentException for a pair whose arrays do not match its sizes.
    /// </summary>
    public static void Write(string path, string architecture, float alpha, IReadOnlyList<LoraPair> pairs)
    {
        ArgumentException.ThrowIfNullOrEmpty(architecture);
        if (!float.IsFinite(alpha)) throw new ArgumentException($"LoRA alpha must be a finite number, not {alpha}");
        var w = new GgufWriter();
        w.Set(GgufKeys.GeneralArchitecture, architecture);
        w.Set(GgufKeys.GeneralType, GgufKeys.GeneralTypeAdapter);
        w.Set(GgufKeys.AdapterType, GgufKeys.AdapterTypeLora);
        w.Set(GgufKeys.AdapterLoraAlpha, alpha);
        foreach (var p in pairs)
        {
            if (p.Rank < 1 || p.Inputs < 1 || p.Outputs < 1 || p.Experts < 1)
                throw new ArgumentException($"LoRA pair for '{p.BaseName}': sizes must be positive (rank {p.Rank}, {p.Inputs} in, {p.Outputs} out, {p.Experts} experts)");
            if (p.A.Length != (long)p.Experts * p.Rank * p.Inputs || p.B.Length != (long)p.Experts * p.Outputs * p.Rank)
                throw new ArgumentException($"LoRA pair for '{p.BaseName}': A holds {p.A.Length} values and B {p.B.Length}; rank {p.Rank}, {p.Inputs} in, {p.Outputs} out, {p.Experts} experts need {(long)p.Experts * p.Rank * p.Inputs} and {(long)p.Experts * p.Outputs * p.Rank}");
            long[] aDims = p.Experts > 1 ? [p.Inputs, p.Rank, p.Experts] : [p.Inputs, p.Rank];
            long[] bDims = p.Experts > 1 ? [p.Rank, p.Outputs, p.Experts] : [p.Rank, p.Outputs];
            w.AddTensor(p.BaseName + TensorNames.LoraASuffix, p.A, aDims);
            w.AddTensor(p.BaseName + TensorNames.LoraBSuffix, p.B, bDims);
        }
        w.Write(path);
    }

    /// <summary>
    /// Random pairs (uniform in ±<paramref name="sigma"/>, B too, so the adapter changes outputs from the start) for
    /// every weight of <paramref name="baseModel"/> its architecture adapts, rank capped by each matrix: `synth-lora`,
    /// the tests and the llama.cpp agreement check write these.
    /// </summary>
    public static List<LoraPair> RandomPairs(GgufFile baseModel, int rank, float sigma, int seed)
    {
        string arch = baseModel.Architecture ?? "";
        var rng = new Random(seed);
        var pairs = new List<LoraPair>();
        foreach (var t in baseModel.Tensors)
        {
            if (t.Dims.Length < 2 || !IsApplied(arch, t.Name)) continue;
            int inputs = checked((int)t.Dims[0]), outputs = checked((int)t.Dims[1]), experts = checked((int)Trailing(t));
            int r = Math.Min(rank, Math.Min(inputs, outputs));
            var a = new float[(long)experts * r * inputs];
            var b = new float[(long)experts * outputs * r];
            for (int i = 0; i < a.Length; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * sigma;
            for (int i = 0; i < b.Length; i++) b[i] = (float)(rng.NextDouble() * 2 - 1) * sigma;
            pairs.Add(new LoraPair(t.Name, inputs, outputs, r, a, b, experts));
        }
        return pairs;
    }

    // ---- reading ------------------------------------------------------------------------------

    /// <summary>Reads an adapter and checks it against the base model file it will be applied to.</summary>
    public static LoraAdapter Load(string path, GgufFile baseModel) =>
        Load(path, baseModel.Architecture ?? "", baseModel.FindTensor);

    /// <summary>
    /// Reads an adapter for a base of <paramref name="baseArchitecture"/> whose tensors <paramref name="findBaseTensor"/>
    /// looks up. Every problem is one line naming the file and the tensor: not an adapter, another architecture, a
    /// pair missing a half, a base tensor that does not exist or is not one the architecture adapts, shapes that do
    /// not fit the base weight, a rank larger than the matrix. Allocations are the pairs' own values, which the file holds.
    /// </summary>
    public static LoraAdapter Load(string path, string baseArchitecture, Func<string, GgufTensorInfo?> findBaseTensor)
    {
        using var file = GgufFile.Open(path);
        string name = System.IO.Path.GetFileName(path);
        string Fail(string what) => $"LoRA adapter {name}: {what}";

        string generalType = file.GetStringOrNull(GgufKeys.GeneralType) ?? "";
        if (generalType != GgufKeys.GeneralTypeAdapter)
            throw new InvalidDataException(Fail($"general.type is '{DisplayText.Name(generalType)}', expected '{GgufKeys.GeneralTypeAdapter}' (is this a model rather than an adapter?)"));
        string adapterType = file.GetStringOrNull(GgufKeys.AdapterType) ?? "";
        if (adapterType != GgufKeys.AdapterTypeLora)
            throw new InvalidDataException(Fail($"adapter.type is '{DisplayText.Name(adapterType)}', expected '{GgufKeys.AdapterTypeLora}'"));
        string arch = file.Architecture ?? "";
        if (arch != baseArchitecture)
            throw new InvalidDataException(Fail($"made for architecture '{DisplayText.Name(arch)}' but the model is '{DisplayText.Name(baseArchitecture)}'"));
        float alpha = 0;
        if (file.Metadata.ContainsKey(GgufKeys.AdapterLoraAlpha) && (!file.TryGetFloat(GgufKeys.AdapterLoraAlpha, out alpha) || !float.IsFinite(alpha)))
            throw new InvalidDataException(Fail($"{GgufKeys.AdapterLoraAlpha} is not a finite number"));

        // Pair the halves by base name, in file order (llama.cpp's ab_map; norms that mergekit adds are skipped as there).
        var halves = new Dictionary<string, (GgufTensorInfo? A, GgufTensorInfo? B)>();
        var order = new List<string>();
        foreach (var t in file.Tensors)
        {
            bool isA = t.Name.EndsWith(TensorNames.LoraASuffix, StringComparison.Ordinal);
            if (!isA && !t.Name.EndsWith(TensorNames.LoraBSuffix, StringComparison.Ordinal))
            {
                if (TensorNames.IsNormWeight(t.Name)) continue;
                throw new InvalidDataException(Fail($"tensor '{DisplayText.Name(t.Name)}' is neither a {TensorNames.LoraASuffix} nor a {TensorNames.LoraBSuffix} half"));
            }
            string baseName = t.Name[..^TensorNames.LoraASuffix.Length];
            if (!halves.TryGetValue(baseName, out var pair)) order.Add(baseName);
            halves[baseName] = isA ? (t, pair.B) : (pair.A, t);
        }
        if (order.Count == 0) throw new InvalidDataException(Fail("holds no LoRA tensors"));

        var pairs = new List<LoraPair>(order.Count);
        foreach (string baseName in order)
        {
            var (a, b) = halves[baseName];
            string shown = DisplayText.Name(baseName);
            if (a is null || b is null)
                throw new InvalidDataException(Fail($"'{shown}' has a {(a is null ? TensorNames.LoraBSuffix : TensorNames.LoraASuffix)} but no {(a is null ? TensorNames.LoraASuffix : TensorNames.LoraBSuffix)}"));
            var target = findBaseTensor(baseName)
                ?? throw new InvalidDataException(Fail($"adapts '{shown}', which the base model does not have (a different base model?)"));
            if (!IsApplied(baseArchitecture, baseName))
                throw new InvalidDataException(Fail($"adapts '{shown}', but {baseArchitecture} applies adapters only to {AppliedSummary(baseArchitecture)} (as llama.cpp does)"));
            pairs.Add(ReadPair(file, baseName, a, b, target, Fail));
        }
        return new LoraAdapter(path, arch, alpha, pairs);
    }

    /// <summary>The targets <see cref="IsApplied"/> accepts, in words for an error message.</summary>
    private static string AppliedSummary(string architecture) => architecture == DeepSeek2Config.Arch
        ? "attn_output, the FFNs (ffn_gate/up/down, _shexp) and the experts (_exps)"
        : "attn_q/k/v/qkv, attn_output, the FFNs, the experts and output";

    private static LoraPair ReadPair(GgufFile file, string baseName, GgufTensorInfo a, GgufTensorInfo b, GgufTensorInfo target, Func<string, string> fail)
    {
        string shown = DisplayText.Name(baseName);
        string Shape(GgufTensorInfo t) => $"[{string.Join(", ", t.Dims)}]";
        long baseExperts = Trailing(target);
        long aExperts = Trailing(a), bExperts = Trailing(b);
        if (target.Dims.Length < 2 || baseExperts < 1)
            throw new InvalidDataException(fail($"'{shown}' {Shape(target)} is not a matrix"));
        long inputs = target.Dims[0], outputs = target.Dims[1], rank = a.Dims.Length >= 2 ? a.Dims[1] : -1;
        if (a.Dims.Length < 2 || b.Dims.Length < 2 || aExperts < 1 || bExperts < 1
            || a.Dims[0] != inputs || b.Dims[1] != outputs || aExperts != baseExperts || bExperts != baseExperts)
            throw new InvalidDataException(fail(
                $"'{shown}' {Shape(target)} needs {TensorNames.LoraASuffix} [{inputs}, rank{Experts(baseExperts)}] and {TensorNames.LoraBSuffix} [rank, {outputs}{Experts(baseExperts)}], the file has {Shape(a)} and {Shape(b)} (a different base model?)"));
        if (b.Dims[0] != rank)
            throw new InvalidDataException(fail($"'{shown}': {TensorNames.LoraASuffix} {Shape(a)} has rank {rank} but {TensorNames.LoraBSuffix} {Shape(b)} has {b.Dims[0]}"));
        if (rank < 1 || rank > Math.Min(inputs, outputs))
            throw new InvalidDataException(fail($"'{shown}': rank {rank} is larger than the {outputs}×{inputs} matrix allows (at most {Math.Min(inputs, outputs)})"));
        if (inputs > int.MaxValue || outputs > int.MaxValue || baseExperts > int.MaxValue
            || a.ElementCount > Array.MaxLength || b.ElementCount > Array.MaxLength)
            throw new InvalidDataException(fail($"'{shown}' is too large to load"));
        var aValues = Decode(file, a, fail);
        var bValues = Decode(file, b, fail);
        return new LoraPair(baseName, (int)inputs, (int)outputs, (int)rank, aValues, bValues, (int)baseExperts);
    }

    private static string Experts(long n) => n > 1 ? $", {n}" : "";

    /// <summary>The product of a tensor's dims past the first two (1 for a matrix); -1 for fewer than two dims.</summary>
    private static long Trailing(GgufTensorInfo t)
    {
        if (t.Dims.Length < 2) return -1;
        long n = 1;
        for (int i = 2; i < t.Dims.Length; i++) n *= t.Dims[i];
        return n;
    }

    /// <summary>
    /// The tensor's values in F32, row by row. The array is the element count the header states, which the reader has
    /// checked against the bytes the file holds for it (a few times those bytes at most, for a quantized half).
    /// </summary>
    private static float[] Decode(GgufFile file, GgufTensorInfo t, Func<string, string> fail)
    {
        if (!Dequant.IsSupported(t.Type))
            throw new InvalidDataException(fail($"tensor '{DisplayText.Name(t.Name)}' has type {t.Type}, which adapters cannot use"));
        var values = new float[t.ElementCount];
        int cols = (int)t.Columns;
        long rowBytes = GgmlTypeInfo.RowBytes(t.Type, cols);
        var data = file.GetData(t);
        for (long r = 0; r < t.Rows; r++)
            Dequant.Row(t.Type, data.Slice((int)(r * rowBytes), (int)rowBytes), values.AsSpan((int)(r * cols), cols));
        return values;
    }
}
