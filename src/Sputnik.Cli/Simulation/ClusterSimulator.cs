namespace Sputnik.Cli.Simulation;

/// <summary>How the router in front of the replicas picks one for a request.</summary>
internal enum RoutingPolicy
{
    RoundRobin,
    /// <summary>The replica with the fewest requests queued or running (ties: the next in round-robin order).</summary>
    LeastLoaded,
    /// <summary>
    /// Consistent hashing of the prompt's first blocks onto a ring of replicas, with bounded loads (Mirrokni, Thorup and
    /// Zadimoghaddam; HAProxy's hash-balance-factor): a replica already at (1 + ε) × the mean load passes the request on
    /// to the next one on the ring.
    /// </summary>
    PrefixAffinity,
}

/// <summary>What one run measured.</summary>
internal sealed record SimulationResult(
    RoutingPolicy Policy, int Replicas, int Requests,
    double PrefixHitRate, double TtftP50, double TtftP95, double OutputTokensPerSecondPerReplica, double Utilization,
    double MeanInSystem, double ArrivalRate, double MeanLatency, double Makespan);

/// <summary>
/// A discrete-event simulation of chat traffic over Sputnik replicas behind a router. Each replica runs Sputnik's
/// scheduler as a cost model: up to <see cref="CostModel.Slots"/> sequences per step, a new prompt prefilled in chunks
/// beside the others' decode tokens, its first token at the end of its last chunk; the step's time comes from the
/// measured per-token costs. Each replica keeps a prefix cache of 64-token blocks (hashed as a chain, the way the
/// Gateway API Inference Extension's prefix scorer and vLLM hash them), least recently used out first, bounded by
/// <see cref="CostModel.CacheTokens"/>: a prompt's cached leading blocks are restored instead of prefilled. Events
/// are ordered by time, then by creation, and every random draw comes from the seed, so a run is deterministic.
/// </summary>
internal sealed class ClusterSimulator
{
    public const int BlockTokens = 64;

    private readonly CostModel _cost;
    private readonly RoutingPolicy _policy;
    private readonly Replica[] _replicas;
    private readonly PriorityQueue<object, (double Time, long Order)> _events = new();
    private readonly HashRing _ring;
    private readonly double _balance;
    private readonly int _affinityBlocks;
    private long _order;
    private int _nextReplica;
    private double _now, _area, _lastChange;
    private int _inFlight;
    private readonly List<double> _ttfts = [], _latencies = [];
    private long _promptTokens, _hitTokens, _outputTokens;

    /// <param name="balanceFactor">ε of the bounded loads: a replica takes a request only below (1 + ε) × the mean load.</param>
    /// <param name="affinityTokens">How much of the prompt's start the affinity hash covers (whole blocks, at least one).</param>
    public ClusterSimulator(int replicas, RoutingPolicy policy, CostModel cost, double balanceFactor = 0.25, int affinityTokens = 1024)
    {
        if (replicas < 1) throw new ArgumentException("at least one replica");
        if (cost.Slots < 1 || cost.CacheTokens < 0 || cost.PrefillChunk < 0) throw new ArgumentException("slots ≥ 1, cache tokens ≥ 0, prefill chunk ≥ 0");
        if (!(balanceFactor > 0)) throw new ArgumentException("the balance factor must be > 0");
        _cost = cost;
        _policy = policy;
        _balance = balanceFactor;
        _affinityBlocks = Math.Max(1, affinityTokens / BlockTokens);
        _replicas = Enumerable.Range(0, replicas).Select(i => new Replica(i, cost.CacheTokens / BlockTokens)).ToArray();
        _ring = new HashRing(replicas);
    }

    private sealed class Request(Conversation conversation, int turn, long[] blocks, int promptTokens, double arrival)
    {
        public Conversation Conversation { get; } = conversation;
        public int Turn { get; } = turn;
        /// <summary>Chain hashes of the prompt's whole blocks; the last few tokens that fill no block are never cached.</summary>
        public long[] Blocks { get; } = blocks;
        public int PromptTokens { get; } = promptTokens;
        public double Arrival { get; } = arrival;
        public int Reply => Conversation.ReplyTokens[Turn];
    }

    private sealed class Sequence(Request request, int cached)
    {
        public Request Request { get; } = request;
        public int PrefillLeft { get; set; } = request.PromptTokens - cached;
        public int Depth { get; set; } = cached;
        public int Generated { get; set; }
        public int PrefillNow { get; set; }
    }

    private sealed class Replica(int index, int cacheBlocks)
    {
        public int Index { get; } = index;
        public Queue<Request> Waiting { get; } = new();
        public List<Sequence> Running { get; } = [];
        public BlockCache Cache { get; } = new(cacheBlocks);
        public bool Stepping { get; set; }
        public double BusySeconds { get; set; }
        public int Load => Waiting.Count + Running.Count;
    }

    private sealed record Arrival(Request Request);

    private sealed record StepDone(Replica Replica);

    /// <summary>Replays the conversations to the end (every turn answered) and reports what it measured.</summary>
    public SimulationResult Run(IReadOnlyList<Conversation> conversations)
    {
        foreach (var c in conversations)
            if (c.Turns > 0) Schedule(c.Start, new Arrival(NewRequest(c, 0, c.Start)));
        while (_events.TryDequeue(out var e, out var at))
        {
            _area += _inFlight * (at.Time - _lastChange);
            _lastChange = _now = at.Time;
            if (e is Arrival a) Arrive(a.Request);
            else Finish(((StepDone)e).Replica);
        }
        _ttfts.Sort();
        int n = _latencies.Count;
        double makespan = _now;
        return new SimulationResult(_policy, _replicas.Length, n,
            _promptTokens > 0 ? (double)_hitTokens / _promptTokens : 0, Percentile(_ttfts, 0.50), Percentile(_ttfts, 0.95),
            makespan > 0 ? _outputTokens / makespan / _replicas.Length : 0,
            makespan > 0 ? _replicas.Sum(r => r.BusySeconds) / makespan / _replicas.Length : 0,
            makespan > 0 ? _area / makespan : 0, makespan > 0 ? n / makespan : 0, n > 0 ? _latencies.Average() : 0, makespan);
    }

    /// <summary>The nearest-rank percentile of sorted values.</summary>
    internal static double Percentile(List<double> sorted, double p) =>
        sorted.Count == 0 ? 0 : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];

    private void Schedule(double time, object e) => _events.Enqueue(e, (time, _order++));

    /// <summary>The request of a turn: the system prompt, every earlier message and reply, and this turn's message.</summary>
    private static Request NewRequest(Conversation c, int turn, double arrival)
    {
        var (blocks, tokens) = Chain(Segments(c, turn, withReply: false));
        return new Request(c, turn, blocks, tokens, arrival);
    }

    /// <summary>The segments of a turn's prompt (the system prompt, every earlier message and reply, this message) and, if asked, its reply.</summary>
    private static List<(long Id, int Tokens)> Segments(Conversation c, int turn, bool withReply)
    {
        var segments = new List<(long Id, int Tokens)> { (c.SystemPrompt + 1, c.SystemTokens) }; // shared by every conversation that draws it
        for (int i = 0; i <= turn; i++)
        {
            segments.Add((Segment(c.Id, i, 0), c.UserTokens[i]));
            if (i < turn || withReply) segments.Add((Segment(c.Id, i, 1), c.ReplyTokens[i]));
        }
        return segments;
    }

    private static long Segment(int conversation, int turn, int kind) => (long)Mix(((ulong)conversation << 24) ^ ((ulong)turn << 2) ^ (ulong)kind) | 1L << 62;

    /// <summary>Chain hashes of the whole blocks of a token sequence given as segments: block j's hash covers blocks 0..j.</summary>
    private static (long[] Blocks, int Tokens) Chain(List<(long Id, int Tokens)> segments)
    {
        int tokens = segments.Sum(s => s.Tokens);
        var blocks = new long[tokens / BlockTokens];
        ulong h = 0x9E3779B97F4A7C15;
        int seg = 0, offset = 0;
        for (int b = 0; b < blocks.Length; b++)
        {
            // Mix in each piece of a segment that lies in this block: its id, where in the segment it starts, its length.
            for (int left = BlockTokens; left > 0;)
            {
                int take = Math.Min(left, segments[seg].Tokens - offset);
                h = Mix(h ^ (ulong)segments[seg].Id ^ Mix(((ulong)offset << 32) | (uint)take));
                offset += take;
                left -= take;
                if (offset == segments[seg].Tokens) { seg++; offset = 0; }
            }
            blocks[b] = (long)h;
        }
        return (blocks, tokens);
    }

    /// <summary>SplitMix64's finaliser: a fixed, well-spread 64-bit hash (string.GetHashCode is randomised per process).</summary>
    internal static ulong Mix(ulong x)
    {
        x ^= x >> 30;
        x *= 0xBF58476D1CE4E5B9;
        x ^= x >> 27;
        x *= 0x94D049BB133111EB;
        return x ^ (x >> 31);
    }

    private void Arrive(Request r)
    {
        _inFlight++;
        var replica = _replicas[Route(r)];
        replica.Waiting.Enqueue(r);
        if (!replica.Stepping) Step(replica);
    }

    private int Route(Request r)
    {
        int n = _replicas.Length;
        switch (_policy)
        {
            case RoutingPolicy.RoundRobin:
                return _nextReplica++ % n;
            case RoutingPolicy.LeastLoaded:
            {
                int best = -1;
                for (int k = 0; k < n; k++)
                {
                    int i = (_nextReplica + k) % n;
                    if (best < 0 || _replicas[i].Load < _replicas[best].Load) best = i;
                }
                _nextReplica = (best + 1) % n;
                return best;
            }
            default:
            {
                ulong key = r.Blocks.Length > 0 ? (ulong)r.Blocks[Math.Min(_affinityBlocks, r.Blocks.Length) - 1] : Mix((ulong)r.Conversation.Id);
                int total = _replicas.Sum(x => x.Load);
                int bound = (int)Math.Ceiling((1 + _balance) * (total + 1) / n);
                return _ring.First(key, i => _replicas[i].Load < bound);
            }
        }
    }

    /// <summary>Starts a scheduler step: admits waiting requests into free slots, then prices the step's prefill chunks and decode tokens.</summary>
    private void Step(Replica replica)
    {
        double seconds = 0;
        while (replica.Running.Count < _cost.Slots && replica.Waiting.TryDequeue(out var r))
        {
            // The last prompt token is always computed (its logits give the first token), as in Sputnik's scheduler.
            int cached = Math.Min(replica.Cache.MatchPrefix(r.Blocks) * BlockTokens, r.PromptTokens - 1);
            _promptTokens += r.PromptTokens;
            _hitTokens += cached;
            seconds += cached * _cost.RestoreSecondsPerToken;
            replica.Running.Add(new Sequence(r, cached));
        }
        if (replica.Running.Count == 0)
        {
            replica.Stepping = false;
            return;
        }
        int decoding = 0;
        double depth = 0;
        foreach (var s in replica.Running)
        {
            if (s.PrefillLeft > 0)
            {
                s.PrefillNow = _cost.PrefillChunk > 0 ? Math.Min(_cost.PrefillChunk, s.PrefillLeft) : s.PrefillLeft;
                seconds += _cost.Prefill(s.Depth, s.PrefillNow);
            }
            else
            {
                decoding++;
                depth += s.Depth;
            }
        }
        if (decoding > 0) seconds += _cost.DecodeStep(decoding, depth / decoding);
        replica.Stepping = true;
        replica.BusySeconds += seconds;
        Schedule(_now + seconds, new StepDone(replica));
    }

    private void Finish(Replica replica)
    {
        for (int i = 0; i < replica.Running.Count; i++)
        {
            var s = replica.Running[i];
            var r = s.Request;
            if (s.PrefillNow > 0)
            {
                s.PrefillLeft -= s.PrefillNow;
                s.Depth += s.PrefillNow;
                s.PrefillNow = 0;
                if (s.PrefillLeft > 0) continue;
                _ttfts.Add(_now - r.Arrival); // the last chunk's logits give the first token
                replica.Cache.Insert(r.Blocks, r.Blocks.Length);
            }
            s.Generated++;
            s.Depth++;
            if (s.Generated < r.Reply) continue;
            // Done: the reply is in the cache too, as the start of the next turn's prompt.
            replica.Running.RemoveAt(i--);
            _outputTokens += s.Generated;
            _latencies.Add(_now - r.Arrival);
            _inFlight--;
            var c = r.Conversation;
            var withReply = Chain(Segments(c, r.Turn, withReply: true)).Blocks;
            replica.Cache.Insert(withReply, withReply.Length);
            if (r.Turn + 1 < c.Turns)
            {
                double at = _now + c.ThinkSeconds[r.Turn];
                Schedule(at, new Arrival(NewRequest(c, r.Turn + 1, at)));
            }
        }
        Step(replica);
    }

    /// <summary>A replica's prefix cache: block hashes, least recently used first out.</summary>
    private sealed class BlockCache(int capacity)
    {
        private readonly Dictionary<long, LinkedListNode<long>> _index = [];
        private readonly LinkedList<long> _lru = new();

        /// <summary>How many of the leading blocks are cached (each one found becomes the most recently used).</summary>
        public int MatchPrefix(long[] blocks)
        {
            int n = 0;
            while (n < blocks.Length && _index.TryGetValue(blocks[n], out var node))
            {
                _lru.Remove(node);
                _lru.AddLast(node);
                n++;
            }
            return n;
        }

        public void Insert(long[] blocks, int count)
        {
            if (capacity == 0) return;
            for (int i = 0; i < count; i++)
            {
                if (_index.TryGetValue(blocks[i], out var node)) _lru.Remove(node);
                else node = new LinkedListNode<long>(blocks[i]);
                _lru.AddLast(node);
                _index[blocks[i]] = node;
                if (_index.Count > capacity)
                {
                    _index.Remove(_lru.First!.Value);
                    _lru.RemoveFirst();
                }
            }
        }
    }

    /// <summary>A consistent-hash ring: 100 points per replica; a key goes to the first point at or after its hash that accepts.</summary>
    private sealed class HashRing
    {
        private const int PointsPerReplica = 100;
        private readonly ulong[] _points;
        private readonly int[] _owners;

        public HashRing(int replicas)
        {
            var points = new List<(ulong Point, int Owner)>();
            for (int r = 0; r < replicas; r++)
                for (int v = 0; v < PointsPerReplica; v++)
                    points.Add((Mix(((ulong)r << 32) | (uint)v), r));
            points.Sort((a, b) => a.Point != b.Point ? a.Point.CompareTo(b.Point) : a.Owner.CompareTo(b.Owner));
            _points = points.Select(p => p.Point).ToArray();
            _owners = points.Select(p => p.Owner).ToArray();
        }

        /// <summary>The first replica clockwise from the key that <paramref name="accepts"/> (with bounded loads one always does).</summary>
        public int First(ulong key, Func<int, bool> accepts)
        {
            int start = Array.BinarySearch(_points, key);
            if (start < 0) start = ~start;
            for (int k = 0; k < _points.Length; k++)
            {
                int owner = _owners[(start + k) % _points.Length];
                if (accepts(owner)) return owner;
            }
            return _owners[start % _points.Length];
        }
    }
}
