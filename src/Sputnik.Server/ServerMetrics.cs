using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace Sputnik.Server;

/// <summary>Counters behind GET /metrics (Prometheus text format).</summary>
internal sealed class ServerMetrics
{
    private readonly ConcurrentDictionary<int, long> _byStatus = new();
    private long _promptTokens, _cachedTokens, _generatedTokens, _requestsDone, _draftedTokens, _acceptedTokens;
    private double _generationMs;
    private readonly Lock _lock = new();

    public void RecordStatus(int status) => _byStatus.AddOrUpdate(status, 1, (_, n) => n + 1);

    public void RecordGeneration(int promptTokens, int cachedTokens, int generated, double generationMs)
    {
        Interlocked.Add(ref _promptTokens, promptTokens);
        Interlocked.Add(ref _cachedTokens, cachedTokens);
        Interlocked.Add(ref _generatedTokens, generated);
        Interlocked.Increment(ref _requestsDone);
        lock (_lock) _generationMs += generationMs;
    }

    /// <summary>Speculative decoding: tokens proposed, and how many of them the target kept.</summary>
    public void RecordDrafts(int drafted, int accepted)
    {
        Interlocked.Add(ref _draftedTokens, drafted);
        Interlocked.Add(ref _acceptedTokens, accepted);
    }

    public long PromptTokens => Interlocked.Read(ref _promptTokens);
    public long CachedPromptTokens => Interlocked.Read(ref _cachedTokens);
    public long GeneratedTokens => Interlocked.Read(ref _generatedTokens);

    public string Render(int queueDepth, int activeSlots, int slots)
    {
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        void Metric(string name, string type, string help, IEnumerable<(string Labels, double Value)> values)
        {
            sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
            sb.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
            foreach (var (labels, value) in values)
                sb.Append(name).Append(labels).Append(' ').Append(value.ToString("R", inv)).Append('\n');
        }
        double genMs;
        lock (_lock) genMs = _generationMs;
        long prompt = PromptTokens, cached = CachedPromptTokens, gen = GeneratedTokens;
        Metric("sputnik_requests_total", "counter", "HTTP requests by status code.",
            _byStatus.OrderBy(kv => kv.Key).Select(kv => ($"{{status=\"{kv.Key}\"}}", (double)kv.Value)));
        Metric("sputnik_generations_total", "counter", "Generations finished.", [("", Interlocked.Read(ref _requestsDone))]);
        Metric("sputnik_prompt_tokens_total", "counter", "Prompt tokens processed (cached included).", [("", prompt)]);
        Metric("sputnik_prompt_cache_hit_tokens_total", "counter", "Prompt tokens served from the KV prompt cache.", [("", cached)]);
        Metric("sputnik_generated_tokens_total", "counter", "Tokens generated.", [("", gen)]);
        Metric("sputnik_generation_tokens_per_second", "gauge", "Average per-sequence decode speed.", [("", genMs > 0 ? gen * 1000.0 / genMs : 0)]);
        Metric("sputnik_prompt_cache_hit_ratio", "gauge", "Cached prompt tokens / prompt tokens.", [("", prompt > 0 ? (double)cached / prompt : 0)]);
        long drafted = Interlocked.Read(ref _draftedTokens), accepted = Interlocked.Read(ref _acceptedTokens);
        Metric("sputnik_draft_tokens_total", "counter", "Tokens proposed by speculative decoding (draft_n).", [("", drafted)]);
        Metric("sputnik_draft_accepted_tokens_total", "counter", "Proposed tokens the model kept (draft_n_accepted).", [("", accepted)]);
        Metric("sputnik_draft_acceptance_ratio", "gauge", "Accepted / proposed tokens.", [("", drafted > 0 ? (double)accepted / drafted : 0)]);
        Metric("sputnik_queue_depth", "gauge", "Requests waiting for a slot.", [("", queueDepth)]);
        Metric("sputnik_slots_active", "gauge", "Slots generating now.", [("", activeSlots)]);
        Metric("sputnik_slots_total", "gauge", "Slots (--parallel).", [("", slots)]);
        return sb.ToString();
    }
}
