using System.Numerics.Tensors;

namespace Sputnik.Inference;

/// <summary>
/// Picks the next token from logits: penalties → top-k → top-p → min-p → temperature → draw, the order of
/// llama.cpp's default chain. Buffers are sized to the vocabulary once; sampling allocates nothing.
/// </summary>
internal sealed class Sampler
{
    private readonly SamplingOptions _options;
    private readonly int[] _ids;
    private readonly float[] _values;
    private readonly Dictionary<int, int> _counts = [];
    private Xoshiro256 _rng;

    public Sampler(SamplingOptions options, int vocabSize)
    {
        options.Validate();
        _options = options;
        _ids = new int[vocabSize];
        _values = new float[vocabSize];
        _rng = new Xoshiro256(options.Seed ?? (ulong)Random.Shared.NextInt64());
    }

    public SamplingOptions Options => _options;

    /// <summary>Chooses a token. <paramref name="history"/> is every token of the sequence so far (for penalties).</summary>
    public int Sample(ReadOnlySpan<float> logits, ReadOnlySpan<int> history)
    {
        var o = _options;
        int n = logits.Length;
        var values = _values.AsSpan(0, n);
        logits.CopyTo(values);
        ApplyPenalties(values, history);
        if (o.IsGreedy) return TensorPrimitives.IndexOfMax(values);

        var ids = _ids.AsSpan(0, n);
        for (int i = 0; i < n; i++) ids[i] = i;
        int k = o.TopK > 0 ? Math.Min(o.TopK, n) : n;
        SelectTop(values, ids, k);
        // Candidates [0, k) are now sorted by descending logit.
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
