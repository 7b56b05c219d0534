namespace Sputnik.Server;

/// <summary>A model handed to one request, and how long it took to make it ready (Ollama's load_duration).</summary>
internal readonly record struct ModelLease(ModelHost Host, TimeSpan LoadTime);

/// <summary>
/// Where the endpoints that name a model (Ollama's; OpenAI's still use the one host directly) get it. Today one
/// loaded model answers every name, as llama-server does; a registry that serves many models from the hub's cache
/// — loading on first use, unloading after keep_alive or under a memory budget — implements this same contract.
/// </summary>
internal interface IModelProvider
{
    /// <summary>
    /// The model for <paramref name="name"/>, loaded if it is not. <paramref name="keepAlive"/> is the request's
    /// keep_alive (null: the default; negative: forever; zero: unload after this request).
    /// </summary>
    ValueTask<ModelLease> AcquireAsync(string name, TimeSpan? keepAlive, CancellationToken cancellationToken);

    /// <summary>Every model a request may name (/api/tags).</summary>
    IReadOnlyList<ModelHost> Available { get; }

    /// <summary>The models in memory now, with when each will be unloaded (/api/ps); DateTime.MaxValue: never.</summary>
    IReadOnlyList<(ModelHost Host, DateTime ExpiresAt)> Loaded { get; }
}

/// <summary>One model, loaded for the server's lifetime, serving any name.</summary>
internal sealed class SingleModelProvider(ModelHost host) : IModelProvider
{
    public ValueTask<ModelLease> AcquireAsync(string name, TimeSpan? keepAlive, CancellationToken cancellationToken) =>
        ValueTask.FromResult(new ModelLease(host, TimeSpan.Zero));

    public IReadOnlyList<ModelHost> Available => [host];

    public IReadOnlyList<(ModelHost Host, DateTime ExpiresAt)> Loaded => [(host, DateTime.MaxValue)];
}
