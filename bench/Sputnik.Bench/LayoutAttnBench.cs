using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;

/// <summary>
/// Decode attention over the same F16 cache contents in three memory layouts, alternating (three rounds):
/// - `layer rows`: per layer, one row per position holding every KV head's keys, then every head's values (one head's
///   256-byte key row every 1 KiB): <see cref="KvCache"/>'s layout until 2026-12-07;
/// - `head rows`: per layer and head, one row per position holding that head's keys, then its values;
/// - `planes`: per layer and head, the keys of all positions contiguous, the values in a plane of their own:
///   KvCache's layout since.
/// qwen2-1.5B's shape: 28 layers, 2 KV heads of 128, 6 query heads each. The outputs are checked equal first.
/// Usage: attn layout [depth=4096] [seconds=3] [split]; `split` runs the model's decode split (items of (segment, head),
/// heads inner, on 2 threads, merged per head) rather than one thread, head after head.
/// </summary>
internal static class LayoutAttnBench
{
    private const int Layers = 28, KvHeads = 2, HeadDim = 128, Group = 6;
    private static readonly string[] Names = ["layer rows", "head rows ", "planes    "];

    public static void Run(string[] args)
    {
        int depth = args.Length > 0 ? int.Parse(args[0]) : 4096;
        double seconds = args.Length > 1 ? double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 3;
        bool split = args.Length > 2 && args[2] == "split";
        int positions = depth + 1, headBytes = 2 * HeadDim, layerRow = 2 * KvHeads * headBytes;
        var rng = new Random(1);
        // layerRows[l]: position p at p·layerRow, head g's keys at g·headBytes, its values at (KvHeads + g)·headBytes.
        // headRows[l][g]: position p at p·2·headBytes, keys then values. planes[l][2g] / [2g + 1]: keys / values.
        var layerRows = new byte[Layers][];
        var headRows = new byte[Layers][][];
        var planes = new byte[Layers][][];
        for (int l = 0; l < Layers; l++)
        {
            layerRows[l] = new byte[positions * layerRow];
            headRows[l] = new byte[KvHeads][];
            planes[l] = new byte[2 * KvHeads][];
            for (int g = 0; g < KvHeads; g++) headRows[l][g] = new byte[positions * 2 * headBytes];
            for (int i = 0; i < planes[l].Length; i++) planes[l][i] = new byte[positions * headBytes];
            for (int p = 0; p < positions; p++)
                for (int part = 0; part < 2 * KvHeads; part++) // every head's keys, then every head's values
                {
                    var half = layerRows[l].AsSpan(p * layerRow + part * headBytes, headBytes);
                    for (int i = 0; i < HeadDim; i++) FloatConvert.WriteHalf(half, 2 * i, (float)(rng.NextDouble() * 2 - 1));
                    int g = part % KvHeads, values = part / KvHeads;
                    half.CopyTo(headRows[l][g].AsSpan((2 * p + values) * headBytes));
                    half.CopyTo(planes[l][2 * g + values].AsSpan(p * headBytes));
                }
        }
        KvHead Head(int layout, int l, int g, bool values) => layout switch
        {
            0 => new KvHead(layerRows[l], layerRow, ((values ? KvHeads : 0) + g) * headBytes, HeadDim, KvCacheType.F16),
            1 => new KvHead(headRows[l][g], 2 * headBytes, values ? headBytes : 0, HeadDim, KvCacheType.F16),
            _ => new KvHead(planes[l][2 * g + (values ? 1 : 0)], headBytes, 0, HeadDim, KvCacheType.F16),
        };
        var q = new float[KvHeads * Group * HeadDim];
        for (int i = 0; i < q.Length; i++) q[i] = (float)(rng.NextDouble() * 2 - 1);
        float scale = 1f / MathF.Sqrt(HeadDim);
        using var pool = new WorkerPool(2);
        int segments = FlashAttention.Segments(depth, 0), rowFloats = Group * FlashAttention.PartialFloats(HeadDim);
        var partials = new float[KvHeads * segments * rowFloats];
        int layer = 0, current = 0;
        Action<int, int> body = (i0, i1) =>
        {
            for (int item = i0; item < i1; item++)
            {
                int g = item % KvHeads, j = item / KvHeads;
                FlashAttention.AttendSegment(Head(current, layer, g, false), Head(current, layer, g, true), q.AsSpan(g * Group * HeadDim, Group * HeadDim),
                    partials.AsSpan((g * segments + j) * rowFloats, rowFloats), Group, depth, 0, scale, j);
            }
        };
        void Token(int layout, float[] o)
        {
            current = layout;
            for (layer = 0; layer < Layers; layer++)
                for (int g = 0; g < KvHeads; g++)
                    if (!split)
                        FlashAttention.Attend(Head(layout, layer, g, false), Head(layout, layer, g, true), q.AsSpan(g * Group * HeadDim), 0,
                            o.AsSpan(g * Group * HeadDim), 0, 1, Group, depth, 0, scale);
                    else
                    {
                        if (g == 0) pool.For(KvHeads * segments, body);
                        FlashAttention.MergeSegments(partials.AsSpan(g * segments * rowFloats, segments * rowFloats), segments, Group,
                            Head(layout, layer, g, true), o.AsSpan(g * Group * HeadDim, Group * HeadDim));
                    }
        }
        var outputs = new float[Names.Length][];
        for (int layout = 0; layout < Names.Length; layout++)
        {
            outputs[layout] = new float[q.Length];
            Token(layout, outputs[layout]);
            if (!outputs[layout].AsSpan().SequenceEqual(outputs[0]))
                throw new InvalidOperationException($"{Names[layout].Trim()} gave other outputs than {Names[0].Trim()}: the layouts must hold the same cache");
        }
        for (int round = 0; round < 3; round++)
            for (int layout = 0; layout < Names.Length; layout++)
            {
                var o = outputs[layout];
                for (int i = 0; i < 3; i++) Token(layout, o);
                var (best, mean, cpu, runs) = Repeat.For(seconds, () => Token(layout, o));
                double bytes = (double)Layers * positions * layerRow;
                Console.WriteLine($"attn layout {Names[layout]}{(split ? " (2 threads, split)" : "")} depth {depth}: best {best * 1e3:F2} ms/token, mean {mean * 1e3:F2} ms " +
                    $"({runs} runs), {cpu / ((double)Layers * KvHeads * positions) * 1e9:F1} ns CPU per position per KV head, {bytes / best / 1e9:F1} GB/s of cache");
            }
    }
}
