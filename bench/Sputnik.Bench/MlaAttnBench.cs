using Sputnik.Models;
using Sputnik.Tensors;

/// <summary>
/// Single-threaded MLA decode attention at depth, DeepSeek-V2-Lite's shape: one token's 16 absorbed query rows of
/// 576 (latent 512 + rope 64) over every layer of an F16 latent cache (27 layers), values the latents themselves.
/// Prints ms per token and CPU ns per position per layer, best of a few seconds of repeats.
/// Usage: attn mla [depth=4096] [seconds=3] [passes]; `passes` alternates whole 64-position tiles (the kernel before
/// L1-sized passes) with the passes the kernel chooses, three rounds.
/// </summary>
internal static class MlaAttnBench
{
    private const int Layers = 27, Heads = 16, Rank = 512, Rope = 64;

    public static void Run(string[] args)
    {
        int depth = args.Length > 0 ? int.Parse(args[0]) : 4096;
        double seconds = args.Length > 1 ? double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 3;
        var cache = new LatentKvCache(Layers, depth + 1, Rank, Rope, KvCacheType.F16);
        cache.Reserve(depth + 1);
        var rng = new Random(1);
        var row = new float[Rank + Rope];
        for (int l = 0; l < Layers; l++)
            for (int p = 0; p <= depth; p++)
            {
                for (int i = 0; i < row.Length; i++) row[i] = (float)(rng.NextDouble() * 2 - 1);
                cache.Write(l, p, row);
            }
        var q = new float[Heads * (Rank + Rope)];
        for (int i = 0; i < q.Length; i++) q[i] = (float)(rng.NextDouble() * 2 - 1) * 0.05f;
        var o = new float[Heads * Rank];
        float scale = 1f / MathF.Sqrt(192);
        void Token()
        {
            for (int l = 0; l < Layers; l++)
                FlashAttention.Attend(cache.Keys(l), cache.Values(l), q, 0, o, 0, 1, Heads, depth, 0, scale);
        }
        for (int i = 0; i < 3; i++) Token();
        if (args.Length > 2 && args[2] == "passes")
        {
            for (int round = 0; round < 3; round++)
                foreach (int? forced in new int?[] { FlashAttention.Tile, null })
                {
                    FlashAttention.PassOverride = forced;
                    Measure(forced == null ? "L1 passes   " : "whole tiles ", depth, seconds, Token);
                }
            FlashAttention.PassOverride = null;
            return;
        }
        Measure("", depth, seconds, Token);
    }

    private static void Measure(string label, int depth, double seconds, Action token)
    {
        var (best, _, cpu, runs) = Repeat.For(seconds, token);
        double macs = (double)Layers * (depth + 1) * Heads * (Rank + Rope + Rank);
        Console.WriteLine($"{label}mla attn depth {depth}: best {best * 1e3:F2} ms/token, CPU {cpu * 1e3:F2} ms ({runs} runs), " +
            $"{cpu / ((double)Layers * (depth + 1)) * 1e9:F1} ns CPU per position per layer, {macs / best / 1e9:F1} G multiply-adds/s");
    }
}
