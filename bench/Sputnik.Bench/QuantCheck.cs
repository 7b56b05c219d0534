using System.Runtime.InteropServices;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;

/// <summary>
/// Sputnik's side of bench/check-quant-kernels.sh: do Sputnik's quantized matrix products do llama.cpp's integer
/// arithmetic? `write IN.bin` writes, for every weight type Sputnik multiplies, random weight rows (quantized by
/// Sputnik's quantizer) and a set of activation rows chosen to hit the quantizers' edge cases (exact .5 ties, a
/// negative largest magnitude, ± the same largest magnitude in one block, all-zero blocks, values one float step
/// either side of a rounding boundary, denormals, F16/BF16 halfway values); bench/llamacpp-quant-check.cpp converts
/// them with ggml-cpu's own from_float for the weight type's vec_dot_type and takes ggml-cpu's vec_dot.
/// `compare IN.bin GGML.bin` then converts the same rows with Sputnik's activation quantizer, takes Sputnik's dot
/// products on every kernel path this CPU runs (scalar reference, AVX2, AVX-512, the batched prefill kernel, the
/// 16-row interleaved kernels the model uses for Q4_K/Q6_K/Q8_0 on AVX-512, four tokens and one token per call) and
/// prints, per weight type, whether the converted activations are byte-identical and how far the dot products
/// are from ggml's, relative to the RMS of ggml's results for that activation (float summation order alone gives
/// 1e-7 to 1e-6 there; one 8-bit or F16 rounding step of an activation gives ~1e-3). Exit status 1 when any activation differs.
/// </summary>
internal static unsafe class QuantCheck
{
    private const int Rows = 16; // one 16-row group of the interleaved kernels
    // Row length: 512 by default (two Q8_K blocks); QUANT_CHECK_K=256 or 768 tries an odd number of blocks.
    private static readonly int K = int.TryParse(Environment.GetEnvironmentVariable("QUANT_CHECK_K"), out int k) && k > 0 && k % 256 == 0 ? k : 512;

    private static readonly GgmlType[] Types =
    [
        GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.MXFP4,
        GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.F16, GgmlType.BF16,
    ];

    public static void Run(string[] args)
    {
        if (args.Length == 2 && args[0] == "write") Write(args[1]);
        else if (args.Length == 3 && args[0] == "compare") Environment.Exit(Compare(args[1], args[2]));
        else throw new ArgumentException("usage: quant-check write IN.bin | quant-check compare IN.bin GGML.bin");
    }

    /// <summary>The activation rows: each is K values, its 32- and 256-value blocks built to hit one edge case.</summary>
    private static List<float[]> Activations()
    {
        var rng = new Random(7);
        float Gauss() => (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
        var rows = new List<float[]>();
        float[] Row(Func<int, float> f) { var r = new float[K]; for (int i = 0; i < K; i++) r[i] = f(i); rows.Add(r); return r; }
        for (int n = 0; n < 4; n++) Row(_ => Gauss());
        // Exact ties: largest magnitude 127 in every block, so 127/amax = 1 (Q8_0, Q8_1) and -127/max = -1 (Q8_K):
        // every n + 0.5 lands exactly halfway, where round-half-to-even and round-half-away part.
        Row(i => i % 32 == 0 ? 127f : (i % 7 - 3) + 0.5f);
        Row(i => i % 32 == 5 ? -127f : (i % 11 - 5) + 0.5f);
        // The largest magnitude negative only, then both signs with the negative one first, then the positive first.
        Row(i => i % 32 == 3 ? -4f : Gauss());
        Row(i => i % 32 == 1 ? -4f : i % 32 == 9 ? 4f : Gauss());
        Row(i => i % 256 == 2 ? 4f : i % 256 == 200 ? -4f : Gauss());
        // All-zero blocks (the first 256 values), then a block of one nonzero value.
        Row(i => i < 256 ? 0f : i == 300 ? 1.5f : 0f);
        // One float step either side of a rounding boundary of the scaled value (amax 127 again).
        Row(i => i % 32 == 0 ? 127f : MathF.BitIncrement((i % 9 - 4) + 0.5f));
        Row(i => i % 32 == 0 ? 127f : MathF.BitDecrement((i % 9 - 4) + 0.5f));
        // Denormals and tiny values next to ordinary ones; a block of only denormals.
        Row(i => i < 32 ? 1e-40f * (i + 1) : i % 5 == 0 ? 1e-39f : Gauss() * 1e-3f);
        // A whole 256-value block of denormals and zeros: 127/amax overflows to infinity for Q8_0 and Q8_K alike.
        Row(i => i >= 256 ? Gauss() : i % 9 == 0 ? 0f : (i % 2 == 0 ? 1 : -1) * 1e-40f * (i % 13 + 1));
        // F16 / BF16 halfway values: 1 + 2^-11 lies between two F16 values, 1 + 2^-8 between two BF16 values.
        Row(i => (i % 2 == 0 ? 1 : -1) * (1 + (i % 4 < 2 ? 1f / 2048 : 1f / 256)) * (1 << (i % 6)));
        // Values past F16's range and under its smallest normal (F16 rounds them to infinity / denormals).
        Row(i => i % 64 == 0 ? 70000f : i % 3 == 0 ? 3e-6f * Gauss() : Gauss());
        return rows;
    }

    private static void Write(string path)
    {
        var rng = new Random(11);
        var acts = Activations();
        using var f = new BinaryWriter(File.Create(path));
        f.Write(Types.Length);
        var row = new float[K];
        foreach (var t in Types)
        {
            f.Write((int)t); f.Write(K); f.Write(Rows); f.Write(acts.Count);
            var w = new byte[GgmlTypeInfo.RowBytes(t, K)];
            for (int r = 0; r < Rows; r++)
            {
                for (int i = 0; i < K; i++) row[i] = (float)((rng.NextDouble() * 2 - 1) * (1 + r));
                Quant.Row(t, row, w);
                f.Write(w);
            }
            foreach (var a in acts) f.Write(MemoryMarshal.AsBytes(a.AsSpan()));
        }
    }

    private static int Compare(string inPath, string ggmlPath)
    {
        using var inp = new BinaryReader(File.OpenRead(inPath));
        using var gg = new BinaryReader(File.OpenRead(ggmlPath));
        int cases = inp.ReadInt32();
        var paths = new List<KernelPath> { KernelPath.Scalar };
        if (MatVec.DefaultPath >= KernelPath.Avx2) paths.Add(KernelPath.Avx2);
        if (MatVec.DefaultPath == KernelPath.Avx512) paths.Add(KernelPath.Avx512);
        Console.WriteLine($"| weight type | llama.cpp's activation type | activation rows byte-identical | max \\|Δdot\\| / RMS of ggml's dots: {string.Join(" / ", paths)} / batched / interleaved / interleaved one token |");
        Console.WriteLine("| --- | --- | ---: | --- |");
        int bad = 0;
        for (int c = 0; c < cases; c++)
        {
            var t = (GgmlType)inp.ReadInt32();
            int k = inp.ReadInt32(), rows = inp.ReadInt32(), nActs = inp.ReadInt32();
            int rb = (int)GgmlTypeInfo.RowBytes(t, k);
            byte[] w = inp.ReadBytes(rb * rows);
            var x = new float[nActs][];
            for (int j = 0; j < nActs; j++) x[j] = MemoryMarshal.Cast<byte, float>(inp.ReadBytes(4 * k)).ToArray();
            var at = (GgmlType)gg.ReadInt32();
            var ggAct = new byte[nActs][];
            for (int j = 0; j < nActs; j++) ggAct[j] = gg.ReadBytes(gg.ReadInt32());
            float[] ggDots = MemoryMarshal.Cast<byte, float>(gg.ReadBytes(4 * rows * nActs)).ToArray();

            int stride = MatVec.ScratchBytes(t, k);
            var act = new byte[stride * nActs];
            int same = 0;
            var firstDiff = "";
            for (int j = 0; j < nActs; j++)
            {
                var mine = act.AsSpan(j * stride, stride);
                MatVec.QuantizeActivation(t, x[j], mine);
                string? d = ActivationDiff(at, k, mine, ggAct[j]);
                if (d == null) same++;
                else if (firstDiff.Length == 0) firstDiff = $" (row {j}: {d})";
            }
            if (same < nActs) bad++;
            var wf = new float[k];
            var worst = new double[paths.Count + 3];
            int nonFinite = 0;
            var batched = new float[nActs * rows];
            MatMul.ComputeRows(t, w, k, act, nActs, batched, rows, 0, rows);
            // The interleaved kernels: all tokens at once (four at a time, as prefill) and one token per call (decode).
            float[]? inter = null, inter1 = null;
            if (Interleaving.Supports(t, rows, k))
            {
                var group = new byte[w.Length];
                Interleaving.InterleaveGroup(t, w, group, k);
                inter = new float[nActs * rows];
                inter1 = new float[nActs * rows];
                fixed (byte* gp = group)
                fixed (byte* ap = act)
                fixed (float* yp = inter)
                fixed (float* y1 = inter1)
                {
                    Interleaving.Compute(t, gp, k, ap, stride, nActs, yp, rows, 0, 1);
                    for (int j = 0; j < nActs; j++) Interleaving.Compute(t, gp, k, ap + j * stride, stride, 1, y1 + j * rows, rows, 0, 1);
                }
            }
            else worst[^1] = worst[^2] = double.NaN;
            for (int r = 0; r < rows; r++)
            {
                Dequant.Row(t, w.AsSpan(r * rb, rb), wf);
                for (int j = 0; j < nActs; j++)
                {
                    // The scale of this activation's results: their RMS over the rows (what a relative error of the
                    // next layer's input is measured against; Σ|w·x| can be far larger when the terms cancel).
                    double mag = 0;
                    for (int rr = 0; rr < rows; rr++) mag += (double)ggDots[rr * nActs + j] * ggDots[rr * nActs + j];
                    mag = Math.Sqrt(mag / rows);
                    if (mag == 0 || !double.IsFinite(mag)) mag = 1;
                    float g = ggDots[r * nActs + j];
                    var mine = paths.Select(p => MatVec.Dot(t, w.AsSpan(r * rb, rb), act.AsSpan(j * stride, stride), k, p)).ToList();
                    mine.Add(batched[j * rows + r]);
                    if (inter != null) { mine.Add(inter[j * rows + r]); mine.Add(inter1![j * rows + r]); }
                    for (int p = 0; p < mine.Count; p++)
                    {
                        // F16 overflow makes ggml's dot ±inf or NaN: then Sputnik's must be the same non-finite value.
                        if (!float.IsFinite(g) || !float.IsFinite(mine[p])) { if (!mine[p].Equals(g)) nonFinite++; continue; }
                        worst[p] = Math.Max(worst[p], Math.Abs(mine[p] - g) / mag);
                    }
                }
            }
            string dots = string.Join(" / ", worst.Select(v => double.IsNaN(v) ? "-" : v.ToString("0.0e+0")));
            if (nonFinite > 0) dots += $" ({nonFinite} non-finite results differ)";
            Console.WriteLine($"| {t} | {at} | {same}/{nActs}{firstDiff} | {dots} |");
        }
        return bad == 0 ? 0 : 1;
    }

    /// <summary>Null when Sputnik's converted row <paramref name="mine"/> holds ggml's <paramref name="theirs"/>, else what differs.</summary>
    private static string? ActivationDiff(GgmlType at, int k, ReadOnlySpan<byte> mine, byte[] theirs)
    {
        switch (at)
        {
            case GgmlType.Q8_0:
            case GgmlType.Q8_K:
            {
                int n = theirs.Length;
                for (int i = 0; i < n; i++)
                    if (mine[i] != theirs[i]) return $"byte {i} of {n}: {mine[i]} vs {theirs[i]}";
                return null;
            }
            case GgmlType.Q8_1:
            {
                // ggml: 36-byte blocks (half d, half s = d·Σq, 32 quants); Sputnik: 34-byte Q8_0 blocks, then s as floats.
                int nb = k / 32;
                var sums = MemoryMarshal.Cast<byte, float>(mine.Slice(nb * 34, nb * 4));
                for (int b = 0; b < nb; b++)
                {
                    for (int i = 0; i < 2; i++)
                        if (mine[b * 34 + i] != theirs[b * 36 + i]) return $"block {b}: d differs";
                    for (int i = 0; i < 32; i++)
                        if (mine[b * 34 + 2 + i] != theirs[b * 36 + 4 + i]) return $"block {b}: quant {i} {(sbyte)mine[b * 34 + 2 + i]} vs {(sbyte)theirs[b * 36 + 4 + i]}";
                    float s = FloatConvert.HalfToFloat(BitConverter.ToUInt16(theirs, b * 36 + 2));
                    if (sums[b] != s) return $"block {b}: s {sums[b]:R} vs {s:R}";
                }
                return null;
            }
            case GgmlType.F16:
            case GgmlType.BF16:
            {
                var f = MemoryMarshal.Cast<byte, float>(mine.Slice(0, 4 * k));
                for (int i = 0; i < k; i++)
                {
                    ushort bits = BitConverter.ToUInt16(theirs, 2 * i);
                    float v = at == GgmlType.F16 ? FloatConvert.HalfToFloat(bits) : FloatConvert.BF16ToFloat(bits);
                    if (BitConverter.SingleToInt32Bits(f[i]) != BitConverter.SingleToInt32Bits(v)) return $"value {i}: {f[i]:R} vs {v:R}";
                }
                return null;
            }
            default:
                return $"no comparison for {at}";
        }
    }
}
