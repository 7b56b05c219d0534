using Sputnik.Tensors;
using Sputnik.Tensors.Quants;

/// <summary>
/// File-layout kernels against the 16-row interleaved ones (Q4_K, Q8_0), single-threaded, same weights and activations:
/// dotnet run -c Release --project bench/Sputnik.Bench q4kx [rows] [cols] [tokens] [type]
/// </summary>
internal static unsafe class InterleaveBench
{
    public static void Run(string[] args)
    {
        int rows = args.Length > 0 ? int.Parse(args[0]) : 1536, cols = args.Length > 1 ? int.Parse(args[1]) : 8960;
        int tokens = args.Length > 2 ? int.Parse(args[2]) : 1;
        var type = args.Length > 3 ? Enum.Parse<GgmlType>(args[3]) : GgmlType.Q4_K;
        var rng = new Random(1);
        var w = RandomRows(type, rows, cols, rng);
        int rb = (int)GgmlTypeInfo.RowBytes(type, cols);
        var wx = new byte[w.Length];
        int groupBytes = 16 * rb;
        for (int g = 0; g < rows / 16; g++) Interleaving.InterleaveGroup(type, w.AsSpan(g * 16 * rb), wx.AsSpan(g * groupBytes), cols);
        var x = new float[tokens * cols];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        int stride = MatMul.ActivationStride(type, cols);
        var act = new byte[stride * tokens];
        MatMul.QuantizeActivations(type, x, cols, act, 0, tokens);
        var y0 = new float[tokens * rows];
        var y1 = new float[tokens * rows];
        Action file = tokens == 1
            ? () => MatVec.ComputeRows(type, w, cols, act, y0, 0, rows)
            : () => MatMul.ComputeRows(type, w, cols, act, tokens, y0, rows, 0, rows);
        Action inter = () =>
        {
            fixed (byte* pw = wx) fixed (byte* pa = act) fixed (float* py = y1)
                Interleaving.Compute(type, pw, cols, pa, stride, tokens, py, rows, 0, rows / 16);
        };
        for (int round = 0; round < 3; round++)
        {
            foreach (var (name, f) in new[] { ("file", file), ("interleaved", inter) })
            {
                for (int i = 0; i < 3; i++) f();
                var (best, mean, _, _) = Repeat.For(1.5, f);
                Console.WriteLine($"{name,-12} {rows}x{cols} x{tokens}: avg {mean * 1e3:F3} ms ({w.Length / mean / 1e9:F2} GB/s), best {best * 1e3:F3} ms ({w.Length / best / 1e9:F2} GB/s)");
            }
        }
        double maxErr = 0, maxAbs = 0;
        for (int i = 0; i < y0.Length; i++) { maxErr = Math.Max(maxErr, Math.Abs(y0[i] - y1[i])); maxAbs = Math.Max(maxAbs, Math.Abs(y0[i])); }
        Console.WriteLine($"max |file - interleaved| = {maxErr:G3} (max |y| {maxAbs:G3})");
    }

    /// <summary>
    /// rows × cols weights uniform in [−0.05, 0.05), quantized row by row to <paramref name="type"/> (file layout).
    /// A real model's magnitude, so the block scales are what real files hold: Q6_K's are subnormal halves, whose
    /// widening cost uniform weights in [−1, 1) hid.
    /// </summary>
    internal static byte[] RandomRows(GgmlType type, int rows, int cols, Random rng)
    {
        int rb = (int)GgmlTypeInfo.RowBytes(type, cols);
        var w = new byte[(long)rb * rows];
        var row = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            for (int i = 0; i < cols; i++) row[i] = (float)(rng.NextDouble() * 0.1 - 0.05);
            Quant.Row(type, row, w.AsSpan(r * rb, rb));
        }
        return w;
    }
}
