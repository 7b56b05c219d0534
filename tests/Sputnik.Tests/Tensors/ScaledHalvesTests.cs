using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;
using Sputnik.Tests.Models;
using Xunit;

namespace Sputnik.Tests.Tensors;

/// <summary>
/// F16 weights re-laid scaled by 2^10 (<see cref="ScaledHalves"/>): the scaling is exact for every half it takes and
/// refuses the others, its vector form equals its reference, and products through the scaled layout are the F16
/// kernels' to the bit, decoded or batched, on every SIMD path, alone and through a whole model.
/// </summary>
public unsafe class ScaledHalvesTests
{
    private static bool SameBits(float a, float b) => BitConverter.SingleToInt32Bits(a) == BitConverter.SingleToInt32Bits(b);

    [Fact]
    public void Every_half_under_64_scales_exactly_to_a_normal_half_and_the_rest_are_refused()
    {
        Assert.Equal(ScaledHalves.ActivationScale, MathF.Pow(2, 112 - ScaledHalves.ExponentShift));
        int taken = 0;
        for (int h = 0; h < 65536; h++)
        {
            float value = FloatConvert.HalfToFloat((ushort)h);
            ushort? scaled = ScaledHalves.Scale((ushort)h);
            if (!float.IsFinite(value) || Math.Abs(value) >= 64)
            {
                Assert.Null(scaled);
                continue;
            }
            taken++;
            Assert.NotNull(scaled);
            ushort s = scaled.Value;
            Assert.True(SameBits(value, ScaledHalves.Weight(s)), $"half 0x{h:X4} ({value}) came back as {ScaledHalves.Weight(s)}");
            Assert.True(SameBits(value * 1024, FloatConvert.HalfToFloat(s)), $"half 0x{h:X4}: scaled 0x{s:X4}");
            bool zero = (s & 0x7FFF) == 0;
            Assert.True(zero == (value == 0) && (zero || (s & 0x7C00) != 0), $"half 0x{h:X4}: scaled 0x{s:X4} is subnormal or a zero moved");
            // What the decode kernel does with it: sign-extend, shift 13, mask, times the activation scale.
            float widened = BitConverter.Int32BitsToSingle(((short)s << 13) & ScaledHalves.FloatBitsMask);
            Assert.True(zero || float.IsNormal(widened), $"half 0x{h:X4} widens to a subnormal float {widened}");
            Assert.True(SameBits(value, (float)((double)widened * ScaledHalves.ActivationScale)), $"half 0x{h:X4}: {widened} × 2^102");
        }
        Assert.Equal(2 * (21 << 10), taken); // both signs of every magnitude below 64 (exponent 21)
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Vector_scaling_equals_the_reference_and_refuses_a_large_weight_anywhere(bool vector)
    {
        if (vector && !System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated) Assert.Skip("no 512-bit vectors on this machine");
        var all = Enumerable.Range(0, 65536).Select(h => (ushort)h).Where(h => ScaledHalves.Scale(h) != null).ToArray();
        var dst = new ushort[all.Length];
        fixed (ushort* s = all)
        fixed (ushort* d = dst)
            Assert.True(ScaledHalves.TryScale(s, d, all.Length - 5, vector)); // a scalar tail too
        for (int i = 0; i < all.Length - 5; i++) Assert.Equal(ScaledHalves.Scale(all[i]), dst[i]);

        foreach (ushort bad in new ushort[] { 0x5400, 0xD400, 0x7C00, 0xFC00, 0x7E00, 0x7BFF })
            foreach (int at in new[] { 0, 17, 31, 36 })
            {
                var row = new ushort[37];
                row.AsSpan().Fill(0x3C00); // 1.0
                row[at] = bad;
                fixed (ushort* s = row)
                fixed (ushort* d = new ushort[37])
                    Assert.False(ScaledHalves.TryScale(s, d, row.Length, vector), $"0x{bad:X4} at {at}");
            }
    }

    [Fact]
    public void Scaled_halves_widen_to_their_weights_on_every_path()
    {
        var all = Enumerable.Range(0, 65536).Select(h => ScaledHalves.Scale((ushort)h)).OfType<ushort>().ToArray();
        var want = all.Select(ScaledHalves.Weight).ToArray();
        foreach (KernelPath path in MatVecTests.AvailablePaths())
        {
            var got = new float[all.Length];
            fixed (ushort* s = all)
            fixed (float* d = got)
                ScaledHalves.ToWeights(s, d, all.Length - 3, path); // a tail too
            for (int i = 0; i < all.Length - 3; i++)
                Assert.True(SameBits(want[i], got[i]), $"{path}: 0x{all[i]:X4} gave {got[i]}, not {want[i]}");
        }
    }

    private static (byte[] W, byte[] Scaled, byte[] Act) Problem(int rows, int cols, int tokens, int seed)
    {
        var rng = new Random(seed);
        var wf = new float[rows * cols];
        for (int i = 0; i < wf.Length; i++)
        {
            float v = (float)(rng.NextDouble() * 2 - 1);
            wf[i] = (i % 11) switch { 3 => v * 3e-6f, 5 => v * 1e-7f, 7 => i % 2 == 0 ? 0f : -0f, 8 => v * 40, _ => v * 0.05f };
        }
        var x = new float[tokens * cols];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 4 - 2) * (i % 13 == 0 ? 1e-6f : 1);
        x[0] = 60000f; // near F16's largest: times 2^102 must stay finite
        int rb = cols * 2;
        var w = new byte[rb * rows];
        for (int r = 0; r < rows; r++) Quant.Row(GgmlType.F16, wf.AsSpan(r * cols, cols), w.AsSpan(r * rb, rb));
        var scaled = new byte[w.Length];
        Assert.True(ScaledHalves.TryScale(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(w), System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(scaled.AsSpan())));
        var act = new byte[MatMul.ActivationStride(GgmlType.F16, cols) * tokens];
        MatMul.QuantizeActivations(GgmlType.F16, x, cols, act, 0, tokens);
        return (w, scaled, act);
    }

    [Theory]
    [InlineData(512)]
    [InlineData(16 * 13 + 5)]
    [InlineData(40)]
    [InlineData(7)]
    public void Scaled_rows_give_the_F16_kernels_bits_decoded_and_batched(int cols)
    {
        if (MatVec.DefaultPath == KernelPath.Scalar) Assert.Skip("no SIMD path: the scaled layout is made only where one exists");
        const int rows = 11, tokens = 10;
        var (w, scaled, act) = Problem(rows, cols, tokens, cols);
        int stride = MatMul.ActivationStride(GgmlType.F16, cols);
        foreach (KernelPath path in MatVecTests.AvailablePaths().Where(p => p != KernelPath.Scalar))
        {
            var want = new float[rows];
            var got = new float[rows];
            for (int t = 0; t < tokens; t++)
            {
                MatVec.ComputeRows(GgmlType.F16, w, cols, act.AsSpan(t * stride, stride), want, 0, rows, path);
                fixed (byte* sw = scaled)
                fixed (byte* a = act)
                fixed (float* y = got)
                {
                    HalfWeights.ScaledRows(sw, cols, (float*)(a + t * stride), y, 0, 6, path);
                    HalfWeights.ScaledRows(sw, cols, (float*)(a + t * stride), y, 6, rows, path);
                }
                for (int r = 0; r < rows; r++)
                    Assert.True(SameBits(want[r], got[r]), $"{path} cols {cols} token {t} row {r}: scaled {got[r]} vs F16 {want[r]}");
            }
        }
        // Batched, on the default path (what WeightMatrix runs).
        var batchedWant = new float[tokens * rows];
        var batchedGot = new float[tokens * rows];
        MatMul.ComputeRows(GgmlType.F16, w, cols, act, tokens, batchedWant, rows, 0, rows);
        MatMul.ComputeRows(GgmlType.F16, scaled, cols, act, tokens, batchedGot, rows, 0, 5, MatVec.DefaultPath, scaledHalves: true);
        MatMul.ComputeRows(GgmlType.F16, scaled, cols, act, tokens, batchedGot, rows, 5, rows, MatVec.DefaultPath, scaledHalves: true);
        for (int i = 0; i < batchedWant.Length; i++)
            Assert.True(SameBits(batchedWant[i], batchedGot[i]), $"cols {cols} batched {i}: scaled {batchedGot[i]} vs F16 {batchedWant[i]}");
    }

    [Fact]
    public void An_F16_model_loads_scaled_and_gives_the_same_logits_to_the_bit()
    {
        if (MatVec.DefaultPath == KernelPath.Scalar) Assert.Skip("no SIMD path: F16 rows stay as the file has them");
        using var scaledFile = GgufFile.Open(RandomQwen2.F16Path);
        using var plainFile = GgufFile.Open(RandomQwen2.F16Path);
        plainFile.RepackWeights = false;
        RelaidCache.Attach(scaledFile, null, 0);
        var q = new WeightMatrix(scaledFile, scaledFile.GetTensor("blk.0.attn_q.weight"));
        var plainQ = new WeightMatrix(plainFile, plainFile.GetTensor("blk.0.attn_q.weight"));
        Assert.True(q.IsScaledHalves && !q.IsInterleaved && !plainQ.IsScaledHalves);
        var info = plainFile.GetTensor("blk.0.attn_q.weight");
        var halves = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(plainFile.GetData(info));
        int subnormal = 0;
        foreach (ushort h in halves) if ((h & 0x7C00) == 0 && (h & 0x3FF) != 0) subnormal++;
        Assert.True(subnormal > 0, "the file should hold subnormal halves, the case the scaling exists for");
        Assert.False(new WeightMatrix(scaledFile, scaledFile.GetTensor("blk.1.ffn_up.weight")).IsScaledHalves); // holds a 100
        var a = new float[q.Cols];
        var b = new float[q.Cols];
        foreach (int r in new[] { 0, 5, q.Rows - 1 })
        {
            q.GetRow(r, a);
            plainQ.GetRow(r, b);
            Assert.Equal(b, a);
        }

        using var m1 = ModelLoader.Load(GgufFile.Open(RandomQwen2.F16Path), 2);
        var f2 = GgufFile.Open(RandomQwen2.F16Path);
        f2.RepackWeights = false;
        using var m2 = ModelLoader.Load(f2, 2);
        LogitAgreement.AssertAgree(m1, m2, [1, 7, 42, 99, 3, 250, 17, 8, 64], steps: 3, firstNext: 5, tolerance: 0);
    }
}
