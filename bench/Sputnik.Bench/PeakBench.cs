using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;

/// <summary>
/// The machine's arithmetic ceilings, the bounds that compute-bound targets are read against:
/// float32 fused multiply-adds (what an exact F16/BF16 weight kernel ends in, since .NET 10 has neither F16C nor
/// AVX512-BF16) and int8 products (what the quantized prefill kernels end in: vpdpbusd where AVX-VNNI exists, else
/// vpmaddubsw + vpmaddwd), with 1 and 2 threads, registers only (no memory traffic); then the batched Q4_K kernel's
/// inner loop in both instruction sets (weights in L1) and the kernel itself on a matrix in L2:
/// dotnet run -c Release --project bench/Sputnik.Bench -- peak [seconds]
/// </summary>
internal static class PeakBench
{
    private const int Chains = 12; // independent accumulators: more than FMA latency × ports, so throughput-bound

    public static void Run(string[] args)
    {
        double seconds = args.Length > 0 ? double.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 2;
        Console.WriteLine($"Avx512F={Avx512F.IsSupported} Avx512BW={Avx512BW.IsSupported} AvxVnni={AvxVnni.IsSupported} Fma={Fma.IsSupported}");
        foreach (int threads in new[] { 1, 2 })
        {
            if (Avx512F.IsSupported)
                Report($"f32 FMA, 512-bit, {threads} thread(s)", "GFLOP/s", threads, seconds, Fma512);
            if (Fma.IsSupported)
                Report($"f32 FMA, 256-bit, {threads} thread(s)", "GFLOP/s", threads, seconds, Fma256);
            if (Avx512BW.IsSupported)
                Report($"int8 vpmaddubsw+vpmaddwd, 512-bit, {threads} thread(s)", "GOP/s", threads, seconds, MaddUbs512);
            if (Avx2.IsSupported)
                Report($"int8 vpmaddubsw+vpmaddwd, 256-bit, {threads} thread(s)", "GOP/s", threads, seconds, MaddUbs256);
            if (AvxVnni.IsSupported)
                Report($"int8 vpdpbusd (AVX-VNNI), 256-bit, {threads} thread(s)", "GOP/s", threads, seconds, Vnni256);
            if (Avx512BW.IsSupported)
                Report($"Q4_K slot x4 tokens, vpmaddubsw 512-bit, {threads} thread(s)", "GOP/s", threads, seconds, SlotMaddUbs512);
            if (AvxVnni.IsSupported)
                Report($"Q4_K slot x4 tokens, vpdpbusd 256-bit, {threads} thread(s)", "GOP/s", threads, seconds, SlotVnni256);
            if (Avx2.IsSupported)
                Report($"Q4_K slot x4 tokens, vpmaddubsw 256-bit, {threads} thread(s)", "GOP/s", threads, seconds, SlotMaddUbs256);
            if (Interleaving.Supports(GgmlType.Q4_K, 16, 1536))
                Report($"Q4_K interleaved kernel, 8 tokens, 256x1536 in L2, {threads} thread(s)", "GOP/s", threads, seconds, KernelInL2);
        }
    }

    /// <summary>Runs <paramref name="kernel"/> (which returns the operations it did) on each thread, best of three rounds.</summary>
    private static void Report(string what, string unit, int threads, double seconds, Func<long, (long Ops, float Sink)> kernel)
    {
        kernel(1_000); // JIT to the final tier before timing
        double best = 0;
        for (int round = 0; round < 3; round++)
        {
            long iterations = 4_000_000;
            long ops = 0;
            var sw = Stopwatch.StartNew();
            var workers = Enumerable.Range(0, threads).Select(_ => new Thread(() =>
            {
                long done = 0;
                var end = Stopwatch.GetTimestamp() + (long)(seconds / 3 * Stopwatch.Frequency);
                while (Stopwatch.GetTimestamp() < end) done += kernel(iterations).Ops;
                Interlocked.Add(ref ops, done);
            })).ToList();
            workers.ForEach(t => t.Start());
            workers.ForEach(t => t.Join());
            best = Math.Max(best, ops / sw.Elapsed.TotalSeconds / 1e9);
        }
        Console.WriteLine($"{what,-52} {best,8:F1} {unit}");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static (long, float) Fma512(long n)
    {
        Span<Vector512<float>> acc = stackalloc Vector512<float>[Chains];
        for (int c = 0; c < Chains; c++) acc[c] = Vector512.Create(c * 1e-3f);
        var a = Vector512.Create(0.999f);
        var b = Vector512.Create(1e-4f);
        Vector512<float> a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], a4 = acc[4], a5 = acc[5];
        Vector512<float> a6 = acc[6], a7 = acc[7], a8 = acc[8], a9 = acc[9], a10 = acc[10], a11 = acc[11];
        for (long i = 0; i < n; i++)
        {
            a0 = Avx512F.FusedMultiplyAdd(a0, a, b); a1 = Avx512F.FusedMultiplyAdd(a1, a, b);
            a2 = Avx512F.FusedMultiplyAdd(a2, a, b); a3 = Avx512F.FusedMultiplyAdd(a3, a, b);
            a4 = Avx512F.FusedMultiplyAdd(a4, a, b); a5 = Avx512F.FusedMultiplyAdd(a5, a, b);
            a6 = Avx512F.FusedMultiplyAdd(a6, a, b); a7 = Avx512F.FusedMultiplyAdd(a7, a, b);
            a8 = Avx512F.FusedMultiplyAdd(a8, a, b); a9 = Avx512F.FusedMultiplyAdd(a9, a, b);
            a10 = Avx512F.FusedMultiplyAdd(a10, a, b); a11 = Avx512F.FusedMultiplyAdd(a11, a, b);
        }
        var sum = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
        return (n * Chains * 16 * 2, Vector512.Sum(sum));
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static (long, float) Fma256(long n)
    {
        var a = Vector256.Create(0.999f);
        var b = Vector256.Create(1e-4f);
        Vector256<float> a0 = b, a1 = b, a2 = b, a3 = b, a4 = b, a5 = b, a6 = b, a7 = b, a8 = b, a9 = b, a10 = b, a11 = b;
        for (long i = 0; i < n; i++)
        {
            a0 = Fma.MultiplyAdd(a0, a, b); a1 = Fma.MultiplyAdd(a1, a, b); a2 = Fma.MultiplyAdd(a2, a, b);
            a3 = Fma.MultiplyAdd(a3, a, b); a4 = Fma.MultiplyAdd(a4, a, b); a5 = Fma.MultiplyAdd(a5, a, b);
            a6 = Fma.MultiplyAdd(a6, a, b); a7 = Fma.MultiplyAdd(a7, a, b); a8 = Fma.MultiplyAdd(a8, a, b);
            a9 = Fma.MultiplyAdd(a9, a, b); a10 = Fma.MultiplyAdd(a10, a, b); a11 = Fma.MultiplyAdd(a11, a, b);
        }
        var sum = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
        return (n * Chains * 8 * 2, Vector256.Sum(sum));
    }

    /// <summary>One int8 product counts as one operation (64 per 512-bit pair of instructions).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static (long, float) MaddUbs512(long n)
    {
        // Six different unsigned operands and one signed operand that changes every iteration (one vpaddb), so the
        // JIT cannot hoist the invariant products out of the loop; the adds into the accumulators are part of every
        // real kernel too.
        Vector512<byte> u0 = Vector512.Create((byte)3), u1 = Vector512.Create((byte)5), u2 = Vector512.Create((byte)7);
        Vector512<byte> u3 = Vector512.Create((byte)9), u4 = Vector512.Create((byte)11), u5 = Vector512.Create((byte)13);
        var s = Vector512.Create((sbyte)-2);
        var step = Vector512.Create((sbyte)1);
        var one = Vector512<short>.One;
        Vector512<int> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default;
        for (long i = 0; i < n; i++)
        {
            a0 += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(u0, s), one);
            a1 += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(u1, s), one);
            a2 += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(u2, s), one);
            a3 += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(u3, s), one);
            a4 += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(u4, s), one);
            a5 += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(u5, s), one);
            s += step;
        }
        return (n * 6 * 64, Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5));
    }

    /// <summary>The 256-bit <see cref="MaddUbs512"/> (AVX2: 32 products per pair of instructions).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static (long, float) MaddUbs256(long n)
    {
        Vector256<byte> u0 = Vector256.Create((byte)3), u1 = Vector256.Create((byte)5), u2 = Vector256.Create((byte)7);
        Vector256<byte> u3 = Vector256.Create((byte)9), u4 = Vector256.Create((byte)11), u5 = Vector256.Create((byte)13);
        var s = Vector256.Create((sbyte)-2);
        var step = Vector256.Create((sbyte)1);
        var one = Vector256<short>.One;
        Vector256<int> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default;
        for (long i = 0; i < n; i++)
        {
            a0 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, s), one);
            a1 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, s), one);
            a2 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u2, s), one);
            a3 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u3, s), one);
            a4 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u4, s), one);
            a5 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u5, s), one);
            s += step;
        }
        return (n * 6 * 32, Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5));
    }

    /// <summary>The 256-bit slot loop of the AVX2 kernel: one half (8 rows × 4 bytes), four tokens.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static unsafe (long, float) SlotMaddUbs256(long n)
    {
        fixed (byte* p = s_slotBytes)
        {
            var m4 = Vector256.Create((byte)0x0F);
            Vector256<short> p0 = default, q0 = default, p1 = default, q1 = default, p2 = default, q2 = default, p3 = default, q3 = default;
            for (long i = 0; i < n; i++)
            {
                byte* w = p + (i & 31) * 64, x = p + 2048 + (i & 7) * 4;
                var v = Vector256.Load(w);
                var lo = v & m4;
                var hi = (v.AsUInt16() >> 4).AsByte() & m4;
                p0 += Avx2.MultiplyAddAdjacent(lo, Vector256.Create(*(int*)x).AsSByte());
                q0 += Avx2.MultiplyAddAdjacent(hi, Vector256.Create(*(int*)(x + 32)).AsSByte());
                p1 += Avx2.MultiplyAddAdjacent(lo, Vector256.Create(*(int*)(x + 256)).AsSByte());
                q1 += Avx2.MultiplyAddAdjacent(hi, Vector256.Create(*(int*)(x + 288)).AsSByte());
                p2 += Avx2.MultiplyAddAdjacent(lo, Vector256.Create(*(int*)(x + 512)).AsSByte());
                q2 += Avx2.MultiplyAddAdjacent(hi, Vector256.Create(*(int*)(x + 544)).AsSByte());
                p3 += Avx2.MultiplyAddAdjacent(lo, Vector256.Create(*(int*)(x + 768)).AsSByte());
                q3 += Avx2.MultiplyAddAdjacent(hi, Vector256.Create(*(int*)(x + 800)).AsSByte());
            }
            return (n * 256, (float)Vector256.Sum(p0 + q0 + p1 + q1 + p2 + q2 + p3 + q3));
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static (long, float) Vnni256(long n)
    {
        var u = Vector256.Create((byte)3);
        var s = Vector256.Create((sbyte)-2);
        Vector256<int> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default;
        Vector256<int> a6 = default, a7 = default, a8 = default, a9 = default, a10 = default, a11 = default;
        for (long i = 0; i < n; i++)
        {
            a0 = AvxVnni.MultiplyWideningAndAdd(a0, u, s); a1 = AvxVnni.MultiplyWideningAndAdd(a1, u, s);
            a2 = AvxVnni.MultiplyWideningAndAdd(a2, u, s); a3 = AvxVnni.MultiplyWideningAndAdd(a3, u, s);
            a4 = AvxVnni.MultiplyWideningAndAdd(a4, u, s); a5 = AvxVnni.MultiplyWideningAndAdd(a5, u, s);
            a6 = AvxVnni.MultiplyWideningAndAdd(a6, u, s); a7 = AvxVnni.MultiplyWideningAndAdd(a7, u, s);
            a8 = AvxVnni.MultiplyWideningAndAdd(a8, u, s); a9 = AvxVnni.MultiplyWideningAndAdd(a9, u, s);
            a10 = AvxVnni.MultiplyWideningAndAdd(a10, u, s); a11 = AvxVnni.MultiplyWideningAndAdd(a11, u, s);
        }
        var sum = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
        return (n * Chains * 32, Vector256.Sum(sum));
    }

    // Slot-shaped loops (the inner loop of the batched Q4_K kernel, weights and activations in L1): one 64-byte load
    // of 16 rows × 4 bytes, nibbles split, four tokens' activations broadcast, products summed per token.
    private static readonly byte[] s_slotBytes = Enumerable.Range(0, 4096).Select(i => (byte)(i * 37)).ToArray();

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static unsafe (long, float) SlotMaddUbs512(long n)
    {
        fixed (byte* p = s_slotBytes)
        {
            var m4 = Vector512.Create((byte)0x0F);
            Vector512<short> p0 = default, q0 = default, p1 = default, q1 = default, p2 = default, q2 = default, p3 = default, q3 = default;
            for (long i = 0; i < n; i++)
            {
                byte* w = p + (i & 31) * 64, x = p + 2048 + (i & 7) * 4;
                var v = Vector512.Load(w);
                var lo = v & m4;
                var hi = (v.AsUInt16() >> 4).AsByte() & m4;
                p0 += Avx512BW.MultiplyAddAdjacent(lo, Vector512.Create(*(int*)x).AsSByte());
                q0 += Avx512BW.MultiplyAddAdjacent(hi, Vector512.Create(*(int*)(x + 32)).AsSByte());
                p1 += Avx512BW.MultiplyAddAdjacent(lo, Vector512.Create(*(int*)(x + 256)).AsSByte());
                q1 += Avx512BW.MultiplyAddAdjacent(hi, Vector512.Create(*(int*)(x + 288)).AsSByte());
                p2 += Avx512BW.MultiplyAddAdjacent(lo, Vector512.Create(*(int*)(x + 512)).AsSByte());
                q2 += Avx512BW.MultiplyAddAdjacent(hi, Vector512.Create(*(int*)(x + 544)).AsSByte());
                p3 += Avx512BW.MultiplyAddAdjacent(lo, Vector512.Create(*(int*)(x + 768)).AsSByte());
                q3 += Avx512BW.MultiplyAddAdjacent(hi, Vector512.Create(*(int*)(x + 800)).AsSByte());
            }
            return (n * 512, (float)Vector512.Sum(p0 + q0 + p1 + q1 + p2 + q2 + p3 + q3));
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static unsafe (long, float) SlotVnni256(long n)
    {
        fixed (byte* p = s_slotBytes)
        {
            var m4 = Vector256.Create((byte)0x0F);
            Vector256<int> l0 = default, h0 = default, l1 = default, h1 = default, l2 = default, h2 = default, l3 = default, h3 = default;
            Vector256<int> l0u = default, h0u = default, l1u = default, h1u = default, l2u = default, h2u = default, l3u = default, h3u = default;
            for (long i = 0; i < n; i++)
            {
                byte* w = p + (i & 31) * 64, x = p + 2048 + (i & 7) * 4;
                var v = Vector256.Load(w);
                var u = Vector256.Load(w + 32);
                var lo = v & m4;
                var hi = (v.AsUInt16() >> 4).AsByte() & m4;
                var lou = u & m4;
                var hiu = (u.AsUInt16() >> 4).AsByte() & m4;
                var b = Vector256.Create(*(int*)x).AsSByte();
                l0 = AvxVnni.MultiplyWideningAndAdd(l0, lo, b); l0u = AvxVnni.MultiplyWideningAndAdd(l0u, lou, b);
                b = Vector256.Create(*(int*)(x + 32)).AsSByte();
                h0 = AvxVnni.MultiplyWideningAndAdd(h0, hi, b); h0u = AvxVnni.MultiplyWideningAndAdd(h0u, hiu, b);
                b = Vector256.Create(*(int*)(x + 256)).AsSByte();
                l1 = AvxVnni.MultiplyWideningAndAdd(l1, lo, b); l1u = AvxVnni.MultiplyWideningAndAdd(l1u, lou, b);
                b = Vector256.Create(*(int*)(x + 288)).AsSByte();
                h1 = AvxVnni.MultiplyWideningAndAdd(h1, hi, b); h1u = AvxVnni.MultiplyWideningAndAdd(h1u, hiu, b);
                b = Vector256.Create(*(int*)(x + 512)).AsSByte();
                l2 = AvxVnni.MultiplyWideningAndAdd(l2, lo, b); l2u = AvxVnni.MultiplyWideningAndAdd(l2u, lou, b);
                b = Vector256.Create(*(int*)(x + 544)).AsSByte();
                h2 = AvxVnni.MultiplyWideningAndAdd(h2, hi, b); h2u = AvxVnni.MultiplyWideningAndAdd(h2u, hiu, b);
                b = Vector256.Create(*(int*)(x + 768)).AsSByte();
                l3 = AvxVnni.MultiplyWideningAndAdd(l3, lo, b); l3u = AvxVnni.MultiplyWideningAndAdd(l3u, lou, b);
                b = Vector256.Create(*(int*)(x + 800)).AsSByte();
                h3 = AvxVnni.MultiplyWideningAndAdd(h3, hi, b); h3u = AvxVnni.MultiplyWideningAndAdd(h3u, hiu, b);
            }
            var sum = l0 + h0 + l1 + h1 + l2 + h2 + l3 + h3 + l0u + h0u + l1u + h1u + l2u + h2u + l3u + h3u;
            return (n * 512, Vector256.Sum(sum));
        }
    }

    /// <summary>The batched Q4_K kernel itself, each thread on its own 256×1536 matrix (221 KB, in L2) and 8 tokens.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static unsafe (long, float) KernelInL2(long n)
    {
        const int Rows = 256, Cols = 1536, Tokens = 8;
        t_kernel ??= MakeKernelProblem(Rows, Cols, Tokens);
        var (w, act, stride, y) = t_kernel.Value;
        long reps = Math.Max(1, n / 2000);
        fixed (byte* pw = w) fixed (byte* pa = act) fixed (float* py = y)
            for (long i = 0; i < reps; i++)
                Interleaving.Compute(GgmlType.Q4_K, pw, Cols, pa, stride, Tokens, py, Rows, 0, Rows / 16);
        return (reps * Rows * Cols * Tokens, y[0]);
    }

    [ThreadStatic] private static (byte[] W, byte[] Act, int Stride, float[] Y)? t_kernel;

    private static (byte[], byte[], int, float[]) MakeKernelProblem(int rows, int cols, int tokens)
    {
        var rng = new Random(Environment.CurrentManagedThreadId);
        var w = InterleaveBench.RandomRows(GgmlType.Q4_K, rows, cols, rng);
        int rb = (int)GgmlTypeInfo.RowBytes(GgmlType.Q4_K, cols);
        var wx = new byte[w.Length];
        for (int g = 0; g < rows / 16; g++) Interleaving.InterleaveGroup(GgmlType.Q4_K, w.AsSpan(g * 16 * rb), wx.AsSpan(g * 16 * rb), cols);
        var x = new float[tokens * cols];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        int stride = MatMul.ActivationStride(GgmlType.Q4_K, cols);
        var act = new byte[stride * tokens];
        MatMul.QuantizeActivations(GgmlType.Q4_K, x, cols, act, 0, tokens);
        return (wx, act, stride, new float[tokens * rows]);
    }
}
