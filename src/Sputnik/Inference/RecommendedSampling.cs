using Sputnik.Gguf;

namespace Sputnik.Inference;

/// <summary>
/// The sampler settings a model's author recommends, stored in the GGUF as <c>general.sampling.*</c> (the keys llama.cpp
/// reads, ggml-org/llama.cpp#17120). They replace the built-in defaults; anything the user sets (a CLI flag, a request
/// field) still wins. A key with a value out of range is ignored, so a hostile file cannot break sampling.
/// </summary>
internal static class RecommendedSampling
{
    public const string Temperature = "general.sampling.temp";
    public const string TopK = "general.sampling.top_k";
    public const string TopP = "general.sampling.top_p";
    public const string MinP = "general.sampling.min_p";
    public const string RepeatPenalty = "general.sampling.penalty_repeat";
    public const string PenaltyLastN = "general.sampling.penalty_last_n";

    /// <summary><paramref name="baseline"/> with every valid <c>general.sampling.*</c> value of <paramref name="file"/> applied.</summary>
    public static SamplingOptions Apply(GgufFile file, SamplingOptions baseline)
    {
        var s = baseline;
        if (file.TryGetFloat(Temperature, out float t) && t is >= 0 and <= 100) s = s with { Temperature = t };
        if (file.TryGetInt64(TopK, out long k) && k is >= 0 and <= int.MaxValue) s = s with { TopK = (int)k };
        if (file.TryGetFloat(TopP, out float p) && p is > 0 and <= 1) s = s with { TopP = p };
        if (file.TryGetFloat(MinP, out float m) && m is >= 0 and <= 1) s = s with { MinP = m };
        if (file.TryGetFloat(RepeatPenalty, out float r) && r is > 0 and <= 100) s = s with { RepeatPenalty = r };
        if (file.TryGetInt64(PenaltyLastN, out long n) && n is >= -1 and <= int.MaxValue) s = s with { PenaltyLastN = (int)n };
        return s;
    }
}
