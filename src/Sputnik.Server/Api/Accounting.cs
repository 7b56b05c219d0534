using Sputnik.Inference;
using Sputnik.Server.Scheduling;

namespace Sputnik.Server.Api;

/// <summary>Usage, timings and cost of a finished job, in the API's shapes.</summary>
internal static class Accounting
{
    public static Usage Usage(GenerationStats s)
    {
        int hit = s.CachedPromptTokens, miss = s.PromptTokens - s.CachedPromptTokens;
        return new Usage(s.PromptTokens, s.GeneratedTokens, s.PromptTokens + s.GeneratedTokens, hit, miss,
            new PromptTokensDetails(hit), new CompletionTokensDetails(s.ReasoningTokens));
    }

    public static Timings Timings(GenerationStats s)
    {
        int promptN = s.PromptTokens - s.CachedPromptTokens;
        return new Timings(
            promptN, R(s.PromptMs), promptN > 0 ? R(s.PromptMs / promptN) : 0, R(s.PromptTokensPerSecond),
            s.GeneratedTokens, R(s.GenerationMs), s.GeneratedTokens > 0 ? R(s.GenerationMs / s.GeneratedTokens) : 0,
            R(s.GenerationTokensPerSecond), s.CachedPromptTokens,
            s.DraftedTokens > 0 ? s.DraftedTokens : null, s.DraftedTokens > 0 ? s.AcceptedTokens : null);
    }

    public static CostEstimate Cost(InferenceJob job, ServerOptions o)
    {
        var s = job.Stats;
        var p = o.Prices;
        double hit = s.CachedPromptTokens * p.CacheHitInput / 1e6;
        double miss = (s.PromptTokens - s.CachedPromptTokens) * p.CacheMissInput / 1e6;
        double output = s.GeneratedTokens * p.Output / 1e6;
        return new CostEstimate("USD", R9(hit), R9(miss), R9(output), R9(hit + miss + output),
            R(job.CpuSeconds), R(job.CpuSeconds * o.WattsPerCore));
    }

    public static string FinishReason(FinishReason r) => r switch
    {
        Inference.FinishReason.Length or Inference.FinishReason.ContextFull => "length",
        _ => "stop",
    };

    private static double R(double v) => Math.Round(v, 3);
    private static double R9(double v) => Math.Round(v, 9);
}
