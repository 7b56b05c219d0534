using Sputnik.Inference;
using Sputnik.Models;
using Sputnik.Server.Api;

namespace Sputnik.Server.Scheduling;

/// <summary>
/// Continuous batching over --parallel slots: one loop thread steps every active sequence each iteration, and
/// queued requests join between iterations (fair FIFO, bounded by --max-queue). A new request goes to the idle
/// slot whose cached tokens share the longest prefix with its prompt (least recently used otherwise), so the
/// generator only computes the part of the prompt that is new. That part is fed --prefill-chunk tokens per
/// iteration, so a long prompt does not stall the other slots' streams: their decode steps run between its chunks.
/// </summary>
internal sealed class Scheduler : IDisposable
{
    private readonly SputnikModel _model;
    private readonly Generator _generator;
    private readonly Slot[] _slots;
    private readonly LinkedList<InferenceJob> _queue = new();
    private readonly Lock _lock = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly Thread _thread;
    private readonly int _maxQueue;
    private readonly TimeSpan _stepDelay;
    private readonly IStepExecutor _executor;
    private readonly ServerMetrics _metrics;
    private readonly List<ActiveSequence> _active = [];
    private readonly System.Collections.Concurrent.ConcurrentQueue<Action> _exclusive = new();
    private volatile bool _stopping;
    private long _clock;

    private readonly PromptCache? _cache;
    private readonly int _prefillChunk;
    private readonly Action<string>? _log;
    private readonly SpeculationOptions? _speculation;
    /// <summary>Recent mean wall time of a job in its slot (exponentially weighted), behind Retry-After.</summary>
    private double _meanJobMs;

    /// <param name="cache">Makes the prompt cache for the slots' cache layout; unused when the slots' caches cannot be snapshotted.</param>
    /// <param name="prefillChunk">Prompt tokens fed per iteration; 0 feeds a whole prompt in one.</param>
    /// <param name="log">Where faults the scheduler survives are reported (a broken prompt cache).</param>
    /// <param name="speculation">Speculative decoding for every job (each slot keeps its own proposal source); null for none.</param>
    /// <param name="speculativeSlots">Most active slots at which a slot verifies its proposals in a forward of its own rather than joining the batch.</param>
    public Scheduler(SputnikModel model, int parallel, int maxQueue, ServerMetrics metrics, TimeSpan stepDelay = default,
        IStepExecutor? executor = null, Func<ICacheRows, PromptCache>? cache = null, int prefillChunk = 0, Action<string>? log = null,
        SpeculationOptions? speculation = null, int speculativeSlots = 1)
    {
        speculation?.Validate();
        _speculation = speculation is { Enabled: true } ? speculation : null;
        ArgumentOutOfRangeException.ThrowIfNegative(prefillChunk);
        _model = model;
        _generator = new Generator(model.Model, model.Tokenizer);
        _slots = Enumerable.Range(0, parallel).Select(i => new Slot(i, model.CreateState())).ToArray();
        _cache = cache != null && _slots[0].State.Rows is { } shape ? cache(shape) : null;
        if (cache != null && _cache == null) // a sliding-window ring keeps no prefix rows to snapshot
            log?.Invoke("prompt cache: this model's KV cache cannot be snapshotted (sliding-window ring); --cache-ram/--cache-dir are not used, slots still reuse their own prefixes");
        _prefillChunk = prefillChunk;
        _log = log;
        _maxQueue = maxQueue;
        _metrics = metrics;
        _stepDelay = stepDelay;
        _executor = executor ?? new BatchedStepExecutor(model.Model, speculativeSlots);
        _thread = new Thread(Loop) { IsBackground = true, Name = "sputnik-scheduler" };
        _thread.Start();
    }

    public int SlotCount => _slots.Length;
    internal PromptCache? Cache => _cache;
    public int ContextLength => _model.ContextLength;

    /// <summary>Sequences generating now.</summary>
    public int ActiveCount { get { lock (_lock) return _slots.Count(s => !s.IsIdle); } }

    /// <summary>Requests waiting for a slot.</summary>
    public int QueueDepth { get { lock (_lock) return _queue.Count; } }

    /// <summary>The queue, the slots and how full their KV caches are now (gauges for /metrics).</summary>
    public SchedulerLoad Load()
    {
        var rows = _slots[0].State.Rows;
        long ramTokens = _cache != null && rows != null ? _cache.BytesInRam / rows.PositionBytes : 0;
        lock (_lock)
        {
            int running = 0;
            long runningKv = 0, held = 0;
            foreach (var s in _slots)
            {
                // The scheduler thread moves these: a moment's value, as a gauge is. A running slot's history can lead its cache's length.
                long n = Math.Min(Math.Max(s.State.Position, s.History.Count), ContextLength);
                held += n;
                if (!s.IsIdle) { running++; runningKv += n; }
            }
            return new SchedulerLoad(_queue.Count, running, _slots.Length, runningKv, (long)_slots.Length * ContextLength, held, ramTokens);
        }
    }

    /// <summary>Queues a job; throws 429 with Retry-After when the queue is full, 503 while shutting down.</summary>
    public void Submit(InferenceJob job)
    {
        if (_model.Model.IsEmbeddingOnly)
            throw ApiException.BadRequest($"model '{_model.Name}' is an embedding model: it answers POST /v1/embeddings and /api/embed, not chat or completions",
                "model", "model_not_supported");
        lock (_lock)
        {
            if (_stopping) throw new ApiException(503, "the server is shutting down", code: "server_shutting_down") { RetryAfterSeconds = 5 };
            int idle = _slots.Count(s => s.IsIdle);
            if (_queue.Count - idle >= _maxQueue)
                throw new ApiException(429, $"the request queue is full ({_maxQueue} waiting, {_slots.Length} slots busy); retry later",
                    code: "queue_full") { RetryAfterSeconds = RetryAfterSeconds(_queue.Count) };
            _queue.AddLast(job);
        }
        job.Cancellation.Register(Wake);
        _wake.Release();
    }

    /// <summary>
    /// Runs <paramref name="work"/> on the scheduler's thread between two steps, where it may use the model alone
    /// (embeddings): the forward pass and its worker pool are not re-entrant. The decode streams pause while it runs,
    /// so callers hand over small pieces (one input each).
    /// </summary>
    public Task<T> RunExclusiveAsync<T>(Func<T> work, CancellationToken cancellationToken)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        // Under the lock: the loop's last drain also holds it, so nothing is queued after it and left waiting.
        lock (_lock)
        {
            if (_stopping) throw new ApiException(503, "the server is shutting down", code: "server_shutting_down") { RetryAfterSeconds = 5 };
            _exclusive.Enqueue(() =>
            {
                if (_stopping) done.TrySetException(new ApiException(503, "the server is shutting down", code: "server_shutting_down"));
                else if (cancellationToken.IsCancellationRequested) done.TrySetCanceled(cancellationToken);
                else
                {
                    try { done.TrySetResult(work()); }
                    catch (Exception ex) { done.TrySetException(ex); }
                }
            });
        }
        Wake();
        return done.Task;
    }

    /// <summary>When a slot is likely free for a request arriving now: the queue ahead of it × the recent mean job time / slots (at least 1 s).</summary>
    private int RetryAfterSeconds(int queued)
    {
        double seconds = (queued + 1) * Volatile.Read(ref _meanJobMs) / _slots.Length / 1000;
        return (int)Math.Clamp(Math.Ceiling(seconds), 1, 3600);
    }

    private void Wake()
    {
        try { _wake.Release(); } catch (ObjectDisposedException) { }
    }

    private void Loop()
    {
        while (!_stopping)
        {
            while (_exclusive.TryDequeue(out var work)) work();
            Admit();
            if (_active.Count == 0)
            {
                if (_exclusive.IsEmpty) _wake.Wait(TimeSpan.FromSeconds(1));
                continue;
            }
            try
            {
                _executor.Step(_active, StepOne);
            }
            finally
            {
                lock (_lock)
                    _active.RemoveAll(a => a.Slot.Active != a);
            }
            if (_stepDelay > TimeSpan.Zero) Thread.Sleep(_stepDelay);
        }
        lock (_lock)
        {
            while (_exclusive.TryDequeue(out var work)) work(); // each fails its caller with a 503
            foreach (var a in _active) a.Job.Complete(new ApiException(503, "the server is shutting down"));
            foreach (var j in _queue) j.Complete(new ApiException(503, "the server is shutting down"));
            _queue.Clear();
            // What the slots hold survives a restart when the cache is on disk.
            foreach (var slot in _slots)
                if (slot.IsIdle) Guard(() => _cache?.Save(slot));
        }
    }

    /// <summary>Moves queued jobs (oldest first) into idle slots; drops jobs cancelled while they waited.</summary>
    private void Admit()
    {
        lock (_lock)
        {
            for (var node = _queue.First; node != null;)
            {
                var next = node.Next;
                var job = node.Value;
                if (job.Cancellation.IsCancellationRequested)
                {
                    _queue.Remove(node);
                    job.Stats.FinishReason = FinishReason.Cancelled;
                    job.Complete();
                }
                else
                {
                    var slot = PickSlot(job);
                    if (slot == null) break;
                    _queue.Remove(node);
                    if (!Guard(() => UseCache(slot, job))) slot.Reset(); // the slot may hold half a restore
                    // What the slot holds was computed under its adapters: under others it is another prefix.
                    if (slot.State.Adapters.Key != job.Adapters.Key) slot.Reset();
                    slot.State.Adapters = job.Adapters;
                    Start(job, slot);
                }
                node = next;
            }
        }
    }

    /// <summary>
    /// The idle slot whose cache serves this prompt best: the longest shared prefix, counted only when it covers at
    /// least half of what the slot holds (so a new conversation that merely shares a template header does not evict
    /// a long cached one); otherwise an empty slot, otherwise the least recently used.
    /// </summary>
    private Slot? PickSlot(InferenceJob job)
    {
        Slot? best = null;
        int bestPrefix = 0;
        Slot? fallback = null;
        foreach (var s in _slots)
        {
            if (!s.IsIdle) continue;
            int p = s.SharedPrefix(job.Prompt, job.Adapters);
            if (p > 0 && p * 2 >= Math.Min(s.History.Count, s.State.Position) && p > bestPrefix)
            {
                best = s;
                bestPrefix = p;
            }
            if (fallback == null || Rank(s) < Rank(fallback)) fallback = s;
        }
        return best ?? fallback;
    }

    // Empty slots first, then the least recently used.
    private static long Rank(Slot s) => s.History.Count == 0 ? long.MinValue + s.Id : s.LastUsed;

    /// <summary>
    /// Before a slot is reused: snapshot what it holds if the new prompt would overwrite part of it, and copy in a
    /// cached prefix that is longer than what the slot already shares with the prompt.
    /// </summary>
    private void UseCache(Slot slot, InferenceJob job)
    {
        if (_cache == null) return;
        int[] prompt = job.Prompt;
        int shared = slot.SharedPrefix(prompt, job.Adapters);
        int held = Math.Min(slot.History.Count, slot.State.Position);
        int fromCache = _cache.BestPrefix(prompt, shared, job.Adapters, out var entry);
        if (shared < held) _cache.Save(slot);
        if (entry != null && !_cache.Restore(entry, slot, fromCache)) slot.Reset();
    }

    /// <summary>
    /// Runs a prompt-cache operation; a fault in it is logged and survived: the cache is an optimisation, and an
    /// exception here would end the scheduler thread and with it every request.
    /// </summary>
    private bool Guard(Action cacheWork)
    {
        try
        {
            cacheWork();
            return true;
        }
        catch (Exception ex)
        {
            _log?.Invoke($"prompt cache: {ex.GetType().Name}: {ex.Message}; the request goes on without it");
            return false;
        }
    }

    private void Start(InferenceJob job, Slot slot)
    {
        job.SlotId = slot.Id;
        job.QueueMs = Environment.TickCount64 - job.EnqueuedTicks;
        slot.LastUsed = ++_clock;
        var handoff = new DecodeHandoff { PrefillChunk = _prefillChunk };
        var options = job.Options;
        // A state that cannot be cut back (a sliding-window ring, a recurrent state) decodes without proposals.
        bool speculates = _speculation != null && slot.State.Rows != null;
        if (speculates)
        {
            slot.Draft ??= Speculator.CreateSource(_speculation!, _model.Model, _model.Tokenizer, slot.State);
            options = options with { Speculation = _speculation, DraftSource = slot.Draft };
        }
        var steps = _generator.Generate(slot.State, job.Prompt, options, job.Stats, slot.History, job.Cancellation, handoff).GetEnumerator();
        var seq = new ActiveSequence(job, slot, steps, handoff, speculates);
        slot.Active = seq;
        _active.Add(seq);
        job.MarkStarted();
    }

    private void StepOne(ActiveSequence seq)
    {
        var job = seq.Job;
        if (job.Cancellation.IsCancellationRequested)
        {
            job.Stats.FinishReason = FinishReason.Cancelled;
            Finish(seq, null);
            return;
        }
        var cpu0 = Environment.CpuUsage.TotalTime;
        bool more;
        try
        {
            more = seq.Steps.MoveNext();
        }
        catch (Exception ex)
        {
            seq.Slot.Reset(); // the cache may be half written
            Finish(seq, ex);
            return;
        }
        finally
        {
            job.CpuSeconds += (Environment.CpuUsage.TotalTime - cpu0).TotalSeconds;
        }
        if (!more)
        {
            Finish(seq, null);
            return;
        }
        if (seq.Handoff.Prefilling) return; // a prompt chunk went in; no token yet
        var token = seq.Steps.Current;
        var logprob = job.TopLogprobs >= 0 ? Logprobs.For(_model.Tokenizer, seq.Slot.State.Logits, token.Id, job.TopLogprobs) : null;
        job.Events.Writer.TryWrite(new JobEvent(token, logprob, false, null));
    }

    private void Finish(ActiveSequence seq, Exception? error)
    {
        seq.Steps.Dispose();
        var stats = seq.Job.Stats;
        double ms = Environment.TickCount64 - seq.Job.EnqueuedTicks - seq.Job.QueueMs;
        Volatile.Write(ref _meanJobMs, _meanJobMs == 0 ? ms : 0.8 * _meanJobMs + 0.2 * ms);
        _metrics.RecordGeneration(stats.PromptTokens, stats.CachedPromptTokens, stats.GeneratedTokens, stats.GenerationMs);
        _metrics.RecordDrafts(stats.DraftedTokens, stats.AcceptedTokens);
        lock (_lock)
        {
            seq.Slot.Active = null;
            seq.Slot.LastUsed = ++_clock;
        }
        seq.Job.Complete(error);
    }

    public void Dispose()
    {
        _stopping = true;
        _wake.Release();
        _thread.Join(TimeSpan.FromSeconds(10));
        _wake.Dispose();
    }
}
