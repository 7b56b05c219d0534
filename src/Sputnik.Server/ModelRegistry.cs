using System.Diagnostics;
using Sputnik.Hub;

namespace Sputnik.Server;

/// <summary>What <see cref="ModelRegistry.Unload"/> did.</summary>
internal enum UnloadResult
{
    /// <summary>No model goes by the name.</summary>
    NotFound,
    /// <summary>It was not loaded.</summary>
    NotLoaded,
    /// <summary>It was unloaded.</summary>
    Unloaded,
    /// <summary>It has requests in flight: it unloads when they end.</summary>
    Busy,
    /// <summary>It is a single-model server's one model, which stays.</summary>
    Kept,
}

/// <summary>
/// Many models in one server, as Ollama runs them: a request names a model (<see cref="ModelCatalog"/>), which is
/// loaded on first use — concurrent first requests share one load — and unloaded keep_alive after its last request
/// (the request's, else --keep-alive: 0 at once, negative never), or sooner when loading another needs room under
/// the memory budget: the least recently used idle model goes first; a model with requests in flight is never
/// unloaded, so a load that finds no idle model to drop waits for one to become idle. Each loaded model is a
/// <see cref="ModelHost"/> with its own slots, batching and prompt cache.
/// </summary>
internal sealed class ModelRegistry : IModelProvider
{
    /// <summary>A model in memory or being loaded.</summary>
    private sealed class Resident(ServableModel model)
    {
        public ServableModel Model { get; } = model;
        public Task<ModelHost> Loading { get; set; } = null!;
        public ModelHost? Host { get; set; }
        /// <summary>Requests holding it or waiting for its load.</summary>
        public int Requests { get; set; }
        public TimeSpan KeepAlive { get; set; }
        public long LastUsed { get; set; }
        public DateTime ExpiresAt { get; set; } = DateTime.MaxValue;
    }

    private readonly ServerOptions _options;
    private readonly ServerMetrics _metrics;
    private readonly Action<string>? _warn;
    private readonly ModelCatalog _catalog;
    private readonly object _lock = new();
    private readonly Dictionary<string, Resident> _residents = new(StringComparer.Ordinal);
    private readonly Timer _expiry;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _clock;
    private bool _disposed;

    public ModelRegistry(ServerOptions options, ServerMetrics metrics, Action<string>? warn)
    {
        _options = options;
        _metrics = metrics;
        _warn = warn;
        Hub = options.Hub ?? HubSettings.FromEnvironment();
        Budget = options.MaxMemoryBytes > 0 ? options.MaxMemoryBytes : ServerOptions.DefaultMaxMemory();
        _catalog = new ModelCatalog(options, Hub, warn);
        _expiry = new Timer(_ => Expire());
    }

    /// <summary>Where models are pulled from and cached.</summary>
    public HubSettings Hub { get; }

    /// <summary>Bytes the loaded models may take together.</summary>
    public long Budget { get; }

    /// <summary>Loads started since the server started (concurrent first requests for a model share one).</summary>
    public int LoadCount => Volatile.Read(ref _loads);
    private int _loads;

    public bool AnswersAnyName => false;

    public ServableModel? Find(string name) => _catalog.Find(name);

    public IReadOnlyList<ServableModel> Available => _catalog.Models;

    public void Refresh() => _catalog.Refresh();

    public IReadOnlyList<LoadedModelInfo> Loaded
    {
        get
        {
            lock (_lock)
                return _residents.Values.Where(r => r.Host != null).OrderBy(r => r.Model.Id, StringComparer.Ordinal)
                    .Select(r => new LoadedModelInfo(r.Host!, r.Model.MemorySize, ExpiresAt(r), r.Requests)).ToList();
        }
    }

    /// <summary>When an idle model goes; for one in use, keep_alive from now (its clock starts when the requests end).</summary>
    private static DateTime ExpiresAt(Resident r) =>
        r.Requests == 0 ? r.ExpiresAt : r.KeepAlive < TimeSpan.Zero ? DateTime.MaxValue : DateTime.UtcNow + r.KeepAlive;

    public async ValueTask<ModelLease> AcquireAsync(string name, TimeSpan? keepAlive, CancellationToken cancellationToken)
    {
        var model = Find(name) ?? throw new ApiException(404, $"model '{name}' not found", "model", "model_not_found");
        if (model.MemorySize > Budget)
            throw new ApiException(500,
                $"model '{model.Id}' requires more memory ({ModelHub.Size(model.MemorySize)} for its file and KV cache) than the server may use ({ModelHub.Size(Budget)}, --max-memory)",
                "model", "insufficient_memory");
        long started = Stopwatch.GetTimestamp();
        var keep = keepAlive ?? _options.KeepAlive;
        if (keep > TimeSpan.FromDays(365 * 100)) keep = Timeout.InfiniteTimeSpan; // past any server's lifetime: never (and no DateTime overflow)
        Resident resident;
        while (true)
        {
            Task changed;
            Resident? found;
            List<ModelHost> evicted = [];
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                changed = _changed.Task;
                if (!_residents.TryGetValue(model.Id, out found) && MakeRoom(model.MemorySize, evicted))
                {
                    found = new Resident(model);
                    _residents[model.Id] = found;
                    found.Loading = LoadAsync(found);
                }
                if (found != null)
                {
                    found.Requests++;
                    found.KeepAlive = keep;
                    found.LastUsed = ++_clock;
                }
            }
            Dispose(evicted);
            if (found != null)
            {
                resident = found;
                break;
            }
            // Every model that could make room is busy: wait for a request to end (or a load to fail), then look again.
            await changed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        bool waited = !resident.Loading.IsCompleted;
        ModelHost host;
        try
        {
            host = await resident.Loading.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            Release(resident);
            throw;
        }
        return new ModelLease(host, waited ? Stopwatch.GetElapsedTime(started) : TimeSpan.Zero, () => Release(resident));
    }

    /// <summary>
    /// Unloads idle models, least recently used first, until <paramref name="bytes"/> more fit in the budget (under
    /// the lock; the hosts to dispose are added to <paramref name="evicted"/>). False when they cannot be made to fit.
    /// </summary>
    private bool MakeRoom(long bytes, List<ModelHost> evicted)
    {
        long used = _residents.Values.Sum(r => r.Model.MemorySize);
        while (used + bytes > Budget)
        {
            var idle = _residents.Values.Where(r => r.Host != null && r.Requests == 0).MinBy(r => r.LastUsed);
            if (idle == null) return false;
            _residents.Remove(idle.Model.Id);
            evicted.Add(idle.Host!);
            used -= idle.Model.MemorySize;
        }
        return true;
    }

    private async Task<ModelHost> LoadAsync(Resident resident)
    {
        var model = resident.Model;
        Interlocked.Increment(ref _loads);
        try
        {
            var host = await Task.Run(() =>
            {
                var loaded = SputnikModel.Load(model.Path, new ModelOptions
                {
                    Threads = _options.Threads, ContextLength = _options.ContextLength, KvType = _options.KvType, KvTypeV = _options.KvTypeV,
                });
                try
                {
                    return new ModelHost(loaded, _options with { ModelPath = model.Path, ModelAlias = null }, _metrics, ownsModel: true, _warn, model.Id);
                }
                catch
                {
                    loaded.Dispose();
                    throw;
                }
            }).ConfigureAwait(false);
            bool keep;
            lock (_lock)
            {
                keep = !_disposed;
                if (keep) resident.Host = host;
            }
            if (!keep)
            {
                host.Dispose();
                throw new ObjectDisposedException(nameof(ModelRegistry));
            }
            return host;
        }
        catch (Exception e)
        {
            lock (_lock)
            {
                if (_residents.GetValueOrDefault(model.Id) == resident) _residents.Remove(model.Id);
                Pulse();
            }
            if (e is ObjectDisposedException) throw;
            _warn?.Invoke($"loading {model.Id} ({model.Path}) failed: {e.Message}");
            throw new ApiException(500, $"model '{model.Id}' could not be loaded: {e.Message}", "model", "model_load_failed");
        }
    }

    /// <summary>A request is done with the model: with none left, its keep_alive starts (0: unload now).</summary>
    private void Release(Resident resident)
    {
        ModelHost? unload = null;
        lock (_lock)
        {
            resident.Requests--;
            resident.LastUsed = ++_clock;
            if (resident.Requests == 0 && resident.Host != null && _residents.GetValueOrDefault(resident.Model.Id) == resident)
            {
                if (resident.KeepAlive == TimeSpan.Zero)
                {
                    _residents.Remove(resident.Model.Id);
                    unload = resident.Host;
                }
                else
                {
                    resident.ExpiresAt = resident.KeepAlive < TimeSpan.Zero ? DateTime.MaxValue : DateTime.UtcNow + resident.KeepAlive;
                    ArmTimer();
                }
            }
            Pulse();
        }
        if (unload != null) Dispose([unload]);
    }

    /// <summary>
    /// Ollama's keep_alive 0 with nothing to generate: unloads the model now if it is idle; one with requests in
    /// flight is unloaded when they end.
    /// </summary>
    public UnloadResult Unload(string name)
    {
        var model = Find(name);
        if (model == null) return UnloadResult.NotFound;
        ModelHost? unload = null;
        UnloadResult result;
        lock (_lock)
        {
            if (!_residents.TryGetValue(model.Id, out var r)) result = UnloadResult.NotLoaded;
            else if (r.Requests > 0 || r.Host == null)
            {
                r.KeepAlive = TimeSpan.Zero;
                result = UnloadResult.Busy;
            }
            else
            {
                _residents.Remove(model.Id);
                unload = r.Host;
                result = UnloadResult.Unloaded;
                Pulse();
            }
        }
        if (unload != null) Dispose([unload]);
        return result;
    }

    /// <summary>Unloads the models whose keep_alive ran out, and sets the timer for the next.</summary>
    private void Expire()
    {
        List<ModelHost> expired = [];
        lock (_lock)
        {
            if (_disposed) return;
            var now = DateTime.UtcNow;
            foreach (var r in _residents.Values.Where(r => r.Host != null && r.Requests == 0 && r.ExpiresAt <= now).ToList())
            {
                _residents.Remove(r.Model.Id);
                expired.Add(r.Host!);
            }
            if (expired.Count > 0) Pulse();
            ArmTimer();
        }
        Dispose(expired);
    }

    /// <summary>Sets the timer to the earliest expiry (under the lock); at most a day ahead, when it looks again.</summary>
    private void ArmTimer()
    {
        var next = _residents.Values.Where(r => r.Host != null && r.Requests == 0 && r.ExpiresAt != DateTime.MaxValue)
            .Select(r => r.ExpiresAt).DefaultIfEmpty(DateTime.MaxValue).Min();
        if (next == DateTime.MaxValue)
        {
            _expiry.Change(Timeout.Infinite, Timeout.Infinite);
            return;
        }
        var due = next - DateTime.UtcNow;
        _expiry.Change(due < TimeSpan.Zero ? TimeSpan.Zero : due > TimeSpan.FromDays(1) ? TimeSpan.FromDays(1) : due, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Wakes the requests waiting for room (under the lock).</summary>
    private void Pulse()
    {
        var old = _changed;
        _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        old.TrySetResult();
    }

    private static void Dispose(List<ModelHost> hosts)
    {
        foreach (var host in hosts) host.Dispose();
    }

    public void Dispose()
    {
        List<ModelHost> hosts;
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            hosts = _residents.Values.Where(r => r.Host != null).Select(r => r.Host!).ToList();
            _residents.Clear();
            Pulse();
        }
        _expiry.Dispose();
        Dispose(hosts);
    }
}
