namespace Sputnik.Server.Routing;

/// <summary>
/// Picks the replica for one attempt of a request under the router's policy, among the healthy replicas it has not
/// tried yet. Prefix affinity is consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam 2018, as
/// HAProxy's hash-balance-factor): a replica takes a request only while its requests in flight stay under
/// ⌈factor × (all in flight + 1) / replicas⌉, otherwise the next one along the ring does.
/// </summary>
internal sealed class ReplicaPicker
{
    private const int PointsPerReplica = 160;
    private readonly Replica[] _replicas;
    private readonly RoutingPolicy _policy;
    private readonly double _loadFactor;
    private readonly ulong[] _ring;
    private readonly int[] _owner;
    private int _turn;

    public ReplicaPicker(IReadOnlyList<Replica> replicas, RoutingPolicy policy, double loadFactor)
    {
        _replicas = [.. replicas];
        _policy = policy;
        _loadFactor = loadFactor;
        // Each replica's points depend only on its own address, so adding or removing one moves only its share.
        var points = new List<(ulong Point, int Owner)>();
        for (int r = 0; r < _replicas.Length; r++)
        {
            ulong seed = PromptBlocks.Mix(StableHash(_replicas[r].Prefix));
            for (int i = 0; i < PointsPerReplica; i++) points.Add((PromptBlocks.Mix(seed + (ulong)i * 0x9e3779b97f4a7c15), r));
        }
        points.Sort((a, b) => a.Point.CompareTo(b.Point));
        _ring = [.. points.Select(p => p.Point)];
        _owner = [.. points.Select(p => p.Owner)];
    }

    /// <summary>How the pick was made (counted in the router's metrics).</summary>
    public enum Reason { Affinity, Ring, LeastLoaded, RoundRobin }

    /// <returns>null when every healthy replica was tried (or none is healthy)</returns>
    public (Replica Replica, Reason Why)? Pick(in PromptBlocks prompt, IReadOnlyCollection<Replica> tried)
    {
        var candidates = _replicas.Where(r => r.Healthy && !tried.Contains(r)).ToList();
        if (candidates.Count == 0) return null;
        switch (_policy)
        {
            case RoutingPolicy.RoundRobin:
                return (candidates[(int)((uint)Interlocked.Increment(ref _turn) % (uint)candidates.Count)], Reason.RoundRobin);
            case RoutingPolicy.LeastLoaded:
                return (LeastLoaded(candidates), Reason.LeastLoaded);
        }
        if (prompt.Key == 0 && prompt.Blocks.Length == 0) return (LeastLoaded(candidates), Reason.LeastLoaded);
        int inFlight = _replicas.Where(r => r.Healthy).Sum(r => r.InFlight);
        int cap = (int)Math.Ceiling(_loadFactor * (inFlight + 1) / candidates.Count);
        // 1. The replica that was sent the longest prefix of this conversation (past its opening), if it has room.
        Replica? best = null;
        int bestMatch = Math.Max(prompt.KeyBlocks, 1) - 1;
        foreach (var r in candidates)
        {
            int m = r.Index.Match(prompt.Blocks);
            if (m > bestMatch && r.InFlight < cap) (best, bestMatch) = (r, m);
        }
        if (best != null) return (best, Reason.Affinity);
        // 2. The conversation's place on the ring, walking on past replicas that are full, down or already tried.
        if (prompt.Key != 0)
        {
            int start = Array.BinarySearch(_ring, prompt.Key);
            if (start < 0) start = ~start;
            for (int i = 0; i < _ring.Length; i++)
            {
                var r = _replicas[_owner[(start + i) % _ring.Length]];
                if (candidates.Contains(r) && r.InFlight < cap) return (r, Reason.Ring);
            }
        }
        return (LeastLoaded(candidates), Reason.LeastLoaded);
    }

    /// <summary>Fewest queued + running; ties go round in turn, so an idle cluster still spreads its requests.</summary>
    private Replica LeastLoaded(List<Replica> candidates)
    {
        int offset = (int)((uint)Interlocked.Increment(ref _turn) % (uint)candidates.Count);
        Replica best = candidates[offset];
        for (int i = 1; i < candidates.Count; i++)
        {
            var r = candidates[(offset + i) % candidates.Count];
            if (r.Busy < best.Busy) best = r;
        }
        return best;
    }

    private static ulong StableHash(string s)
    {
        ulong h = 0xcbf29ce484222325;
        foreach (char c in s) h = (h ^ c) * 0x100000001b3;
        return h;
    }
}
