using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;
using Sputnik.Tests.Models;
using Xunit;

namespace Sputnik.Tests.Tensors;

public unsafe class InterleavedTests
{
    private static (byte[] W, byte[] Act, int Stride) Problem(GgmlType type, int rows, int cols, int tokens, int seed)
    {
        var rng = new Random(seed);
        float Next() => (float)(rng.NextDouble() * 2 - 1);
        int rb = (int)GgmlTypeInfo.RowBytes(type, cols);
        var w = new byte[rb * rows];
        var row = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            // rows of very different magnitudes exercise d/dmin and the 6-bit scales and mins
            float scale = MathF.Pow(10, (r % 5) - 2);
            for (int i = 0; i < cols; i++) row[i] = Next() * scale + (r % 3 == 0 ? 0.5f * scale : 0);
            Quant.Row(type, row, w.AsSpan(r * rb, rb));
        }
        var x = new float[tokens * cols];
        for (int i = 0; i < x.Length; i++) x[i] = Next() * (1 + i % 7);
        int stride = MatMul.ActivationStride(type, cols);
        var act = new byte[stride * tokens];
        MatMul.QuantizeActivations(type, x, cols, act, 0, tokens);
        return (w, act, stride);
    }

    private static byte[] Interleave(GgmlType type, byte[] w, int rows, int cols)
    {
        int groupBytes = 16 * (int)GgmlTypeInfo.RowBytes(type, cols);
        var wx = new byte[w.Length];
        for (int g = 0; g < rows / 16; g++)
            Interleaving.InterleaveGroup(type, w.AsSpan(g * groupBytes, groupBytes), wx.AsSpan(g * groupBytes, groupBytes), cols);
        return wx;
    }

    [Theory]
    [InlineData(GgmlType.Q4_K, 768)]
    [InlineData(GgmlType.Q8_0, 96)]
    [InlineData(GgmlType.Q6_K, 512)]
    [InlineData(GgmlType.Q5_0, 96)]
    public void Interleaving_is_a_permutation_that_extract_row_undoes(GgmlType type, int cols)
    {
        const int rows = 32;
        var rng = new Random(3);
        var w = new byte[rows * (int)GgmlTypeInfo.RowBytes(type, cols)];
        rng.NextBytes(w);
        var wx = Interleave(type, w, rows, cols);
        Assert.Equal(Stored(type, w).Order(), wx.Order()); // same bytes (biased fields offset by 128), nothing added or lost
        Assert.False(w.AsSpan().SequenceEqual(wx));
        int rb = w.Length / rows, groupBytes = 16 * rb;
        var back = new byte[rb];
        for (int r = 0; r < rows; r++)
        {
            Interleaving.ExtractRow(type, wx.AsSpan(r / 16 * groupBytes, groupBytes), r % 16, back, cols);
            Assert.True(back.AsSpan().SequenceEqual(w.AsSpan(r * rb, rb)), $"row {r}");
        }
    }

    /// <summary>File-layout rows with the bytes of every biased field's top bit flipped, as a group block stores them.</summary>
    private static byte[] Stored(GgmlType type, byte[] w)
    {
        var stored = (byte[])w.Clone();
        int blockBytes = GgmlTypeInfo.BlockBytes(type);
        for (int at = 0; at < stored.Length; at += blockBytes)
            foreach (var f in Interleaving.Layout(type))
                if (f.Biased)
                    for (int i = 0; i < f.Width; i++) stored[at + f.Offset + i] ^= 0x80;
        return stored;
    }

    [Fact]
    public void Q8_0_quants_are_stored_plus_128_and_nothing_else_is()
    {
        const int rows = 16, cols = 64;
        var w = new byte[rows * (int)GgmlTypeInfo.RowBytes(GgmlType.Q8_0, cols)];
        new Random(8).NextBytes(w);
        var wx = Interleave(GgmlType.Q8_0, w, rows, cols);
        int rb = w.Length / rows;
        // block 1 of the group: d of the 16 rows, then slot 0 (quants 0..3 of each row)
        int group1 = 16 * 34;
        for (int r = 0; r < rows; r++)
        {
            Assert.Equal(w[r * rb + 34], wx[group1 + 2 * r]);
            Assert.Equal(w[r * rb + 35], wx[group1 + 2 * r + 1]);
            for (int i = 0; i < 4; i++) Assert.Equal((sbyte)w[r * rb + 34 + 2 + i] + 128, wx[group1 + 32 + 4 * r + i]);
        }
    }

    [Theory]
    [InlineData(GgmlType.Q4_K)]
    [InlineData(GgmlType.Q6_K)]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q5_0)]
    public void Layout_covers_every_byte_of_a_block_once(GgmlType type)
    {
        var covered = new int[GgmlTypeInfo.BlockBytes(type)];
        foreach (var f in Interleaving.Layout(type))
        {
            Assert.True(f.Width is 2 or 4 && f.Offset >= 0 && f.Offset + f.Width <= covered.Length, $"{type} field {f}");
            for (int i = 0; i < f.Width; i++) covered[f.Offset + i]++;
        }
        Assert.All(covered, c => Assert.Equal(1, c));
    }

    [Fact]
    public void Kernels_need_avx512_or_avx2_and_are_offered_only_with_it()
    {
        bool avx512 = Vector512.IsHardwareAccelerated && Avx512BW.IsSupported && Avx512F.IsSupported;
        bool avx2 = Vector256.IsHardwareAccelerated && Avx2.IsSupported && Fma.IsSupported;
        Assert.Equal(avx512 || avx2, Interleaving.Supports(GgmlType.Q4_K, 32, 512));
        Assert.Equal(avx512 || avx2, Interleaving.Supports(GgmlType.Q8_0, 32, 64));
        Assert.False(Interleaving.Supports(GgmlType.Q4_K, 40, 512));
        Assert.False(Interleaving.Supports(GgmlType.Q4_K, 32, 576));
        Assert.False(Interleaving.Supports(GgmlType.Q8_0, 24, 64));
        Assert.Equal(avx512 || avx2, Interleaving.Supports(GgmlType.Q6_K, 32, 512));
        Assert.Equal(avx512 || avx2, Interleaving.Supports(GgmlType.Q5_0, 2048, 1408));
        Assert.False(Interleaving.Supports(GgmlType.Q5_K, 32, 512));
    }

    /// <summary>Against the scalar file-layout reference, tokens 1..13 (the 8-token, 4-token and 1-token kernels), one to several blocks.</summary>
    [Theory]
    [InlineData(GgmlType.Q4_K, 256, 1)]
    [InlineData(GgmlType.Q4_K, 512, 4)]
    [InlineData(GgmlType.Q4_K, 768, 9)]
    [InlineData(GgmlType.Q4_K, 768, 6)]
    [InlineData(GgmlType.Q8_0, 32, 1)]
    [InlineData(GgmlType.Q8_0, 96, 5)]
    [InlineData(GgmlType.Q8_0, 416, 9)]
    [InlineData(GgmlType.Q8_0, 160, 13)]
    [InlineData(GgmlType.Q6_K, 256, 1)]
    [InlineData(GgmlType.Q6_K, 512, 5)]
    [InlineData(GgmlType.Q6_K, 768, 8)]
    [InlineData(GgmlType.Q5_0, 32, 1)]
    [InlineData(GgmlType.Q5_0, 96, 5)]
    [InlineData(GgmlType.Q5_0, 1408, 9)]
    public void Kernels_match_the_scalar_reference(GgmlType type, int cols, int tokens)
    {
        // the AVX-512-off CI passes check the file-layout kernels instead
        if (!Interleaving.Supports(type, 16, cols)) Assert.Skip($"no 16-row interleaved {type} kernel on this CPU (AVX-512 off or absent)");
        const int rows = 48;
        var (w, act, stride) = Problem(type, rows, cols, tokens, cols + tokens);
        var wx = Interleave(type, w, rows, cols);
        var y = new float[tokens * rows];
        fixed (byte* pw = wx) fixed (byte* pa = act) fixed (float* py = y)
            Interleaving.Compute(type, pw, cols, pa, stride, tokens, py, rows, 0, rows / 16);
        int rb = w.Length / rows;
        for (int t = 0; t < tokens; t++)
            for (int r = 0; r < rows; r++)
            {
                float want = MatVec.Dot(type, w.AsSpan(r * rb, rb), act.AsSpan(t * stride, stride), cols, KernelPath.Scalar);
                float got = y[t * rows + r];
                Assert.True(Math.Abs(got - want) <= 1e-5f * Math.Abs(want) + 1e-4f * MathF.Pow(10, (r % 5) - 2),
                    $"{type} cols {cols} token {t} row {r}: {got} vs reference {want}");
            }
    }

    /// <summary>
    /// Q8_0 quants at the ends of int8 (−128, which a file may hold though the quantizer never writes it, and 127)
    /// against activations of all-equal, alternating, overflowed (all −128) and random blocks: the kernels' integer sums (w + 128)·x from −128·Σx are
    /// exact, so they agree with the scalar reference to float rounding.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(6)]
    [InlineData(9)]
    public void Q8_0_kernels_are_exact_at_the_ends_of_int8(int tokens)
    {
        const int rows = 32, cols = 128;
        if (!Interleaving.Supports(GgmlType.Q8_0, rows, cols)) Assert.Skip("no 16-row interleaved Q8_0 kernel on this CPU (AVX-512 off or absent)");
        int rb = (int)GgmlTypeInfo.RowBytes(GgmlType.Q8_0, cols);
        var w = new byte[rows * rb];
        var rng = new Random(21);
        for (int r = 0; r < rows; r++)
            for (int b = 0; b < cols / 32; b++)
            {
                int at = r * rb + b * 34;
                BitConverter.TryWriteBytes(w.AsSpan(at, 2), (Half)(0.01f * (1 + r % 3)));
                for (int i = 0; i < 32; i++)
                    w[at + 2 + i] = (byte)(sbyte)(((r + b) % 4) switch { 0 => -128, 1 => 127, 2 => (i % 2 == 0 ? -128 : 127), _ => rng.Next(-128, 128) });
            }
        AgreesOnExtremeActivations(GgmlType.Q8_0, w, rows, cols, tokens, rng, allEqual: 1f);
    }

    /// <summary>
    /// The interleaved kernels against the scalar reference over activation blocks that are all equal, alternating
    /// ±2, overflowed (a scale below float's range: every quant −128, x86 ggml-cpu's behaviour, d = 0) and random.
    /// </summary>
    private static void AgreesOnExtremeActivations(GgmlType type, byte[] w, int rows, int cols, int tokens, Random rng, float allEqual)
    {
        int rb = (int)GgmlTypeInfo.RowBytes(type, cols);
        var x = new float[tokens * cols];
        for (int i = 0; i < x.Length; i++)
            x[i] = (i / 32 % 4) switch
            {
                0 => allEqual,
                1 => i % 2 == 0 ? -2f : 2f,
                2 => 1e-39f,
                _ => (float)(rng.NextDouble() * 2 - 1),
            };
        int stride = MatMul.ActivationStride(type, cols);
        var act = new byte[stride * tokens];
        MatMul.QuantizeActivations(type, x, cols, act, 0, tokens);
        var wx = Interleave(type, w, rows, cols);
        var y = new float[tokens * rows];
        fixed (byte* pw = wx) fixed (byte* pa = act) fixed (float* py = y)
            Interleaving.Compute(type, pw, cols, pa, stride, tokens, py, rows, 0, rows / 16);
        for (int t = 0; t < tokens; t++)
            for (int r = 0; r < rows; r++)
            {
                float want = MatVec.Dot(type, w.AsSpan(r * rb, rb), act.AsSpan(t * stride, stride), cols, KernelPath.Scalar);
                Assert.True(Math.Abs(y[t * rows + r] - want) <= 1e-5f * Math.Abs(want) + 1e-6f, $"{type} token {t} row {r}: {y[t * rows + r]} vs reference {want}");
            }
    }

    /// <summary>
    /// Q5_0 weights at their ends (every quant 0 or 31, so −16 and 15, with all high bits clear or set, and mixed)
    /// against all-equal, alternating, overflowed (all −128) and random activation blocks: the 16-bit pair sums
    /// of four slots reach 4 · 2 · 31 · 128 = 31,744 and must not saturate.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    public void Q5_0_kernels_are_exact_at_the_ends_of_five_bits(int tokens)
    {
        const int rows = 32, cols = 128;
        if (!Interleaving.Supports(GgmlType.Q5_0, rows, cols)) Assert.Skip("no 16-row interleaved Q5_0 kernel on this CPU (AVX-512 off or absent)");
        int rb = (int)GgmlTypeInfo.RowBytes(GgmlType.Q5_0, cols);
        var w = new byte[rows * rb];
        var rng = new Random(22);
        for (int r = 0; r < rows; r++)
            for (int b = 0; b < cols / 32; b++)
            {
                int at = r * rb + b * 22;
                BitConverter.TryWriteBytes(w.AsSpan(at, 2), (Half)(0.01f * (1 + r % 3)));
                uint high = ((r + b) % 4) switch { 0 => 0u, 1 => uint.MaxValue, 2 => 0x55AA55AAu, _ => (uint)rng.Next() };
                BitConverter.TryWriteBytes(w.AsSpan(at + 2, 4), high);
                for (int i = 0; i < 16; i++)
                    w[at + 6 + i] = ((r + 2 * b) % 3) switch { 0 => (byte)0xFF, 1 => (byte)0x00, _ => (byte)rng.Next(256) };
            }
        AgreesOnExtremeActivations(GgmlType.Q5_0, w, rows, cols, tokens, rng, allEqual: -1f);
    }

    [Theory]
    [InlineData(GgmlType.Q4_K, 512)]
    [InlineData(GgmlType.Q8_0, 160)]
    [InlineData(GgmlType.Q6_K, 512)]
    [InlineData(GgmlType.Q5_0, 1408)]
    public void A_token_gives_the_same_bits_batched_or_alone(GgmlType type, int cols)
    {
        if (!Interleaving.Supports(type, 16, cols)) Assert.Skip($"no 16-row interleaved {type} kernel on this CPU (AVX-512 off or absent)");
        // 8 + 4 + 3 × 1 where a format has an eight-token kernel (else 4 + 4 + 4 + 3 × 1): every kernel a format has
        const int rows = 32, tokens = 15;
        var (w, act, stride) = Problem(type, rows, cols, tokens, 11);
        var wx = Interleave(type, w, rows, cols);
        var batched = new float[tokens * rows];
        var single = new float[rows];
        fixed (byte* pw = wx) fixed (byte* pa = act) fixed (float* pb = batched) fixed (float* ps = single)
        {
            Interleaving.Compute(type, pw, cols, pa, stride, tokens, pb, rows, 0, rows / 16);
            for (int t = 0; t < tokens; t++)
            {
                Interleaving.Compute(type, pw, cols, pa + t * stride, stride, 1, ps, rows, 0, rows / 16);
                for (int r = 0; r < rows; r++)
                    Assert.True(BitConverter.SingleToInt32Bits(single[r]) == BitConverter.SingleToInt32Bits(batched[t * rows + r]),
                        $"token {t} row {r}: alone {single[r]} vs batched {batched[t * rows + r]}");
            }
        }
    }

    /// <summary>
    /// The AVX2 kernels (CPUs without AVX-512) against the 512-bit ones, called directly on a CPU that has both: the
    /// same bits for one token and four. Where AVX-512 is absent, the scalar-reference tests above check the AVX2 ones.
    /// </summary>
    [Theory]
    [InlineData(GgmlType.Q4_K, 768)]
    [InlineData(GgmlType.Q6_K, 512)]
    [InlineData(GgmlType.Q8_0, 416)]
    [InlineData(GgmlType.Q5_0, 1408)]
    public void Avx2_kernels_give_the_512_bit_kernels_bits(GgmlType type, int cols)
    {
        if (!(Interleaving.Supports(type, 16, cols) && MatVec.DefaultPath == KernelPath.Avx512))
            Assert.Skip("needs AVX-512 for the 512-bit kernels to compare with (the AVX2 ones are checked against the scalar reference)");
        const int rows = 32, tokens = 5;
        var (w, act, stride) = Problem(type, rows, cols, tokens, 17);
        var wx = Interleave(type, w, rows, cols);
        var wide = new float[tokens * rows];
        var narrow = new float[tokens * rows];
        int groupBytes = 16 * (int)GgmlTypeInfo.RowBytes(type, cols), nb = cols / GgmlTypeInfo.BlockSize(type);
        fixed (byte* pw = wx) fixed (byte* pa = act) fixed (float* py = wide) fixed (float* pn = narrow)
        {
            Interleaving.Compute(type, pw, cols, pa, stride, tokens, py, rows, 0, rows / 16);
            for (int g = 0; g < rows / 16; g++)
            {
                byte* wg = pw + g * groupBytes;
                float* yg = pn + g * 16;
                switch (type)
                {
                    case GgmlType.Q4_K:
                        Q4KInterleaved.Group4Avx2(wg, nb, pa, stride, yg, rows, prefetch: true);
                        Q4KInterleaved.Group1Avx2(wg, nb, pa + 4 * stride, yg + 4 * rows);
                        break;
                    case GgmlType.Q6_K:
                        Q6KInterleaved.Group4Avx2(wg, nb, pa, stride, yg, rows, prefetch: true);
                        Q6KInterleaved.Group1Avx2(wg, nb, pa + 4 * stride, yg + 4 * rows);
                        break;
                    case GgmlType.Q5_0:
                        Q50Interleaved.Group4Avx2(wg, nb, pa, stride, yg, rows, prefetch: true);
                        Q50Interleaved.Group1Avx2(wg, nb, pa + 4 * stride, yg + 4 * rows);
                        break;
                    default:
                        Q80Interleaved.Group4Avx2(wg, nb, pa, stride, yg, rows, prefetch: true);
                        Q80Interleaved.Group1Avx2(wg, nb, pa + 4 * stride, yg + 4 * rows);
                        break;
                }
            }
        }
        for (int i = 0; i < wide.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(wide[i]) == BitConverter.SingleToInt32Bits(narrow[i]),
                $"{type} token {i / rows} row {i % rows}: 512-bit {wide[i]} vs AVX2 {narrow[i]}");
    }

    /// <summary>
    /// Through WeightMatrix, as the models use it: row ranges that start and end inside a group (the worker pool's
    /// chunks), decoded rows, and whole-model logits, against the same file loaded without re-laying.
    /// </summary>
    [Theory]
    [InlineData("blk.0.ffn_gate.weight")] // Q4_K
    [InlineData("blk.1.ffn_up.weight")]   // Q8_0
    [InlineData("blk.0.attn_v.weight")]   // Q6_K
    public void Weight_matrix_rows_and_model_logits_agree_with_the_file_layout(string tensor)
    {
        using var plainFile = GgufFile.Open(RandomQwen2.Path_);
        using var packedFile = GgufFile.Open(RandomQwen2.Path_);
        plainFile.RepackWeights = false;
        var info = plainFile.GetTensor(tensor);
        var plain = new WeightMatrix(plainFile, info);
        var packed = new WeightMatrix(packedFile, packedFile.GetTensor(info.Name));
        Assert.False(plain.IsInterleaved);
        Assert.Equal(Interleaving.Supports(info.Type, plain.Rows, plain.Cols), packed.IsInterleaved);

        var a = new float[plain.Cols];
        var b = new float[plain.Cols];
        foreach (int r in new[] { 0, 15, 16, plain.Rows / 2 + 3, plain.Rows - 1 })
        {
            plain.GetRow(r, a);
            packed.GetRow(r, b);
            Assert.Equal(a, b);
        }

        const int tokens = 6;
        var rng = new Random(5);
        var x = new float[tokens * plain.Cols];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var input = new byte[tokens * plain.InputBytes];
        plain.PrepareInputs(x, input, 0, tokens);
        foreach (int n in new[] { 1, tokens })
            foreach (var (r0, r1) in new[] { (0, plain.Rows), (3, 37), (5, 11), (32, 48), (17, plain.Rows - 1) })
            {
                var want = new float[n * plain.Rows];
                var got = new float[n * plain.Rows];
                plain.MatMulRows(input, n, want, r0, r1);
                packed.MatMulRows(input, n, got, r0, r1);
                for (int t = 0; t < n; t++)
                    for (int r = 0; r < plain.Rows; r++)
                    {
                        float w = want[t * plain.Rows + r], g = got[t * plain.Rows + r];
                        if (r < r0 || r >= r1) Assert.Equal(0f, g); // nothing written outside the range
                        else Assert.True(Math.Abs(w - g) <= 1e-5f * Math.Abs(w) + 1e-5f, $"tokens {n} rows [{r0},{r1}) t {t} r {r}: {g} vs {w}");
                    }
            }

        using var m1 = ModelLoader.Load(GgufFile.Open(RandomQwen2.Path_), 2);
        var f2 = GgufFile.Open(RandomQwen2.Path_);
        f2.RepackWeights = false;
        using var m2 = ModelLoader.Load(f2, 2);
        LogitAgreement.AssertAgree(m1, m2, [1, 7, 42, 99, 3, 250, 17, 8, 64], steps: 3, firstNext: 5);
    }
}
