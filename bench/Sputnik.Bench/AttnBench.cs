using System.Diagnostics;
using Sputnik.Models;
using Sputnik.Tensors;

/// <summary>
/// Single-threaded decode attention at depth: one token's attention over every layer of a qwen2-1.5B-shaped cache
/// (28 layers, 2 KV heads of 128, 12 query heads), the cache filled with random rows. Prints ms per token and the
/// cache bytes read per second, best of a few seconds of repeats.
/// Usage: attn [depth=4096] [F16|F32|Q8_0|Q4_0] [seconds=3]
/// </summary>
internal static class AttnBench
{
    public static void Run(string[] args)
    {
        int depth = args.Length > 0 ? int.Parse(args[0]) : 4096;
        var type = args.Length > 1 ? Enum.Parse<KvCacheType>(args[1], ignoreCase: true) : KvCacheType.F16;
        double seconds = args.Length > 2 ? double.Parse(args[2]) : 3;
        const int layers = 28, kvHeads = 2, hd = 128, group = 6;
        var cache = new KvCache(layers, depth + 1, kvHeads * hd, type, type, hd);
        var rng = new Random(1);
        var k = new float[kvHeads * hd];
        var v = new float[kvHeads * hd];
        for (int l = 0; l < layers; l++)
            for (int p = 0; p <= depth; p++)
            {
                for (int i = 0; i < k.Length; i++) { k[i] = (float)(rng.NextDouble() * 2 - 1); v[i] = (float)(rng.NextDouble() * 2 - 1); }
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
        double best = double.MaxValue, total = 0;
        int runs = 0;
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            long t0 = Stopwatch.GetTimestamp();
            Token();
            double t = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            best = Math.Min(best, t);
            total += t;
            runs++;
        }
        double cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds / runs; // the machine is shared: CPU time is steadier
        double bytes = (double)layers * (depth + 1) * KvRowCodec.Bytes(type, kvHeads * hd) * 2;
        Console.WriteLine($"attn depth {depth} {type}: best {best * 1e3:F2} ms/token, mean {total / runs * 1e3:F2} ms, CPU {cpu * 1e3:F2} ms ({runs} runs), {bytes / best / 1e9:F1} GB/s of cache");
    }
}
