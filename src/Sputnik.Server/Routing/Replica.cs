namespace Sputnik.Server.Routing;

/// <summary>One Sputnik server behind the router: its address, health, load and the prompt blocks it was sent.</summary>
internal sealed class Replica(Uri url, int indexCapacity)
{
    /// <summary>Base URL with one trailing slash; YARP appends the request's path to it.</summary>
    public string Prefix { get; } = RouterOptions.Normalize(url);
    /// <summary>host:port, for logs, the response header and metric labels.</summary>
    public string Name { get; } = url.Authority;

    private volatile bool _healthy;
    private int _inFlight;
    private long _attempts, _failures;
    private volatile LoadReading _load = new(0, 0, 0);

    /// <summary>Whether requests may go here: set by the last health check, cleared at once by a failed request.</summary>
    public bool Healthy => _healthy;
    /// <summary>Requests this router has sent here and not finished.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);
    public long Attempts => Interlocked.Read(ref _attempts);
    public long Failures => Interlocked.Read(ref _failures);
    /// <summary>What the replica's /metrics said last.</summary>
    public LoadReading Load => _load;
    public string? LastError { get; private set; }

    /// <summary>Blocks of the prompts sent here, as an approximation of what its prompt cache holds.</summary>
    public PrefixIndex Index { get; } = new(indexCapacity);

    /// <summary>Queued + running requests: its own report, or this router's count when that is higher (fresher).</summary>
    public double Busy => Math.Max(InFlight, _load.Waiting + _load.Running);

    public void Begin()
    {
        Interlocked.Increment(ref _inFlight);
        Interlocked.Increment(ref _attempts);
    }

    public void End() => Interlocked.Decrement(ref _inFlight);

    /// <summary>Marks it up after a good health check; false when it already was.</summary>
    public bool MarkUp(LoadReading load)
    {
        _load = load;
        bool was = _healthy;
        _healthy = true;
        LastError = null;
        return !was;
    }

    /// <summary>
    /// Marks it down (a failed check or request); true when it was up. What it was sent is forgotten: a replica that
    /// comes back has usually restarted with an empty cache.
    /// </summary>
    public bool MarkDown(string error, bool requestFailed)
    {
        if (requestFailed) Interlocked.Increment(ref _failures);
        LastError = error;
        bool was = _healthy;
        _healthy = false;
        if (was) Index.Clear();
        return was;
    }
}

/// <summary>A replica's gauges from its /metrics (the inference extension's protocol names).</summary>
internal sealed record LoadReading(double Waiting, double Running, double KvCacheUsage);

/// <summary>
/// The prompt blocks (chained hashes, see <see cref="PromptBlocks"/>) a replica was sent, least recently sent
/// forgotten first: the inference extension's approximate prefix-cache index, kept by the router itself.
/// </summary>
internal sealed class PrefixIndex(int capacity)
{
    private readonly Dictionary<ulong, LinkedListNode<ulong>> _nodes = [];
    private readonly LinkedList<ulong> _order = new();
    private readonly Lock _lock = new();

    public int Count { get { lock (_lock) return _nodes.Count; } }

    /// <summary>How many leading blocks of the prompt were sent here (a chained hash stands for its whole prefix).</summary>
    public int Match(ReadOnlySpan<ulong> blocks)
    {
        lock (_lock)
        {
            // Chained: block i is present only if the prompt up to it was sent, so the longest present one counts.
            for (int i = blocks.Length - 1; i >= 0; i--)
                if (_nodes.ContainsKey(blocks[i])) return i + 1;
            return 0;
        }
    }

    public void Add(ReadOnlySpan<ulong> blocks)
    {
        lock (_lock)
        {
            foreach (ulong b in blocks)
            {
                if (_nodes.TryGetValue(b, out var node)) _order.Remove(node);
                else node = new LinkedListNode<ulong>(b);
                _order.AddFirst(node);
                _nodes[b] = node;
            }
            while (_nodes.Count > capacity)
            {
                var last = _order.Last!;
                _order.RemoveLast();
                _nodes.Remove(last.Value);
            }
        }
    }

    public void Clear()
    {
        lock (_lock)
        {
            _nodes.Clear();
            _order.Clear();
        }
    }
}
