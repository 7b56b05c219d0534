namespace Sputnik.Hub;

/// <summary>
/// Where the hub is and how downloads behave. <see cref="FromEnvironment"/> reads the variables huggingface_hub and
/// llama.cpp read, so the three tools share one configuration: HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE and the cache
/// location (see <see cref="HubCache.DefaultRoot"/>).
/// </summary>
internal sealed record HubSettings
{
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>The hub's base URL, without a trailing slash.</summary>
    public string Endpoint { get; init; } = DefaultEndpoint;

    /// <summary>Sent as <c>Authorization: Bearer</c> to the endpoint (never to a CDN it redirects to).</summary>
    public string? Token { get; init; }

    /// <summary>The hub cache folder (…/huggingface/hub).</summary>
    public string CacheRoot { get; init; } = HubCache.DefaultRoot();

    /// <summary>Use only the cache; never touch the network (HF_HUB_OFFLINE=1).</summary>
    public bool Offline { get; init; }

    /// <summary>Tries per file before a transient failure (5xx, 429, a dropped connection, a stall) is final.</summary>
    public int MaxAttempts { get; init; } = 8;

    /// <summary>Wait before the second try; doubled after each failure, capped at <see cref="MaxRetryDelay"/>.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>A transfer that receives no byte for this long is dropped and resumed.</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Connections (byte ranges) used at once for one large file.</summary>
    public int Connections { get; init; } = 4;

    /// <summary>Files at least this large are fetched as <see cref="Connections"/> ranges at once.</summary>
    public long ParallelThreshold { get; init; } = 256L << 20;

    /// <summary>The settings the environment gives; <paramref name="token"/> (e.g. --token) wins over HF_TOKEN.</summary>
    public static HubSettings FromEnvironment(string? token = null)
    {
        string endpoint = Env("HF_ENDPOINT") ?? DefaultEndpoint;
        return new HubSettings
        {
            Endpoint = endpoint.TrimEnd('/'),
            Token = token is { Length: > 0 } ? token : Env("HF_TOKEN") ?? Env("HUGGING_FACE_HUB_TOKEN"),
            CacheRoot = HubCache.DefaultRoot(),
            Offline = IsTrue(Env("HF_HUB_OFFLINE")),
        };
    }

    private static string? Env(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : null;

    private static bool IsTrue(string? value) =>
        value != null && (value == "1" || value.Equals("true", StringComparison.OrdinalIgnoreCase)
            || value.Equals("yes", StringComparison.OrdinalIgnoreCase) || value.Equals("on", StringComparison.OrdinalIgnoreCase));
}
