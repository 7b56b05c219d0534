using System.Buffers;
using System.Numerics.Tensors;

namespace Sputnik.Inference;

/// <summary>
/// Picks the next token from logits: penalties → top-k → top-p → min-p → temperature → draw, the order of
/// llama.cpp's default chain. Buffers are sized to the vocabulary once; sampling allocates nothing.
/// </summary>
/// <remarks>
/// The vocabulary-sized buffers (up to four, ~0.6 MB each for a 150k vocabulary) are rented from the shared array
/// pool and returned by <see cref="Dispose"/>: a server makes a sampler per request, and fresh large-object-heap
/// arrays for each one raised its resident memory to a high-water mark it never left.
/// </remarks>
internal sealed class Sampler : IDisposable
{
    private readonly SamplingOptions _options;
    private int[] _ids;
    private float[] _values;
    private readonly Dictionary<int, int> _counts = [];
    private Xoshiro256 _rng;

    public Sampler(SamplingOptions options, int vocabSize)
    {
        options.Validate();
        _options = options;
        _ids = ArrayPool<int>.Shared.Rent(vocabSize);
        _values = ArrayPool<float>.Shared.Rent(vocabSize);
        _rng = new Xoshiro256(options.Seed ?? (ulong)Random.Shared.NextInt64());
    }

    public SamplingOptions Options => _options;

    /// <summary>Returns the buffers to the pool; the sampler must not be used afterwards.</summary>
    public void Dispose()
    {
        if (_values.Length == 0) return;
        ArrayPool<int>.Shared.Return(_ids);
        ArrayPool<float>.Shared.Return(_values);
        if (_allowedIds != null) ArrayPool<int>.Shared.Return(_allowedIds);
        if (_allowedValues != null) ArrayPool<float>.Shared.Return(_allowedValues);
        _ids = [];
        _values = [];
        _allowedIds = null;
        _allowedValues = null;
    }

    /// <summary>
    /// Chooses a token. <paramref name="history"/> is every token of the sequence so far (for penalties). With a
    /// <paramref name="filter"/>, only tokens it allows can be chosen (the sampling chain runs on the allowed ones);
    /// −1 when it allows none.
    /// </summary>
    public int Sample(ReadOnlySpan<float> logits, ReadOnlySpan<int> history, ITokenFilter? filter = null)
    {
        var o = _options;
        int n = logits.Length;
        var values = _values.AsSpan(0, n);
        logits.CopyTo(values);
        ApplyPenalties(values, history);
        if (o.IsGreedy)
        {
            // The best token is usually allowed; only when it is not, walk the rest in descending order.
            int best = TensorPrimitives.IndexOfMax(values);
            if (filter == null || filter.Allows(best)) return best;
            return AllowedInOrder(logits, history, filter, 1, 0f) > 0 ? _allowedIds![0] : -1;
        }

        var ids = _ids.AsSpan(0, n);
        for (int i = 0; i < n; i++) ids[i] = i;
        int k = o.TopK > 0 ? Math.Min(o.TopK, n) : n;
        SelectTop(values, ids, k);
        // Candidates [0, k) are now sorted by descending logit.
        if (filter != null && !AllAllowed(ids[..k], filter))
        {
            k = AllowedInOrder(logits, history, filter, k, o.MinP);
            if (k == 0) return -1;
            values = _allowedValues;
            ids = _allowedIds;
        }
        return Draw(values, ids, k);
    }

    private static bool AllAllowed(ReadOnlySpan<int> ids, ITokenFilter filter)
    {
        foreach (int id in ids)
            if (!filter.Allows(id)) return false;
        return true;
    }

    private float[]? _allowedValues;
    private int[]? _allowedIds;

    /// <summary>
    /// The best <paramref name="k"/> allowed tokens, sorted by descending logit, into the allowed buffers; returns
    /// how many there are. Pops a max-heap of the whole vocabulary lazily, so only as many tokens are tested as it
    /// takes: it stops at k, or once logits fall below what min-p (or, without it, e^-30 of the best allowed token)
    /// would drop anyway.
    /// </summary>
    private int AllowedInOrder(ReadOnlySpan<float> logits, ReadOnlySpan<int> history, ITokenFilter filter, int k, float minP)
    {
        int n = logits.Length;
        var values = _values.AsSpan(0, n);
        var ids = _ids.AsSpan(0, n);
        logits.CopyTo(values);
        ApplyPenalties(values, history);
        for (int i = 0; i < n; i++) ids[i] = i;
        _allowedValues ??= ArrayPool<float>.Shared.Rent(n);
        _allowedIds ??= ArrayPool<int>.Shared.Rent(n);
        for (int i = n / 2 - 1; i >= 0; i--) SiftDownMax(values, ids, i, n);
        int found = 0, size = n;
        float floor = float.NegativeInfinity;
        while (size > 0 && found < k)
        {
            float v = values[0];
            int id = ids[0];
            if (v < floor || float.IsNegativeInfinity(v)) break;
            size--;
            values[0] = values[size];
            ids[0] = ids[size];
            SiftDownMax(values, ids, 0, size);
            if (!filter.Allows(id)) continue;
            if (found == 0) floor = v + (minP > 0 ? MathF.Log(minP) : -30f);
            _allowedValues[found] = v;
            _allowedIds[found] = id;
            found++;
        }
        return found;
    }

    /// <summary>Top-p → min-p → temperature → draw over candidates sorted by descending logit (overwrites their values).</summary>
    private int Draw(Span<float> values, Span<int> ids, int k)
    {
        var o = _options;
        var cand = values[..k];
        if (o.TopP < 1f || o.MinP > 0f)
        {
            // Probabilities at temperature 1, as llama.cpp's top-p and min-p see them.
            float max = cand[0];
            double sum = 0;
            for (int i = 0; i < k; i++) sum += Math.Exp(cand[i] - max);
            if (o.TopP < 1f)
            {
                double cum = 0;
                for (int i = 0; i < k; i++)
                {
                    cum += Math.Exp(cand[i] - max) / sum;
                    if (cum >= o.TopP) { k = i + 1; break; }
                }
            }
            if (o.MinP > 0f)
            {
                float floor = max + MathF.Log(o.MinP);
                int keep = 1;
                while (keep < k && cand[keep] >= floor) keep++;
                k = keep;
            }
        }

        // Temperature, softmax and a draw from the survivors.
        float top = values[0];
        double total = 0;
        for (int i = 0; i < k; i++)
        {
            values[i] = MathF.Exp((values[i] - top) / o.Temperature);
            total += values[i];
        }
        double u = _rng.NextDouble() * total, acc = 0;
        for (int i = 0; i < k; i++)
        {
            acc += values[i];
            if (u < acc) return ids[i];
        }
        return ids[k - 1];
    }

    private void ApplyPenalties(Span<float> values, ReadOnlySpan<int> history)
    {
        var o = _options;
        if (o.RepeatPenalty == 1f && o.PresencePenalty == 0f && o.FrequencyPenalty == 0f) return;
        var window = o.PenaltyLastN < 0 ? history : history[Math.Max(0, history.Length - o.PenaltyLastN)..];
        _counts.Clear();
        foreach (int t in window)
            if ((uint)t < (uint)values.Length) _counts[t] = _counts.GetValueOrDefault(t) + 1;
        foreach (var (t, count) in _counts)
        {
            float v = values[t];
            if (o.RepeatPenalty != 1f) v = v > 0 ? v / o.RepeatPenalty : v * o.RepeatPenalty;
            values[t] = v - count * o.FrequencyPenalty - o.PresencePenalty;
        }
    }

    /// <summary>Moves the k largest values (and their ids) to the front, sorted descending.</summary>
    private static void SelectTop(Span<float> values, Span<int> ids, int k)
    {
        int n = values.Length;
        if (k < n)
        {
            // Min-heap of the best k seen so far in the front of the arrays: O(n log k).
            for (int i = k / 2 - 1; i >= 0; i--) SiftDown(values, ids, i, k);
            for (int i = k; i < n; i++)
            {
                if (values[i] <= values[0]) continue;
                values[0] = values[i];
                ids[0] = ids[i];
                SiftDown(values, ids, 0, k);
            }
        }
        // Sort the survivors by descending value; ties by ascending id keep the result deterministic.
        var keys = values[..k];
        var vals = ids[..k];
        if (k > 128)
        {
            // Large k (top-k off): introsort on negated keys; deterministic for a given input.
            TensorPrimitives.Negate(keys, keys);
            keys.Sort(vals);
            TensorPrimitives.Negate(keys, keys);
            return;
        }
        for (int i = 1; i < k; i++)
        {
            float v = keys[i];
            int id = vals[i];
            int j = i - 1;
            while (j >= 0 && (keys[j] < v || (keys[j] == v && vals[j] > id)))
            {
                keys[j + 1] = keys[j];
                vals[j + 1] = vals[j];
                j--;
            }
            keys[j + 1] = v;
            vals[j + 1] = id;
        }
    }

    // Max-heap order; ties put the lower id on top, as the sorted paths do.
    private static void SiftDownMax(Span<float> v, Span<int> ids, int i, int n)
    {
        while (true)
        {
            int l = 2 * i + 1, r = l + 1, m = i;
            if (l < n && Above(v[l], ids[l], v[m], ids[m])) m = l;
            if (r < n && Above(v[r], ids[r], v[m], ids[m])) m = r;
            if (m == i) return;
            (v[i], v[m]) = (v[m], v[i]);
            (ids[i], ids[m]) = (ids[m], ids[i]);
            i = m;
        }
    }

    private static bool Above(float a, int ia, float b, int ib) => a > b || (a == b && ia < ib);

    private static void SiftDown(Span<float> v, Span<int> ids, int i, int n)
    {
        while (true)
        {
            int l = 2 * i + 1, r = l + 1, m = i;
            if (l < n && v[l] < v[m]) m = l;
            if (r < n && v[r] < v[m]) m = r;
            if (m == i) return;
            (v[i], v[m]) = (v[m], v[i]);
            (ids[i], ids[m]) = (ids[m], ids[i]);
            i = m;
        }
    }
}

/// <summary>Says which tokens may come next (constrained decoding); asked only about tokens the sampler considers.</summary>
internal interface ITokenFilter
{
    bool Allows(int token);
}

/// <summary>xoshiro256** — a small, fast generator whose sequence is fixed by the seed on every platform.</summary>
internal struct Xoshiro256
{
    private ulong _s0, _s1, _s2, _s3;

    public Xoshiro256(ulong seed)
    {
        // SplitMix64 expands the seed into the four state words.
        _s0 = SplitMix(ref seed); _s1 = SplitMix(ref seed); _s2 = SplitMix(ref seed); _s3 = SplitMix(ref seed);
    }

    private static ulong SplitMix(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public ulong Next()
    {
        ulong result = ulong.RotateLeft(_s1 * 5, 7) * 9, t = _s1 << 17;
        _s2 ^= _s0; _s3 ^= _s1; _s1 ^= _s2; _s0 ^= _s3; _s2 ^= t; _s3 = ulong.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));
}
