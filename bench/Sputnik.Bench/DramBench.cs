using System.Diagnostics;
using System.Numerics.Tensors;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;

/// <summary>
/// Single-token interleaved kernels with the weights in DRAM (many copies of one matrix, cycled, far beyond L3),
/// against a plain streaming sum over the same bytes, on 1 or 2 threads of the worker pool:
/// dotnet run -c Release --project bench/Sputnik.Bench -- dram [type] [threads] [rows] [cols] [copies] [file]
/// (SPUTNIK_PREFETCH=0 for the kernels without software prefetch; SPUTNIK_REPACK has no effect here: always interleaved;
/// TOKENS=N for the batched kernels, N tokens a product)
/// </summary>
internal static unsafe class DramBench
{
    public static void Run(string[] args)
    {
        var type = args.Length > 0 ? Enum.Parse<GgmlType>(args[0]) : GgmlType.Q4_K;
        int threads = args.Length > 1 ? int.Parse(args[1]) : 1;
        int rows = args.Length > 2 ? int.Parse(args[2]) : 8960, cols = args.Length > 3 ? int.Parse(args[3]) : 1536;
        int copies = args.Length > 4 ? int.Parse(args[4]) : 64;
        if (type == GgmlType.F16)
        {
            RunHalves(threads, rows, cols, copies);
            return;
        }
        // `file` measures the file-layout rows kernels (MXFP4 has no other): `dram Q4_K 1 1408 2048 64 file`.
        if (type is GgmlType.MXFP4 || (args.Length > 5 && args[5] == "file"))
        {
            RunRows(type, threads, rows, cols, copies);
            return;
        }
        var rng = new Random(1);
        var w = InterleaveBench.RandomRows(type, rows, cols, rng);
        int rb = (int)GgmlTypeInfo.RowBytes(type, cols);
        int groupBytes = 16 * rb, groups = rows / 16;
        var bufs = new byte[copies][];
        for (int c = 0; c < copies; c++)
        {
            bufs[c] = GC.AllocateUninitializedArray<byte>(w.Length, pinned: true);
            for (int g = 0; g < groups; g++) Interleaving.InterleaveGroup(type, w.AsSpan(g * 16 * rb), bufs[c].AsSpan(g * groupBytes), cols);
        }
        // TOKENS=N: N tokens per product (batched decode of N streams); the kernel then also runs over one copy
        // again and again (in cache), its compute-bound rate, so the DRAM rate reads as a share of both ceilings.
        int tokens = Environment.GetEnvironmentVariable("TOKENS") is { } tk ? int.Parse(tk) : 1;
        var x = new float[cols * tokens];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        int stride = MatMul.ActivationStride(type, cols);
        var act = GC.AllocateUninitializedArray<byte>(stride * tokens, pinned: true);
        MatMul.QuantizeActivations(type, x, cols, act, 0, tokens);
        var y = GC.AllocateUninitializedArray<float>(rows * tokens, pinned: true);
        using var pool = new WorkerPool(threads);
        double total = (double)w.Length * copies;
        double bestKernel = 0, bestStream = 0, bestCached = 0;
        void Pass(byte[] b) => pool.For(groups, (g0, g1) =>
        {
            fixed (byte* pw = b) fixed (byte* pa = act) fixed (float* py = y)
                Interleaving.Compute(type, pw, cols, pa, stride, tokens, py, rows, g0, g1);
        });
        for (int round = 0; round < 6; round++)
        {
            long t0 = Stopwatch.GetTimestamp();
            foreach (var b in bufs) Pass(b);
            double kernel = total / Stopwatch.GetElapsedTime(t0).TotalSeconds / 1e9;
            double stream = StreamRate(bufs, pool, 1);
            t0 = Stopwatch.GetTimestamp();
            for (int c = 0; c < copies; c++) Pass(bufs[0]);
            double cached = total / Stopwatch.GetElapsedTime(t0).TotalSeconds / 1e9;
            bestKernel = Math.Max(bestKernel, kernel);
            bestStream = Math.Max(bestStream, stream);
            bestCached = Math.Max(bestCached, cached);
            Console.WriteLine($"{type} {rows}x{cols} x{copies} ({total / 1e6:F0} MB), {tokens} token(s), {threads} threads: kernel {kernel:F1} GB/s, streaming sum {stream:F1} GB/s, ratio {kernel / stream:F2}; one copy in cache {cached:F1} GB/s");
        }
        Console.WriteLine($"best: kernel {bestKernel:F1} GB/s, streaming sum {bestStream:F1} GB/s, in cache {bestCached:F1} GB/s (prefetch {(Prefetch.Enabled ? "on" : "off")})");
    }

    /// <summary>
    /// The file-layout rows kernels (MXFP4 has no interleaved layout; `file` asks for the others): the rows kernel
    /// (MatVec.ComputeRows) against the single-row kernel called row by row, same bytes, same threads.
    /// </summary>
    private static void RunRows(GgmlType type, int threads, int rows, int cols, int copies)
    {
        var rng = new Random(1);
        var w = InterleaveBench.RandomRows(type, rows, cols, rng);
        int rb = (int)GgmlTypeInfo.RowBytes(type, cols);
        var bufs = new byte[copies][];
        for (int c = 0; c < copies; c++)
        {
            bufs[c] = GC.AllocateUninitializedArray<byte>(w.Length, pinned: true);
            w.CopyTo(bufs[c], 0);
        }
        var x = new float[cols];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var act = new byte[MatVec.ScratchBytes(type, cols)];
        MatVec.QuantizeActivation(type, x, act);
        var y = new float[rows];
        using var pool = new WorkerPool(threads);
        double total = (double)w.Length * copies;
        double bestRows = 0, bestSingle = 0;
        // Warm up both paths past tier 0 (ComputeRows' row-by-row loop is otherwise measured unoptimised).
        for (int rep = 0; rep < 2; rep++)
        {
            for (int i = 0; i < 200; i++)
            {
                MatVec.ComputeRows(type, bufs[0], cols, act, y, 0, Math.Min(rows, 64));
                MatVec.KFourRows = false;
                MatVec.ComputeRows(type, bufs[0], cols, act, y, 0, Math.Min(rows, 64));
                MatVec.KFourRows = true;
            }
            Thread.Sleep(300);
        }
        for (int round = 0; round < 6; round++)
        {
            long t0 = Stopwatch.GetTimestamp();
            foreach (var b in bufs) pool.For(rows, (r0, r1) => MatVec.ComputeRows(type, b, cols, act, y, r0, r1));
            double rowsKernel = total / Stopwatch.GetElapsedTime(t0).TotalSeconds / 1e9;
            t0 = Stopwatch.GetTimestamp();
            // Q4_K / Q6_K: the decode path as it was (row by row with prefetch), the four-row kernels switched off.
            MatVec.KFourRows = false;
            if (type is GgmlType.Q4_K or GgmlType.Q6_K) foreach (var b in bufs) pool.For(rows, (r0, r1) => MatVec.ComputeRows(type, b, cols, act, y, r0, r1));
            else foreach (var b in bufs) pool.For(rows, (r0, r1) => SingleRows(type, b, rb, cols, act, y, r0, r1));
            MatVec.KFourRows = true;
            double single = total / Stopwatch.GetElapsedTime(t0).TotalSeconds / 1e9;
            t0 = Stopwatch.GetTimestamp();
            foreach (var b in bufs) pool.For(rows, (r0, r1) => MatVec.ComputeRows(type, b, cols, act, y, r0, r1, KernelPath.Avx2));
            double avx2 = total / Stopwatch.GetElapsedTime(t0).TotalSeconds / 1e9;
            Console.WriteLine($"  256-bit (AVX2 path) rows: {avx2:F1} GB/s");
            bestRows = Math.Max(bestRows, rowsKernel);
            bestSingle = Math.Max(bestSingle, single);
            Console.WriteLine($"{type} {rows}x{cols} x{copies} ({total / 1e6:F0} MB), {threads} threads: rows kernel {rowsKernel:F1} GB/s, single-row kernel {single:F1} GB/s");
        }
        Console.WriteLine($"best: rows kernel {bestRows:F1} GB/s, single-row kernel {bestSingle:F1} GB/s (prefetch {(Prefetch.Enabled ? "on" : "off")})");
    }

    /// <summary>
    /// F16 rows as the file has them (HalfWeights' exact eight-step widening) against the same rows scaled at load
    /// (ScaledHalves: three steps), alternating, with the streaming sum over the same bytes; weights of standard
    /// deviation 0.02 (about one half in 400 subnormal). `dram F16 1 256 1536 1` stays in L2 (the kernels' own rate).
    /// </summary>
    private static void RunHalves(int threads, int rows, int cols, int copies)
    {
        var rng = new Random(1);
        int rb = cols * 2;
        var w = new byte[(long)rows * rb];
        var row = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            for (int i = 0; i < cols; i++) row[i] = (float)((rng.NextDouble() + rng.NextDouble() + rng.NextDouble() - 1.5) * 0.04);
            Quant.Row(GgmlType.F16, row, w.AsSpan(r * rb, rb));
        }
        var scaled = new byte[w.Length];
        if (!ScaledHalves.TryScale(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(w), System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(scaled.AsSpan())))
            throw new InvalidOperationException("the random rows should scale");
        byte[][] Copies(byte[] src) => Enumerable.Range(0, copies).Select(_ =>
        {
            var b = GC.AllocateUninitializedArray<byte>(src.Length, pinned: true);
            src.CopyTo(b, 0);
            return b;
        }).ToArray();
        var plainBufs = Copies(w);
        var scaledBufs = Copies(scaled);
        var x = new float[cols];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var act = GC.AllocateUninitializedArray<byte>(MatVec.ScratchBytes(GgmlType.F16, cols), pinned: true);
        MatVec.QuantizeActivation(GgmlType.F16, x, act);
        var y = GC.AllocateUninitializedArray<float>(rows, pinned: true);
        using var pool = new WorkerPool(threads);
        double total = (double)w.Length * copies;
        int reps = Math.Max(1, (int)(2e9 / total));
        double bestPlain = 0, bestScaled = 0, bestStream = 0;
        for (int round = 0; round < 6; round++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int rep = 0; rep < reps; rep++)
                foreach (var b in plainBufs) pool.For(rows, (r0, r1) => MatVec.ComputeRows(GgmlType.F16, b, cols, act, y, r0, r1));
            double plain = reps * total / Stopwatch.GetElapsedTime(t0).TotalSeconds / 1e9;
            t0 = Stopwatch.GetTimestamp();
            for (int rep = 0; rep < reps; rep++)
                foreach (var b in scaledBufs)
                    pool.For(rows, (r0, r1) =>
                    {
                        fixed (byte* pw = b) fixed (byte* pa = act) fixed (float* py = y)
                            HalfWeights.ScaledRows(pw, cols, (float*)pa, py, r0, r1, MatVec.DefaultPath);
                    });
            double scaledRate = reps * total / Stopwatch.GetElapsedTime(t0).TotalSeconds / 1e9;
            double stream = StreamRate(plainBufs, pool, reps);
            (bestPlain, bestScaled, bestStream) = (Math.Max(bestPlain, plain), Math.Max(bestScaled, scaledRate), Math.Max(bestStream, stream));
            Console.WriteLine($"F16 {rows}x{cols} x{copies} ({total / 1e6:F0} MB), {threads} threads: file halves {plain:F1} GB/s, scaled halves {scaledRate:F1} GB/s, streaming sum {stream:F1} GB/s");
        }
        Console.WriteLine($"best: file halves {bestPlain:F1} GB/s, scaled halves {bestScaled:F1} GB/s, streaming sum {bestStream:F1} GB/s");
    }

    /// <summary>GB/s of a plain vector sum over the buffers (<paramref name="reps"/> passes), the bound the kernels are measured against.</summary>
    private static double StreamRate(byte[][] bufs, WorkerPool pool, int reps)
    {
        long t0 = Stopwatch.GetTimestamp();
        float sink = 0;
        for (int rep = 0; rep < reps; rep++)
            foreach (var b in bufs)
                pool.For(b.Length / 4, (s, e) =>
                {
                    fixed (byte* pb = b) sink += TensorPrimitives.Sum(new ReadOnlySpan<float>((float*)pb + s, e - s));
                });
        double rate = (double)reps * bufs.Sum(b => (long)b.Length) / Stopwatch.GetElapsedTime(t0).TotalSeconds / 1e9;
        GC.KeepAlive(sink); // the sums must not be optimised away
        return rate;
    }

    // Compiled optimised at once: the benchmark's few calls would otherwise leave the per-row loop at tier 0.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void SingleRows(GgmlType type, byte[] w, int rb, int cols, byte[] act, float[] y, int r0, int r1)
    {
        for (int r = r0; r < r1; r++) y[r] = MatVec.Dot(type, w.AsSpan(r * rb, rb), act, cols);
    }
}
