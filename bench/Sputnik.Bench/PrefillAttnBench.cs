using Sputnik.Models;
using Sputnik.Tensors;

/// <summary>
/// Single-threaded prefill attention: the last <c>tokens</c> positions of a <c>depth</c>-token prompt against one layer
/// of a qwen2-1.5B-shaped cache (2 KV heads of 128, 6 query heads each), in the items DecoderModel.Attention makes
/// (blocks of 16 tokens × KV head, one Attend call each). Prints ns per (query row, key) pair and the multiply-add rate
/// (q·k and p·v: 256 per pair), best of a few seconds of repeats.
/// Usage: attn prefill [depth=4096] [F16|F32|Q8_0|Q4_0] [seconds=3] [tokens=512] [variants, e.g. old,new] [layers=1] [block=16]
/// (layers &gt; 1: that many layers' caches, attended in turn as a forward pass does, so the cache no longer stays in L2/L3)
/// With variants (old: one query row at a time; new: register-blocked rows), runs them alternating (three rounds)
/// so their ratio survives a noisy machine.
/// </summary>
internal static class PrefillAttnBench
{
    public static void Run(string[] args)
    {
        int depth = args.Length > 0 ? int.Parse(args[0]) : 4096;
        var type = args.Length > 1 ? Enum.Parse<KvCacheType>(args[1], ignoreCase: true) : KvCacheType.F16;
        double seconds = args.Length > 2 ? double.Parse(args[2]) : 3;
        int tokens = args.Length > 3 ? int.Parse(args[3]) : 512;
        int layers = args.Length > 5 ? int.Parse(args[5]) : 1, block = args.Length > 6 ? int.Parse(args[6]) : 16;
        const int kvHeads = 2, hd = 128, group = 6;
        if (tokens < 1 || tokens > depth) throw new ArgumentException($"{tokens} tokens at depth {depth}");
        var cache = new KvCache(layers, depth, kvHeads * hd, type, type, hd);
        var rng = new Random(1);
        var k = new float[kvHeads * hd];
        var v = new float[kvHeads * hd];
        for (int p = 0; p < depth; p++)
        {
            for (int i = 0; i < k.Length; i++) { k[i] = (float)(rng.NextDouble() * 2 - 1); v[i] = (float)(rng.NextDouble() * 2 - 1); }
            for (int l = 0; l < layers; l++) cache.Write(l, p, k, v);
        }
        cache.Length = depth;
        int qDim = kvHeads * group * hd, start = depth - tokens;
        var q = new float[tokens * qDim];
        for (int i = 0; i < q.Length; i++) q[i] = (float)(rng.NextDouble() * 2 - 1);
        var o = new float[q.Length];
        float scale = 1f / MathF.Sqrt(hd);
        double pairs = 0;
        for (int i = 0; i < tokens; i++) pairs += (double)(start + i + 1) * kvHeads * group * layers;
        void Chunk()
        {
            for (int l = 0; l < layers; l++)
                for (int b0 = 0; b0 < tokens; b0 += block)
                    for (int g = 0; g < kvHeads; g++)
                    {
                        int at = b0 * qDim + g * group * hd;
                        FlashAttention.Attend(cache.KeyHead(l, g * hd, hd), cache.ValueHead(l, g * hd, hd), q.AsSpan(at), qDim,
                            o.AsSpan(at), qDim, Math.Min(block, tokens - b0), group, start + b0, 0, scale);
                    }
        }
        Chunk();
        var variants = args.Length > 4 ? args[4].Split(',') : [""];
        for (int round = 0; round < (variants.Length > 1 ? 3 : 1); round++)
            foreach (var variant in variants)
            {
                if (variant.StartsWith('p')) FlashAttention.PassOverride = int.Parse(variant[1..]);
                else if (variant != "") FlashAttention.BlockedRows = variant switch
                {
                    "old" => false,
                    "new" => true,
                    _ => throw new ArgumentException($"variant {variant}: old, new or pN (N positions a pass)"),
                };
                Chunk();
                Measure(variant == "" ? "" : $"{variant,-4}");
            }

        void Measure(string label)
        {
            var (best, _, cpu, runs) = Repeat.For(seconds, Chunk);
            Console.WriteLine($"{label} prefill attn ({layers} layers, blocks of {block}) {tokens} tokens at {start}…{depth - 1} {type}: best {best * 1e3:F1} ms, CPU {cpu * 1e3:F1} ms ({runs} runs), " +
                $"{best / pairs * 1e9:F2} ns per pair (best), {cpu / pairs * 1e9:F2} (CPU), {pairs * 2 * hd / best / 1e9:F1} GMAC/s");
        }
    }
}
