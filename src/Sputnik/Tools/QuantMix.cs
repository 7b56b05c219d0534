using System.Globalization;
using Sputnik.Models;
using Sputnik.Tensors;

namespace Sputnik.Tools;

/// <summary>llama.cpp's LLAMA_FTYPE ids, as stored in <c>general.file_type</c>.</summary>
internal enum FileType
{
    AllF32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q8_0 = 7,
    Q5_0 = 8,
    Q5_1 = 9,
    Q4_K_S = 14,
    Q4_K_M = 15,
    Q5_K_S = 16,
    Q5_K_M = 17,
    Q6_K = 18,
    BF16 = 32,
    /// <summary>llama.cpp's MOSTLY_MXFP4_MOE: routed experts (3-D tensors) in MXFP4, every other matrix Q8_0.</summary>
    Mxfp4Moe = 38,
}

/// <summary>
/// Which ggml type each tensor gets for a target <see cref="FileType"/>, following llama.cpp's quantizer
/// (llama-quant.cpp): only 2-D+ weights that are not norms are quantized; the output matrix (or the token
/// embedding when it is tied to the output) gets Q6_K; Q4_K_M / Q5_K_M give Q6_K to the attention-V-like tensors
/// (attn_v, attn_qkv, attn_kv_b) and ffn_down on the "use more bits" ones; Q4_K_S gives Q5_K to the first four
/// attention-V-like tensors and the first eighth of ffn_down; models with exactly 8 experts get Q8_0 attn_v and
/// attn_k and (K-quants) Q5_K attn_output; rows whose length does not fit the block size fall back (Q4_K→Q5_0,
/// Q5_K→Q5_1, Q6_K→Q8_0, then F16). Not followed: llama.cpp's 70B rule (attn_v one step up for 80-layer llama).
/// </summary>
internal sealed class QuantMix
{
    public FileType FileType { get; }

    /// <summary>Number of transformer blocks (n_layer_all, MTP layers included): ffn_down's "use more bits" scale.</summary>
    public int Layers { get; }

    /// <summary>False when the model has no output.weight: the token embedding doubles as the output and follows its rule.</summary>
    public bool HasOutput { get; }

    /// <summary>llama.cpp's hparams.n_expert (0 for a dense model): exactly 8 experts changes the attention types.</summary>
    public int Experts { get; init; }

    // llama.cpp's i_attention_wv / i_ffn_down: each such tensor's rank among its kind in the loader's order (by
    // layer, then name). Null: every layer has exactly one, so the rank is the layer (the constructor's assumption).
    private IReadOnlyDictionary<string, int>? _attnVRank, _ffnDownRank;
    private int _attnVCount;

    public QuantMix(FileType fileType, int layers, bool hasOutput)
    {
        FileType = fileType;
        Layers = layers;
        HasOutput = hasOutput;
        _attnVCount = layers;
    }

    /// <summary>
    /// The mix for a file of these tensors (names and ggml dims), as llama-quantize sets it up from the file: the
    /// output is tied when there is no output.weight, the expert count is the stacked experts' third dimension, and
    /// the attention-V-like tensors are counted and ranked (qwen35: attn_qkv of its recurrent layers and attn_v of
    /// its attention layers together; one per layer).
    /// </summary>
    public static QuantMix For(FileType fileType, int layers, IEnumerable<(string Name, long[] Dims)> tensors)
    {
        var list = tensors.ToList();
        // llama_model_loader's weights_map order: block number first (−1 outside blocks), then the name's bytes.
        var ordered = list.Select(t => t.Name).OrderBy(TensorNames.LayerOf).ThenBy(n => n, StringComparer.Ordinal).ToList();
        Dictionary<string, int> Rank(TensorCategory category)
        {
            var rank = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (string n in ordered)
                if (CategoryOf(n) == category) rank[n] = rank.Count;
            return rank;
        }
        var attnV = Rank(TensorCategory.AttentionV);
        return new QuantMix(fileType, layers, list.Any(t => t.Name == TensorNames.Weight(TensorNames.Output)))
        {
            Experts = list.Where(t => t.Name.Contains("_exps.", StringComparison.Ordinal) && t.Dims.Length > 2).Select(t => (int)t.Dims[2]).DefaultIfEmpty(0).Max(),
            _attnVRank = attnV,
            _attnVCount = attnV.Count,
            _ffnDownRank = Rank(TensorCategory.FfnDown),
        };
    }

    /// <summary>llama.cpp's tensor_category, in the order its tensor_get_category tests the names.</summary>
    private enum TensorCategory { Output, TokenEmbd, AttentionV, AttentionK, AttentionQ, AttentionOutput, FfnUp, FfnGate, FfnDown, Other }

    // attn_qkv and attn_kv_b are their own categories in llama.cpp, but every rule treats them as attn_v
    // (category_is_attn_v is tested first), so they share AttentionV here.
    private static TensorCategory CategoryOf(string name)
    {
        bool Has(string part) => name.Contains(part, StringComparison.Ordinal);
        if (name == TensorNames.Weight(TensorNames.Output)) return TensorCategory.Output;
        if (name == TensorNames.Weight(TensorNames.TokenEmbd)) return TensorCategory.TokenEmbd;
        if (Has("attn_qkv.weight") || Has("attn_kv_b.weight") || Has("attn_v.weight")) return TensorCategory.AttentionV;
        if (Has("attn_k.weight")) return TensorCategory.AttentionK;
        if (Has("attn_q.weight")) return TensorCategory.AttentionQ;
        if (Has("attn_output.weight")) return TensorCategory.AttentionOutput;
        if (Has("ffn_up")) return TensorCategory.FfnUp;
        if (Has("ffn_gate")) return TensorCategory.FfnGate;
        return Has("ffn_down") ? TensorCategory.FfnDown : TensorCategory.Other;
    }

    private static readonly (string Name, FileType Type)[] Names =
    [
        ("F32", FileType.AllF32), ("F16", FileType.F16), ("BF16", FileType.BF16), ("Q8_0", FileType.Q8_0),
        ("Q4_0", FileType.Q4_0), ("Q4_1", FileType.Q4_1), ("Q5_0", FileType.Q5_0), ("Q5_1", FileType.Q5_1),
        ("Q4_K_S", FileType.Q4_K_S), ("Q4_K_M", FileType.Q4_K_M), ("Q5_K_S", FileType.Q5_K_S), ("Q5_K_M", FileType.Q5_K_M),
        ("Q6_K", FileType.Q6_K), ("MXFP4", FileType.Mxfp4Moe),
    ];

    /// <summary>The type names accepted on the command line.</summary>
    public static IEnumerable<string> TypeNames => Names.Select(n => n.Name);

    /// <summary>Parses a type name such as "Q4_K_M" (case-insensitive; "Q4_K" means Q4_K_M, "Q5_K" means Q5_K_M).</summary>
    public static FileType Parse(string name)
    {
        string n = name.Trim().ToUpperInvariant();
        n = n switch { "Q4_K" => "Q4_K_M", "Q5_K" => "Q5_K_M", "FP16" => "F16", "FP32" => "F32", "MXFP4_MOE" => "MXFP4", _ => n };
        foreach (var (text, type) in Names)
            if (text == n) return type;
        throw new ArgumentException($"unknown type '{name}' (supported: {string.Join(", ", TypeNames)})");
    }

    public static string Name(FileType t) => Names.FirstOrDefault(n => n.Type == t).Name ?? ((int)t).ToString(CultureInfo.InvariantCulture);

    /// <summary>llama.cpp's llama_model_ftype_name, e.g. "Q4_K - Medium".</summary>
    public static string Describe(FileType t) => t switch
    {
        FileType.AllF32 => "all F32",
        FileType.Q4_K_S => "Q4_K - Small",
        FileType.Q4_K_M => "Q4_K - Medium",
        FileType.Q5_K_S => "Q5_K - Small",
        FileType.Q5_K_M => "Q5_K - Medium",
        FileType.Mxfp4Moe => "MXFP4 MoE",
        _ => Name(t),
    };

    /// <summary>The ggml type most tensors get (llama.cpp's default_type for the ftype).</summary>
    public static GgmlType DefaultType(FileType t) => t switch
    {
        FileType.AllF32 => GgmlType.F32,
        FileType.F16 => GgmlType.F16,
        FileType.BF16 => GgmlType.BF16,
        FileType.Q8_0 => GgmlType.Q8_0,
        FileType.Q4_0 => GgmlType.Q4_0,
        FileType.Q4_1 => GgmlType.Q4_1,
        FileType.Q5_0 => GgmlType.Q5_0,
        FileType.Q5_1 => GgmlType.Q5_1,
        FileType.Q4_K_S or FileType.Q4_K_M => GgmlType.Q4_K,
        FileType.Q5_K_S or FileType.Q5_K_M => GgmlType.Q5_K,
        FileType.Q6_K => GgmlType.Q6_K,
        FileType.Mxfp4Moe => GgmlType.MXFP4,
        _ => throw new ArgumentException($"unsupported file type {t}"),
    };

    /// <summary>True for the block-quantized ggml types (not F32/F16/BF16).</summary>
    public static bool IsQuantized(GgmlType t) => t is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 or GgmlType.F64
        or GgmlType.I8 or GgmlType.I16 or GgmlType.I32 or GgmlType.I64);

    /// <summary>llama.cpp's tensor_allows_quantization for the tensors of llama-family models.</summary>
    public static bool AllowsQuantization(string name, long[] dims)
    {
        if (NDims(dims) < 2) return false; // ggml_n_dims < 2: vectors stay as they are
        return name.EndsWith("weight", StringComparison.Ordinal)
            && !TensorNames.IsNormWeight(name)
            && !name.Contains(TensorNames.Weight(TensorNames.FfnGateInp), StringComparison.Ordinal)
            && !name.Contains(TensorNames.SsmConv1d, StringComparison.Ordinal) // tiny, and ggml's ssm_conv reads F32 only
            && name != TensorNames.Weight(TensorNames.PositionEmbd) && name != TensorNames.Weight(TensorNames.TokenTypes);
    }

    // ggml_n_dims: trailing dimensions of size 1 do not count.
    private static int NDims(long[] dims)
    {
        int n = dims.Length;
        while (n > 1 && dims[n - 1] == 1) n--;
        return n;
    }

    /// <summary>llama.cpp's use_more_bits: the first and last eighth of the layers and every third in between.</summary>
    public static bool UseMoreBits(int layer, int layers) =>
        layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;

    /// <summary>The type <paramref name="name"/> (ggml dims, source type) gets in the target file.</summary>
    public GgmlType Choose(string name, long[] dims, GgmlType sourceType)
    {
        if (!AllowsQuantization(name, dims)) return sourceType;
        var type = DefaultType(FileType);
        if (!IsQuantized(type)) return type;
        long nx = dims[0];
        var ft = FileType;
        bool isOutput = name == TensorNames.Weight(TensorNames.Output) || (!HasOutput && name == TensorNames.Weight(TensorNames.TokenEmbd));
        // llama.cpp's MXFP4_MOE: stacked experts (a third dimension above 1) in MXFP4, everything else Q8_0.
        if (ft == FileType.Mxfp4Moe) return Fallback(!isOutput && dims.Length > 2 && dims[2] > 1 ? GgmlType.MXFP4 : GgmlType.Q8_0, nx);
        if (isOutput)
        {
            if (nx % GgmlTypeInfo.BlockSize(type) != 0) type = GgmlType.Q8_0;
            else if (type != GgmlType.Q8_0) type = GgmlType.Q6_K;
        }
        else switch (CategoryOf(name))
        {
            case TensorCategory.AttentionV:
            {
                int rank = _attnVRank?.GetValueOrDefault(name, -1) is int r and >= 0 ? r : LayerOf(name);
                if ((ft is FileType.Q4_K_M or FileType.Q5_K_M) && UseMoreBits(rank, _attnVCount)) type = GgmlType.Q6_K;
                else if (ft == FileType.Q4_K_S && rank < 4) type = GgmlType.Q5_K;
                if (Experts == 8) type = GgmlType.Q8_0; // "bumping this to Q8_0 trades just ~128MB"
                break;
            }
            case TensorCategory.AttentionK when Experts == 8:
                type = GgmlType.Q8_0;
                break;
            case TensorCategory.AttentionOutput when Experts == 8 && ft is FileType.Q4_K_S or FileType.Q4_K_M:
                type = GgmlType.Q5_K;
                break;
            case TensorCategory.FfnDown: // also ffn_down_exps / _shexp, as llama.cpp matches
            {
                // A MoE model's layer comes from the name; a dense one's is the rank among ffn_down tensors.
                int layer = Experts <= 1 && _ffnDownRank?.GetValueOrDefault(name, -1) is int r and >= 0 ? r : LayerOf(name);
                if ((ft is FileType.Q4_K_M or FileType.Q5_K_M) && UseMoreBits(layer, Layers)) type = GgmlType.Q6_K;
                else if (ft == FileType.Q4_K_S && layer < Layers / 8) type = GgmlType.Q5_K;
                break;
            }
        }
        return Fallback(type, nx);
    }

    /// <summary>llama.cpp's tensor_type_fallback: a row length the block size does not divide demotes the type.</summary>
    public static GgmlType Fallback(GgmlType type, long rowLength)
    {
        if (rowLength % GgmlTypeInfo.BlockSize(type) == 0) return type;
        var t = type switch
        {
            GgmlType.Q4_K => GgmlType.Q5_0,
            GgmlType.Q5_K => GgmlType.Q5_1,
            GgmlType.Q6_K => GgmlType.Q8_0,
            GgmlType.Q2_K or GgmlType.Q3_K => GgmlType.Q4_0,
            _ => type,
        };
        return rowLength % GgmlTypeInfo.BlockSize(t) == 0 ? t : GgmlType.F16;
    }

    private static int LayerOf(string name) =>
        TensorNames.LayerOf(name) is >= 0 and var layer ? layer
        : throw new ArgumentException($"cannot find the layer number in tensor name '{name}'");
}
