using System.Diagnostics;
using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;

/// <summary>
/// End-to-end prefill/decode speed on a random model of qwen2-1.5B shape (1536 hidden, 28 layers, ffn 8960,
/// 12 heads, 2 kv heads, vocab 151936), weights N(0, 0.02). One layer's matrices are quantized and written for
/// every layer (different file offsets, so every token still streams all weights from memory).
/// Usage: model [FILE.gguf | TYPE] [threads=2] [pp=128] [tg=64] [kv=F16] [old,new: the prompt alternately with
/// attention's query rows one at a time and register-blocked, instead of the pp/tg measurement]
/// </summary>
internal static class ModelBench
{
    private const int Dim = 1536, Layers = 28, Ffn = 8960, Heads = 12, KvHeads = 2, Vocab = 151936;

    public static void Run(string[] args)
    {
        // an existing .gguf (e.g. stories260K) or a weight type for the random qwen2-1.5B-shaped model
        string? file = args.Length > 0 && args[0].EndsWith(".gguf", StringComparison.Ordinal) ? args[0] : null;
        GgmlType type = file == null && args.Length > 0 ? Enum.Parse<GgmlType>(args[0]) : GgmlType.Q4_K;
        int threads = args.Length > 1 ? int.Parse(args[1]) : 2;
        int pp = args.Length > 2 ? int.Parse(args[2]) : 128;
        int tg = args.Length > 3 ? int.Parse(args[3]) : 64;
        var kv = args.Length > 4 ? Enum.Parse<KvCacheType>(args[4]) : KvCacheType.F16;
        string path = file ?? Path.Combine(Path.GetTempPath(), $"sputnik-bench-qwen2-1.5b-{type}.gguf");
        if (!File.Exists(path)) Write(path, type);

        using var model = ModelLoader.Load(GgufFile.Open(path), threads);
        long layerBytes = 0;
        foreach (var t in model.File.Tensors)
            if (t.Name.StartsWith("blk.", StringComparison.Ordinal) || t.Name == "output.weight") layerBytes += t.ByteSize;
        Console.WriteLine($"{path}: {type}, {threads} threads, kv {kv}, {layerBytes / 1e9:F2} GB of weights read per decoded token");

        double stream = StreamBandwidth(model.Pool);
        Console.WriteLine($"plain streaming read with the same {threads} threads right now: {stream:F1} GB/s (the ceiling for decode)");

        var rng = new Random(1);
        int[] prompt = Enumerable.Range(0, pp).Select(_ => rng.Next(model.Config.VocabSize)).ToArray();
        // warm-up: pages the file in and tiers the JIT up
        model.Forward(model.CreateState(pp + tg + 8, kv), prompt);
        if (args.Length > 5 && args[5] == "old,new")
        {
            // The prompt alternately with attention's query rows one at a time and register-blocked, three rounds.
            for (int round = 0; round < 3; round++)
                foreach (bool blocked in new[] { false, true })
                {
                    FlashAttention.BlockedRows = blocked;
                    var s = model.CreateState(pp + 8, kv);
                    long t0 = Stopwatch.GetTimestamp();
                    model.Forward(s, prompt);
                    double sec = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                    Console.WriteLine($"rows {(blocked ? "new" : "old")}: pp{pp} {pp / sec:F1} tok/s");
                }
            return;
        }
        double best = double.MaxValue;
        for (int rep = 0; rep < 3; rep++)
        {
            var s = model.CreateState(pp + tg + 8, kv);
            long t0 = Stopwatch.GetTimestamp();
            model.Forward(s, prompt);
            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        Console.WriteLine($"pp{pp}: {pp / best:F1} tok/s ({best * 1e3:F0} ms)");

        var st = model.CreateState(pp + tg + 8, kv);
        model.Forward(st, prompt.AsSpan(0, 8));
        Span<int> tok = [1];
        for (int i = 0; i < 4; i++) model.Forward(st, tok);
        long a0 = GC.GetAllocatedBytesForCurrentThread();
        long d0 = Stopwatch.GetTimestamp();
        double fastest = double.MaxValue;
        for (int i = 0; i < tg; i++)
        {
            long s0 = Stopwatch.GetTimestamp();
            model.Forward(st, tok);
            fastest = Math.Min(fastest, Stopwatch.GetElapsedTime(s0).TotalSeconds);
        }
        double dt = Stopwatch.GetElapsedTime(d0).TotalSeconds / tg;
        long allocated = GC.GetAllocatedBytesForCurrentThread() - a0;
        Console.WriteLine($"tg{tg}: {1 / dt:F2} tok/s ({dt * 1e3:F1} ms/token, {layerBytes / dt / 1e9:F1} GB/s of weights, {allocated} bytes allocated); fastest token {fastest * 1e3:F1} ms = {1 / fastest:F2} tok/s, {layerBytes / fastest / 1e9:F1} GB/s");
    }

    /// <summary>Best of 5 vectorized sums over 512 MiB split across the pool: what the memory system gives right now.</summary>
    private static double StreamBandwidth(WorkerPool pool)
    {
        var data = new float[128 << 20];
        data.AsSpan().Fill(1);
        double best = 0;
        for (int rep = 0; rep < 5; rep++)
        {
            long t0 = Stopwatch.GetTimestamp();
            pool.For(data.Length, (s, e) => System.Numerics.Tensors.TensorPrimitives.Sum(data.AsSpan(s, e - s)));
            best = Math.Max(best, data.Length * 4.0 / Stopwatch.GetElapsedTime(t0).TotalSeconds / 1e9);
        }
        return best;
    }

    private static void Write(string path, GgmlType type)
    {
        var sw = Stopwatch.StartNew();
        int hd = Dim / Heads, kvDim = KvHeads * hd;
        var w = new GgufWriter()
            .Set("general.architecture", "qwen2")
            .Set("qwen2.embedding_length", (uint)Dim)
            .Set("qwen2.block_count", (uint)Layers)
            .Set("qwen2.attention.head_count", (uint)Heads)
            .Set("qwen2.attention.head_count_kv", (uint)KvHeads)
            .Set("qwen2.feed_forward_length", (uint)Ffn)
            .Set("qwen2.context_length", 32768u)
            .Set("qwen2.rope.freq_base", 1000000f)
            .Set("qwen2.attention.layer_norm_rms_epsilon", 1e-6f);
        // Q4_K_M keeps the output matrix in Q6_K; the Q8_0 variant uses Q8_0 throughout.
        GgmlType outType = type == GgmlType.Q4_K ? GgmlType.Q6_K : type;
        var q = Random(type, Dim, Dim, 1);
        var k = Random(type, Dim, kvDim, 2);
        var v = Random(type, Dim, kvDim, 3);
        var o = Random(type, Dim, Dim, 4);
        var gate = Random(type, Dim, Ffn, 5);
        var up = Random(type, Dim, Ffn, 6);
        var down = Random(type, Ffn, Dim, 7);
        // embeddings: 4096 random rows repeated (only looked up, one row per token)
        AddRepeated(w, "token_embd.weight", type, Random(type, Dim, 4096, 8), Dim, Vocab);
        AddRepeated(w, "output.weight", outType, Random(outType, Dim, 4096, 9), Dim, Vocab);
        var ones = Enumerable.Repeat(1f, Dim).ToArray();
        w.AddTensor("output_norm.weight", ones, Dim);
        for (int l = 0; l < Layers; l++)
        {
            string p = $"blk.{l}.";
            w.AddTensor(p + "attn_norm.weight", ones, Dim);
            w.AddTensor(p + "ffn_norm.weight", ones, Dim);
            w.AddTensor(p + "attn_q.weight", type, [Dim, Dim], q);
            w.AddTensor(p + "attn_k.weight", type, [Dim, kvDim], k);
            w.AddTensor(p + "attn_v.weight", type, [Dim, kvDim], v);
            w.AddTensor(p + "attn_q.bias", new float[Dim], Dim);
            w.AddTensor(p + "attn_k.bias", new float[kvDim], kvDim);
            w.AddTensor(p + "attn_v.bias", new float[kvDim], kvDim);
            w.AddTensor(p + "attn_output.weight", type, [Dim, Dim], o);
            w.AddTensor(p + "ffn_gate.weight", type, [Dim, Ffn], gate);
            w.AddTensor(p + "ffn_up.weight", type, [Dim, Ffn], up);
            w.AddTensor(p + "ffn_down.weight", type, [Ffn, Dim], down);
        }
        w.Write(path);
        Console.WriteLine($"wrote {path} ({new FileInfo(path).Length / 1e9:F2} GB) in {sw.Elapsed.TotalSeconds:F0} s");
    }

    private static void AddRepeated(GgufWriter w, string name, GgmlType type, byte[] block, int cols, int rows)
    {
        long size = GgmlTypeInfo.RowBytes(type, cols) * rows;
        w.AddTensor(name, type, [cols, rows], s =>
        {
            for (long done = 0; done < size; done += block.Length)
                s.Write(block, 0, (int)Math.Min(block.Length, size - done));
        });
    }

    private static byte[] Random(GgmlType type, int cols, int rows, int seed)
    {
        int rb = (int)GgmlTypeInfo.RowBytes(type, cols);
        var bytes = new byte[(long)rb * rows];
        Parallel.For(0, rows, () => (new Random(seed * 1000003 + Environment.CurrentManagedThreadId), new float[cols]), (r, _, st) =>
        {
            var (rng, row) = st;
            for (int i = 0; i < cols; i++)
            {
                double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
                row[i] = (float)(0.02 * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
            }
            Quant.Row(type, row, bytes.AsSpan(r * rb, rb));
            return st;
        }, _ => { });
        return bytes;
    }
}

/// <summary>Single-threaded matrix × matrix throughput (compute-bound prefill kernel): rows × cols weights against `tokens` tokens.</summary>
internal static class MatMulBench
{
    public static void Run(string[] args)
    {
        int rows = int.Parse(args[0]), cols = int.Parse(args[1]), tokens = int.Parse(args[2]);
        foreach (var t in args[3..].Select(Enum.Parse<GgmlType>))
        {
            var rng = new Random(1);
            int rb = (int)GgmlTypeInfo.RowBytes(t, cols);
            var w = new byte[(long)rb * rows];
            var row = new float[cols];
            for (int r = 0; r < rows; r++)
            {
                for (int i = 0; i < cols; i++) row[i] = (float)(rng.NextDouble() * 2 - 1);
                Quant.Row(t, row, w.AsSpan(r * rb, rb));
            }
            var x = new float[tokens * cols];
            for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
            var act = new byte[MatMul.ActivationStride(t, cols) * tokens];
            MatMul.QuantizeActivations(t, x, cols, act, 0, tokens);
            var y = new float[tokens * rows];
            // MXFP4: the four-row kernels against the one-row ones, alternating in this process (a loaded machine
            // moves both alike); other types: the kernels as they are.
            bool[] variants = t is GgmlType.MXFP4 or GgmlType.F16 or GgmlType.BF16 ? [true, false] : [true];
            var bestOf = new double[variants.Length];
            Array.Fill(bestOf, double.MaxValue);
            for (int i = 0; i < 3; i++) MatMul.ComputeRows(t, w, cols, act, tokens, y, rows, 0, rows);
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed.TotalSeconds < 3 * variants.Length)
                for (int v = 0; v < variants.Length; v++)
                {
                    MatMul.Mxfp4FourRows = variants[v];
                    MatMul.HalfSixRows = variants[v];
                    long t0 = Stopwatch.GetTimestamp();
                    MatMul.ComputeRows(t, w, cols, act, tokens, y, rows, 0, rows);
                    bestOf[v] = Math.Min(bestOf[v], Stopwatch.GetElapsedTime(t0).TotalSeconds);
                }
            MatMul.Mxfp4FourRows = true;
            MatMul.HalfSixRows = true;
            double best = bestOf[0];
            if (variants.Length > 1)
                Console.WriteLine($"{t,-5} {(t == GgmlType.MXFP4 ? "one-row kernels" : "four-row blocks")}: best {bestOf[1] * 1e3:F2} ms, {2.0 * rows * cols * tokens / bestOf[1] / 1e9:F1} GOP/s; {(t == GgmlType.MXFP4 ? "four-row kernels" : "six-row blocks")} {bestOf[1] / best:F2}x faster");
            Console.WriteLine($"{t,-5} {rows}x{cols} x {tokens} tokens: best {best * 1e3:F2} ms, {2.0 * rows * cols * tokens / best / 1e9:F1} GOP/s (multiply-adds x2), {tokens / best * rows * cols / 1.3e9:F1} model-tok/s-equiv for 1.3G MACs");
        }
    }
}
