namespace Sputnik.Server.Routing;

/// <summary>How `sputnik route` picks a replica for a request.</summary>
public enum RoutingPolicy
{
    /// <summary>
    /// Prompt-prefix affinity: the replica that was sent the longest prefix of this prompt, else the conversation's
    /// place on a consistent-hash ring, both under a bounded load; least-loaded when neither has room.
    /// </summary>
    Prefix,
    /// <summary>The replica with the fewest requests queued and running (its /metrics and the router's own count).</summary>
    LeastLoaded,
    /// <summary>Each healthy replica in turn.</summary>
    RoundRobin,
}

/// <summary>Everything `sputnik route` can be told. Defaults match the CLI's.</summary>
public sealed record RouterOptions
{
    /// <summary>The header whose value names a conversation: the web app sends it, HAProxy's documented config hashes it.</summary>
    public const string ConversationHeader = "X-Conversation-Id";
    /// <summary>Response header naming the replica that answered (for logs and tests).</summary>
    public const string ReplicaHeader = "X-Sputnik-Replica";

    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0 picks a free port (tests).</summary>
    public int Port { get; init; } = 8080;
    /// <summary>Base URLs of the Sputnik servers (http://host:port/).</summary>
    public IReadOnlyList<Uri> Replicas { get; init; } = [];
    public RoutingPolicy Policy { get; init; } = RoutingPolicy.Prefix;
    /// <summary>
    /// Consistent hashing with bounded loads: a replica takes a request only while its requests in flight stay under
    /// this factor × the mean (HAProxy's hash-balance-factor / 100).
    /// </summary>
    public double LoadFactor { get; init; } = 1.5;
    /// <summary>How often each replica's /health and /metrics are read.</summary>
    public TimeSpan HealthInterval { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>A health or metrics read slower than this counts as a failure.</summary>
    public TimeSpan HealthTimeout { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>Longest silence from a replica within one request (waiting for headers included) before it fails.</summary>
    public TimeSpan ActivityTimeout { get; init; } = TimeSpan.FromMinutes(30);
    /// <summary>How long a stop waits for requests in flight to finish.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Characters per prompt block hashed for prefix affinity (the inference extension's scorer uses 64).</summary>
    public int BlockChars { get; init; } = 64;
    /// <summary>Blocks of a prompt considered; the rest of a longer prompt does not change where it goes.</summary>
    public int MaxBlocks { get; init; } = 256;
    /// <summary>Prompt blocks remembered per replica (least recently sent forgotten first).</summary>
    public int IndexBlocksPerReplica { get; init; } = 65536;
    /// <summary>Largest request body forwarded (bodies are held so a request can be retried on another replica).</summary>
    public long MaxBodyBytes { get; init; } = 8 * 1024 * 1024;

    /// <summary>Throws ArgumentException naming the first bad setting.</summary>
    public void Validate()
    {
        if (Replicas.Count == 0) throw new ArgumentException("give at least one --replica URL (a Sputnik server, e.g. http://127.0.0.1:8081)");
        foreach (var r in Replicas)
        {
            if (!r.IsAbsoluteUri || (r.Scheme != Uri.UriSchemeHttp && r.Scheme != Uri.UriSchemeHttps))
                throw new ArgumentException($"--replica {r}: not an http:// or https:// URL");
            if (!string.IsNullOrEmpty(r.Query) || !string.IsNullOrEmpty(r.Fragment) || !string.IsNullOrEmpty(r.UserInfo))
                throw new ArgumentException($"--replica {r}: give the server's base URL only (no query, fragment or user)");
        }
        var dup = Replicas.GroupBy(Normalize).FirstOrDefault(g => g.Count() > 1);
        if (dup != null) throw new ArgumentException($"--replica {dup.Key} is given twice");
        if (Port is < 0 or > 65535) throw new ArgumentException($"--port {Port} must be between 0 and 65535");
        if (LoadFactor is < 1 or > 100 || double.IsNaN(LoadFactor)) throw new ArgumentException($"--load-factor {LoadFactor} must be between 1 and 100");
        if (HealthInterval <= TimeSpan.Zero || HealthInterval > TimeSpan.FromHours(1))
            throw new ArgumentException($"--health-interval {HealthInterval.TotalSeconds} s must be above 0 and at most an hour");
        if (BlockChars < 1 || MaxBlocks < 1 || IndexBlocksPerReplica < 1) throw new ArgumentException("block sizes and counts must be positive");
        if (MaxBodyBytes < 1) throw new ArgumentException("--max-body must be positive");
    }

    /// <summary>A replica's base URL as the router uses it: scheme://authority/path/ with one trailing slash.</summary>
    public static string Normalize(Uri replica) => replica.GetLeftPart(UriPartial.Path).TrimEnd('/') + "/";
}
