using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;

/// <summary>
/// Decode attention over the same F16 cache contents in two memory layouts, one thread, alternating: rows as
/// <see cref="KvCache"/> stores them (per layer, one row per position: every KV head's keys, then every head's values;
/// one head's 256-byte key row every 1 KiB) and head-major planes (per layer and head, the keys of all positions
/// contiguous, then the values). qwen2-1.5B's shape: 28 layers, 2 KV heads of 128, 6 query heads each. The question
/// it answers: how much of decode attention at depth is the strided stream, which only a cache layout change removes.
/// Usage: attn layout [depth=4096] [seconds=3] [split]; `split` runs the model's decode split instead (items of
/// (segment, head), heads inner, on 2 threads, merged per head) rather than one thread, head after head.
/// </summary>
internal static class LayoutAttnBench
{
    private const int Layers = 28, KvHeads = 2, HeadDim = 128, Group = 6;

    public static void Run(string[] args)
    {
        int depth = args.Length > 0 ? int.Parse(args[0]) : 4096;
        double seconds = args.Length > 1 ? double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 3;
        int positions = depth + 1, headBytes = 2 * HeadDim, rowBytes = 2 * KvHeads * headBytes;
        var rng = new Random(1);
        // rows[l]: position p at p·rowBytes (keys of head g at g·headBytes, values at (KvHeads + g)·headBytes);
        // planes[l][2g] / [2g + 1]: head g's keys / values, position p at p·headBytes. The same halves in both.
        var rows = new byte[Layers][];
        var planes = new byte[Layers][][];
        for (int l = 0; l < Layers; l++)
        {
            rows[l] = new byte[positions * rowBytes];
            planes[l] = new byte[2 * KvHeads][];
            for (int i = 0; i < planes[l].Length; i++) planes[l][i] = new byte[positions * headBytes];
            for (int p = 0; p < positions; p++)
                for (int part = 0; part < 2 * KvHeads; part++) // keys of every head, then values
                {
                    var half = rows[l].AsSpan(p * rowBytes + part * headBytes, headBytes);
                    for (int i = 0; i < HeadDim; i++) FloatConvert.WriteHalf(half, 2 * i, (float)(rng.NextDouble() * 2 - 1));
                    int g = part % KvHeads, kind = part / KvHeads;
                    half.CopyTo(planes[l][2 * g + kind].AsSpan(p * headBytes));
                }
        }
        var q = new float[KvHeads * Group * HeadDim];
        for (int i = 0; i < q.Length; i++) q[i] = (float)(rng.NextDouble() * 2 - 1);
        var strided = new float[q.Length];
        var contiguous = new float[q.Length];
        float scale = 1f / MathF.Sqrt(HeadDim);
        // The model's decode split (DecoderModel.SegmentedAttention): items (segment, head), heads inner, over 2 threads.
        bool split = args.Length > 2 && args[2] == "split";
        using var pool = new WorkerPool(2);
        int segments = FlashAttention.Segments(depth, 0), rowFloats = Group * FlashAttention.PartialFloats(HeadDim);
        var partials = new float[KvHeads * segments * rowFloats];
        KvHead KeyHead(bool headMajor, int l, int g) => headMajor ? new KvHead(planes[l][2 * g], headBytes, 0, HeadDim, KvCacheType.F16)
            : new KvHead(rows[l], rowBytes, g * headBytes, HeadDim, KvCacheType.F16);
        KvHead ValueHead(bool headMajor, int l, int g) => headMajor ? new KvHead(planes[l][2 * g + 1], headBytes, 0, HeadDim, KvCacheType.F16)
            : new KvHead(rows[l], rowBytes, (KvHeads + g) * headBytes, HeadDim, KvCacheType.F16);
        int layer = 0;
        bool major = false;
        Action<int, int> body = (i0, i1) =>
        {
            for (int item = i0; item < i1; item++)
            {
                int g = item % KvHeads, j = item / KvHeads;
                FlashAttention.AttendSegment(KeyHead(major, layer, g), ValueHead(major, layer, g), q.AsSpan(g * Group * HeadDim, Group * HeadDim),
                    partials.AsSpan((g * segments + j) * rowFloats, rowFloats), Group, depth, 0, scale, j);
            }
        };
        void SplitToken(bool headMajor, float[] o)
        {
            major = headMajor;
            for (layer = 0; layer < Layers; layer++)
            {
                pool.For(KvHeads * segments, body);
                for (int g = 0; g < KvHeads; g++)
                    FlashAttention.MergeSegments(partials.AsSpan(g * segments * rowFloats, segments * rowFloats), segments, Group,
                        ValueHead(headMajor, layer, g), o.AsSpan(g * Group * HeadDim, Group * HeadDim));
            }
        }
        void Token(bool headMajor, float[] o)
        {
            if (split)
            {
                SplitToken(headMajor, o);
                return;
            }
            for (int l = 0; l < Layers; l++)
                for (int g = 0; g < KvHeads; g++)
                {
                    FlashAttention.Attend(KeyHead(headMajor, l, g), ValueHead(headMajor, l, g), q.AsSpan(g * Group * HeadDim), 0, o.AsSpan(g * Group * HeadDim), 0, 1, Group, depth, 0, scale);
                }
        }
        Token(false, strided);
        Token(true, contiguous);
        if (!strided.AsSpan().SequenceEqual(contiguous))
            throw new InvalidOperationException("the two layouts gave different outputs: they must hold the same cache");
        for (int round = 0; round < 3; round++)
            foreach (bool headMajor in new[] { false, true })
            {
                var o = headMajor ? contiguous : strided;
                for (int i = 0; i < 3; i++) Token(headMajor, o);
                var (best, mean, cpu, runs) = Repeat.For(seconds, () => Token(headMajor, o));
                double bytes = (double)Layers * positions * rowBytes;
                Console.WriteLine($"attn layout{(split ? ", 2 threads split" : "")} {(headMajor ? "head-major planes" : "cache rows       ")} depth {depth}: best {best * 1e3:F2} ms/token, mean {mean * 1e3:F2} ms " +
                    $"({runs} runs), {cpu / ((double)Layers * KvHeads * positions) * 1e9:F1} ns CPU per position per KV head, {bytes / best / 1e9:F1} GB/s of cache");
            }
    }
}
