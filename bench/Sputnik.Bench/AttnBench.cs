using Sputnik.Models;
using Sputnik.Tensors;

/// <summary>
/// Single-threaded decode attention at depth: one token's attention over every layer of a qwen2-1.5B-shaped cache
/// (28 layers, 2 KV heads of 128, 12 query heads), the cache filled with random rows. Prints ms per token and the
/// cache bytes read per second, best of a few seconds of repeats.
/// Usage: attn [group=N] [tiny=F] [layers=N] [depth=4096] [F16|F32|Q8_0|Q4_0] [seconds=3] [prefetch distances to compare, e.g. 0,16,64 (rows ahead; 0: off), or old,new (query rows one at a time, or register-blocked), or exact,normal (F16 rows converted by the exact 8-operation form, or normal rows by the 4-operation one), or apart,together (each pass prefetches its own rows, or the key pass the values' too), or tiled,fused (an F16 cache, or Q8_0/Q4_0 values, decoded a tile at a time, or read in place by the fused kernels), or checked,trusted (the fused kernels watching for infinities, or trusting a cache that saw none)]
/// `group=N` sets the query heads per KV head (default 6, qwen2-1.5B's; 4 is qwen3-8B's, 7 qwen2-7B's); `tiny=F` (after
/// it) makes that fraction of the cache's values subnormal halves.
/// With variants, runs them alternating (seconds each, three rounds) so their ratio survives a noisy machine.
/// `split` as the fourth argument instead runs the decode split of DecoderModel.SegmentedAttention on 2 threads
/// (items = (KV head, segment), merged per head), alternating the item orders heads-outer and heads-inner (`split apart,together`: heads inner, alternating the values' prefetch; `split tiled,fused`: the F16 kernels).
/// `attn prefill …` times prefill attention instead (<see cref="PrefillAttnBench"/>), `attn mla …` DeepSeek-V2-Lite's
/// absorbed MLA decode attention (<see cref="MlaAttnBench"/>), `attn layout …` the cache's row layout against
/// head-major planes (<see cref="LayoutAttnBench"/>).
/// </summary>
internal static class AttnBench
{
    public static void Run(string[] args)
    {
        if (args.Length > 0 && args[0] == "prefill")
        {
            PrefillAttnBench.Run(args[1..]);
            return;
        }
        if (args.Length > 0 && args[0] == "mla")
        {
            MlaAttnBench.Run(args[1..]);
            return;
        }
        if (args.Length > 0 && args[0] == "layout")
        {
            LayoutAttnBench.Run(args[1..]);
            return;
        }
        int group = 6;
        if (args.Length > 0 && args[0].StartsWith("group=", StringComparison.Ordinal))
        {
            group = int.Parse(args[0]["group=".Length..]);
            args = args[1..];
        }
        // tiny=F: that fraction of the cache's values are subnormal halves (±m·2^-24), the inputs some CPUs slow down on.
        double tiny = 0;
        if (args.Length > 0 && args[0].StartsWith("tiny=", StringComparison.Ordinal))
        {
            tiny = double.Parse(args[0]["tiny=".Length..], System.Globalization.CultureInfo.InvariantCulture);
            args = args[1..];
        }
        // layers=N: fewer layers than qwen2-1.5B's 28, so the whole cache fits a cache level (1 layer of 512 positions: 512 KiB).
        int layers = 28;
        if (args.Length > 0 && args[0].StartsWith("layers=", StringComparison.Ordinal))
        {
            layers = int.Parse(args[0]["layers=".Length..]);
            args = args[1..];
        }
        int depth = args.Length > 0 ? int.Parse(args[0]) : 4096;
        var type = args.Length > 1 ? Enum.Parse<KvCacheType>(args[1], ignoreCase: true) : KvCacheType.F16;
        double seconds = args.Length > 2 ? double.Parse(args[2]) : 3;
        const int kvHeads = 2, hd = 128;
        var cache = new KvCache(layers, depth + 1, kvHeads * hd, type, type, hd);
        var rng = new Random(1);
        var k = new float[kvHeads * hd];
        var v = new float[kvHeads * hd];
        for (int l = 0; l < layers; l++)
            for (int p = 0; p <= depth; p++)
            {
                for (int i = 0; i < k.Length; i++) { k[i] = (float)(rng.NextDouble() * 2 - 1); v[i] = (float)(rng.NextDouble() * 2 - 1); }
                if (tiny > 0)
                    for (int i = 0; i < k.Length; i++)
                    {
                        if (rng.NextDouble() < tiny) k[i] = MathF.CopySign(rng.Next(1, 1024) * MathF.ScaleB(1f, -24), k[i]);
                        if (rng.NextDouble() < tiny) v[i] = MathF.CopySign(rng.Next(1, 1024) * MathF.ScaleB(1f, -24), v[i]);
                    }
                cache.Write(l, p, k, v);
            }
        cache.Length = depth + 1;
        var q = new float[kvHeads * group * hd];
        for (int i = 0; i < q.Length; i++) q[i] = (float)(rng.NextDouble() * 2 - 1);
        var o = new float[q.Length];
        float scale = 1f / MathF.Sqrt(hd);
        void Token()
        {
            for (int l = 0; l < layers; l++)
                for (int g = 0; g < kvHeads; g++)
                    FlashAttention.Attend(cache.KeyHead(l, g * hd, hd), cache.ValueHead(l, g * hd, hd), q.AsSpan(g * group * hd), 0,
                        o.AsSpan(g * group * hd), 0, 1, group, depth, 0, scale);
        }
        for (int i = 0; i < 5; i++) Token();
        if (args.Length > 3 && args[3] == "split")
        {
            using var pool = new WorkerPool(2);
            int segments = FlashAttention.Segments(depth, 0), rowFloats = group * FlashAttention.PartialFloats(hd);
            var partials = new float[kvHeads * segments * rowFloats];
            int layer = 0;
            bool headsInner = false;
            Action<int, int> body = (i0, i1) =>
            {
                for (int item = i0; item < i1; item++)
                {
                    int g = headsInner ? item % kvHeads : item / segments, j = headsInner ? item / kvHeads : item % segments;
                    FlashAttention.AttendSegment(cache.KeyHead(layer, g * hd, hd), cache.ValueHead(layer, g * hd, hd), q.AsSpan(g * group * hd, group * hd),
                        partials.AsSpan((g * segments + j) * rowFloats, rowFloats), group, depth, 0, scale, j);
                }
            };
            void SplitToken()
            {
                for (layer = 0; layer < layers; layer++)
                {
                    pool.For(kvHeads * segments, body);
                    for (int g = 0; g < kvHeads; g++)
                        FlashAttention.MergeSegments(partials.AsSpan(g * segments * rowFloats, segments * rowFloats), segments, group,
                            cache.ValueHead(layer, g * hd, hd), o.AsSpan(g * group * hd, group * hd));
                }
            }
            if (args.Length > 4)
            {
                // Heads inner (the model's order), alternating the values' prefetch: apart,together.
                headsInner = true;
                for (int round = 0; round < 3; round++)
                    foreach (var variant in args[4].Split(','))
                    {
                        if (variant is "tiled" or "fused") FlashAttention.FusedHalves = FlashAttention.FusedBlockValues = variant == "fused";
                        else if (variant is "checked" or "trusted") FlashAttention.TrustFiniteCaches = variant == "trusted";
                        else FlashAttention.PrefetchValuesWithKeys = variant switch
                        {
                            "apart" => false,
                            "together" => true,
                            _ => throw new ArgumentException($"split variant {variant}: apart, together, tiled, fused, checked or trusted"),
                        };
                        for (int i = 0; i < 3; i++) SplitToken();
                        Measure(variant is "tiled" or "fused" or "checked" or "trusted" ? $"2 threads, F16 {variant,-8} " : $"2 threads, values prefetched {variant,-8} ", SplitToken);
                    }
                return;
            }
            for (int round = 0; round < 3; round++)
                foreach (bool inner in new[] { false, true })
                {
                    headsInner = inner;
                    for (int i = 0; i < 3; i++) SplitToken();
                    Measure(inner ? "2 threads, heads inner " : "2 threads, heads outer ", SplitToken);
                }
            return;
        }
        if (args.Length > 3)
        {
            var variants = args[3].Split(',');
            for (int round = 0; round < 3; round++)
                foreach (var variant in variants)
                {
                    string what = variant switch
                    {
                        "old" or "new" => "rows", "exact" or "normal" => "F16 rows", "apart" or "together" => "values prefetched", "tiled" or "fused" => "cache read",
                        "checked" or "trusted" => "F16 infinities",
                        _ => "prefetch",
                    };
                    if (variant is "old" or "new") FlashAttention.BlockedRows = variant == "new";
                    else if (variant is "exact" or "normal") KvRowCodec.NormalRows = variant == "normal";
                    else if (variant is "apart" or "together") FlashAttention.PrefetchValuesWithKeys = variant == "together";
                    else if (variant is "tiled" or "fused") FlashAttention.FusedHalves = FlashAttention.FusedBlockValues = variant == "fused";
                    else if (variant is "checked" or "trusted") FlashAttention.TrustFiniteCaches = variant == "trusted";
                    else FlashAttention.PrefetchAhead = int.Parse(variant);
                    Measure($"{what} {variant,-8} ", Token);
                }
            return;
        }
        Measure("", Token);

        void Measure(string label, Action token)
        {
            var (best, mean, cpu, runs) = Repeat.For(seconds, token);
            double bytes = (double)layers * (depth + 1) * KvRowCodec.Bytes(type, kvHeads * hd) * 2;
            double perPosition = cpu / ((double)layers * kvHeads * (depth + 1)) * 1e9;
            Console.WriteLine($"{label}attn group {group} depth {depth} {type}: best {best * 1e3:F2} ms/token, mean {mean * 1e3:F2} ms, CPU {cpu * 1e3:F2} ms ({runs} runs), " +
                $"{perPosition:F1} ns CPU per position per KV head, {bytes / best / 1e9:F1} GB/s of cache");
        }
    }
}
