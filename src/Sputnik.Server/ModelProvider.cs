namespace Sputnik.Server;

/// <summary>
/// A model handed to one request, and how long it took to make it ready (Ollama's load_duration). Disposing it ends
/// the request's use of the model: a model with leases out is never unloaded, and its keep_alive runs from the last
/// release. Endpoints register it with <c>Response.RegisterForDispose</c>, so it ends when the response does.
/// </summary>
internal sealed class ModelLease(ModelHost host, TimeSpan loadTime, Action? release = null) : IDisposable
{
    private Action? _release = release;

    public ModelHost Host { get; } = host;
    public TimeSpan LoadTime { get; } = loadTime;

    public void Dispose() => Interlocked.Exchange(ref _release, null)?.Invoke();
}

/// <summary>A model in memory: its host, the bytes it is counted for, when it will be unloaded (DateTime.MaxValue: never).</summary>
internal sealed record LoadedModelInfo(ModelHost Host, long Size, DateTime ExpiresAt, int Requests);

/// <summary>
/// Where the endpoints get the model a request names. <see cref="SingleModelProvider"/>: one loaded model answers
/// every name, as llama-server does; <see cref="ModelRegistry"/>: many models from files and the hub's cache, loaded
/// on first use and unloaded after keep_alive or under a memory budget.
/// </summary>
internal interface IModelProvider : IDisposable
{
    /// <summary>
    /// The model for <paramref name="name"/>, loaded if it is not (a 404 ApiException when no model goes by it).
    /// <paramref name="keepAlive"/> is the request's keep_alive (null: the server's default; negative: forever;
    /// zero: unload when this request ends). Dispose the lease when the request is over.
    /// </summary>
    ValueTask<ModelLease> AcquireAsync(string name, TimeSpan? keepAlive, CancellationToken cancellationToken);

    /// <summary>The model a request naming <paramref name="name"/> gets, or null when none goes by it.</summary>
    ServableModel? Find(string name);

    /// <summary>Every model a request may name (/v1/models, /api/tags).</summary>
    IReadOnlyList<ServableModel> Available { get; }

    /// <summary>The models in memory now (/api/ps, /health).</summary>
    IReadOnlyList<LoadedModelInfo> Loaded { get; }

    /// <summary>True when any name gets the one model (a single-model server).</summary>
    bool AnswersAnyName { get; }

    /// <summary>
    /// Unloads the model <paramref name="name"/> names now if it is loaded and idle (Ollama's keep_alive 0 with
    /// nothing to generate), or marks it to unload when its requests end.
    /// </summary>
    UnloadResult Unload(string name);

    /// <summary>The hub cache changed (a pull or a delete): list the models again.</summary>
    void Refresh();
}

/// <summary>One model, loaded for the server's lifetime, serving any name.</summary>
internal sealed class SingleModelProvider(ModelHost host) : IModelProvider
{
    private readonly ServableModel _servable = host.Servable;

    public ValueTask<ModelLease> AcquireAsync(string name, TimeSpan? keepAlive, CancellationToken cancellationToken) =>
        ValueTask.FromResult(new ModelLease(host, TimeSpan.Zero));

    public ServableModel? Find(string name) => _servable;

    public IReadOnlyList<ServableModel> Available => [_servable];

    public IReadOnlyList<LoadedModelInfo> Loaded => [new(host, host.MemorySize, DateTime.MaxValue, host.Scheduler.ActiveCount + host.Scheduler.QueueDepth)];

    public bool AnswersAnyName => true;

    public UnloadResult Unload(string name) => UnloadResult.Kept;

    public void Refresh() { }

    public void Dispose() { } // the server disposes its host
}
