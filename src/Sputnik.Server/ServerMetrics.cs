using System.Collections.Concurrent;
using System.Text;

namespace Sputnik.Server;

/// <summary>What the schedulers hold at one moment, summed over the loaded models: the gauges of GET /metrics.</summary>
/// <param name="Queued">requests waiting for a slot</param>
/// <param name="Running">requests in a slot (prefilling or decoding)</param>
/// <param name="Slots">slots (--parallel per loaded model)</param>
/// <param name="RunningKvTokens">positions of the running requests' KV caches that hold tokens</param>
/// <param name="KvCapacityTokens">positions all slots' KV caches have room for (slots × context)</param>
/// <param name="SlotCacheTokens">tokens every slot's KV cache holds, idle slots' reusable prefixes included</param>
/// <param name="RamCacheTokens">tokens held by prompt-cache snapshots in RAM (--cache-ram)</param>
internal readonly record struct SchedulerLoad(int Queued, int Running, int Slots, long RunningKvTokens, long KvCapacityTokens,
    long SlotCacheTokens, long RamCacheTokens)
{
    public static SchedulerLoad operator +(SchedulerLoad a, SchedulerLoad b) =>
        new(a.Queued + b.Queued, a.Running + b.Running, a.Slots + b.Slots, a.RunningKvTokens + b.RunningKvTokens,
            a.KvCapacityTokens + b.KvCapacityTokens, a.SlotCacheTokens + b.SlotCacheTokens, a.RamCacheTokens + b.RamCacheTokens);
}

/// <summary>
/// Counters behind GET /metrics (Prometheus text format). Besides Sputnik's own names it publishes the gauges of the
/// Gateway API Inference Extension's model server protocol under vLLM's names, which its endpoint picker reads by
/// default (docs/deploy.md, "Metrics for routers").
/// </summary>
internal sealed class ServerMetrics
{
    private readonly ConcurrentDictionary<int, long> _byStatus = new();
    private long _promptTokens, _cachedTokens, _generatedTokens, _requestsDone, _cacheHits, _draftedTokens, _acceptedTokens, _rejectedCacheFiles;
    private double _generationMs;
    private readonly Lock _lock = new();

    public void RecordStatus(int status) => _byStatus.AddOrUpdate(status, 1, (_, n) => n + 1);

    public void RecordGeneration(int promptTokens, int cachedTokens, int generated, double generationMs)
    {
        Interlocked.Add(ref _promptTokens, promptTokens);
        Interlocked.Add(ref _cachedTokens, cachedTokens);
        Interlocked.Add(ref _generatedTokens, generated);
        Interlocked.Increment(ref _requestsDone);
        if (cachedTokens > 0) Interlocked.Increment(ref _cacheHits);
        lock (_lock) _generationMs += generationMs;
    }

    /// <summary>A prompt-cache file that was not a whole snapshot of its model (short, long, unreadable, failing its checksum) was skipped and deleted.</summary>
    public void RecordRejectedCacheFile() => Interlocked.Increment(ref _rejectedCacheFiles);

    /// <summary>Speculative decoding: tokens proposed, and how many of them the target kept.</summary>
    public void RecordDrafts(int drafted, int accepted)
    {
        Interlocked.Add(ref _draftedTokens, drafted);
        Interlocked.Add(ref _acceptedTokens, accepted);
    }

    public long PromptTokens => Interlocked.Read(ref _promptTokens);
    public long CachedPromptTokens => Interlocked.Read(ref _cachedTokens);
    public long GeneratedTokens => Interlocked.Read(ref _generatedTokens);

    public string Render(SchedulerLoad load)
    {
        var sb = new StringBuilder();
        void Metric(string name, string type, string help, double value) => PrometheusText.Append(sb, name, type, help, [("", value)]);
        double genMs;
        lock (_lock) genMs = _generationMs;
        long prompt = PromptTokens, cached = CachedPromptTokens, gen = GeneratedTokens, done = Interlocked.Read(ref _requestsDone);
        long hits = Interlocked.Read(ref _cacheHits);
        PrometheusText.Append(sb, "sputnik_requests_total", "counter", "HTTP requests by status code.",
            _byStatus.OrderBy(kv => kv.Key).Select(kv => (PrometheusText.Labels(("status", kv.Key.ToString(System.Globalization.CultureInfo.InvariantCulture))), (double)kv.Value)));
        Metric("sputnik_generations_total", "counter", "Generations finished.", done);
        Metric("sputnik_prompt_tokens_total", "counter", "Prompt tokens processed (cached included).", prompt);
        Metric("sputnik_prompt_cache_hit_tokens_total", "counter", "Prompt tokens served from the KV prompt cache.", cached);
        Metric("sputnik_prompt_cache_miss_tokens_total", "counter", "Prompt tokens computed because no cache held them.", prompt - cached);
        Metric("sputnik_prompt_cache_hits_total", "counter", "Generations whose prompt reused at least one cached token.", hits);
        Metric("sputnik_prompt_cache_misses_total", "counter", "Generations whose prompt reused no cached token.", done - hits);
        PrometheusText.Append(sb, "sputnik_prompt_cache_tokens", "gauge", "Tokens held for reuse: in the slots' KV caches, and in RAM snapshots (--cache-ram).",
            [(PrometheusText.Labels(("where", "slots")), load.SlotCacheTokens), (PrometheusText.Labels(("where", "ram")), load.RamCacheTokens)]);
        Metric("sputnik_prompt_cache_rejected_files_total", "counter",
            "Prompt-cache snapshot files (--cache-dir) skipped and deleted: short, long, unreadable or failing their checksum.", Interlocked.Read(ref _rejectedCacheFiles));
        Metric("sputnik_generated_tokens_total", "counter", "Tokens generated.", gen);
        Metric("sputnik_generation_tokens_per_second", "gauge", "Average per-sequence decode speed.", genMs > 0 ? gen * 1000.0 / genMs : 0);
        Metric("sputnik_prompt_cache_hit_ratio", "gauge", "Cached prompt tokens / prompt tokens.", prompt > 0 ? (double)cached / prompt : 0);
        Metric("sputnik_queue_depth", "gauge", "Requests waiting for a slot.", load.Queued);
        Metric("sputnik_slots_active", "gauge", "Slots generating now.", load.Running);
        Metric("sputnik_slots_total", "gauge", "Slots (--parallel).", load.Slots);
        // The inference extension's model server protocol, under the vLLM names its endpoint picker defaults to.
        Metric("vllm:num_requests_waiting", "gauge", "Requests waiting for a slot (protocol: TotalQueuedRequests).", load.Queued);
        Metric("vllm:num_requests_running", "gauge", "Requests in a slot (protocol: TotalRunningRequests).", load.Running);
        Metric("vllm:kv_cache_usage_perc", "gauge", "Fraction of the KV cache positions held by running requests, 0 to 1 (protocol: KVCacheUtilization).",
            load.KvCapacityTokens > 0 ? Math.Min(1.0, (double)load.RunningKvTokens / load.KvCapacityTokens) : 0);
        Metric("vllm:prefix_cache_queries_total", "counter", "Prompt tokens looked up in the prefix cache.", prompt);
        Metric("vllm:prefix_cache_hits_total", "counter", "Prompt tokens found in the prefix cache.", cached);
        long drafted = Interlocked.Read(ref _draftedTokens), accepted = Interlocked.Read(ref _acceptedTokens);
        Metric("sputnik_draft_tokens_total", "counter", "Tokens proposed by speculative decoding (draft_n).", drafted);
        Metric("sputnik_draft_accepted_tokens_total", "counter", "Proposed tokens the model kept (draft_n_accepted).", accepted);
        Metric("sputnik_draft_acceptance_ratio", "gauge", "Accepted / proposed tokens.", drafted > 0 ? (double)accepted / drafted : 0);
        return sb.ToString();
    }
}
