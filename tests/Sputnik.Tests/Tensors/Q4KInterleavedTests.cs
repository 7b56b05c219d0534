using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;
using Sputnik.Tests.Models;
using Xunit;

namespace Sputnik.Tests.Tensors;

public unsafe class Q4KInterleavedTests
{
    private static (byte[] W, byte[] Act, int Stride) Problem(int rows, int cols, int tokens, int seed)
    {
        var rng = new Random(seed);
        float Next() => (float)(rng.NextDouble() * 2 - 1);
        int rb = (int)GgmlTypeInfo.RowBytes(GgmlType.Q4_K, cols);
        var w = new byte[rb * rows];
        var row = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            // rows of very different magnitudes exercise d/dmin and the 6-bit scales and mins
            float scale = MathF.Pow(10, (r % 5) - 2);
            for (int i = 0; i < cols; i++) row[i] = Next() * scale + (r % 3 == 0 ? 0.5f * scale : 0);
            Quant.Row(GgmlType.Q4_K, row, w.AsSpan(r * rb, rb));
        }
        var x = new float[tokens * cols];
        for (int i = 0; i < x.Length; i++) x[i] = Next() * (1 + i % 7);
        int stride = MatMul.ActivationStride(GgmlType.Q4_K, cols);
        var act = new byte[stride * tokens];
        MatMul.QuantizeActivations(GgmlType.Q4_K, x, cols, act, 0, tokens);
        return (w, act, stride);
    }

    private static byte[] Interleave(byte[] w, int rows, int cols)
    {
        int rb = (int)GgmlTypeInfo.RowBytes(GgmlType.Q4_K, cols), groupBytes = cols / 256 * Q4KInterleaved.GroupBlockBytes;
        var wx = new byte[w.Length];
        for (int g = 0; g < rows / 16; g++)
            Q4KInterleaved.InterleaveGroup(w.AsSpan(g * 16 * rb, 16 * rb), wx.AsSpan(g * groupBytes, groupBytes), cols);
        return wx;
    }

    [Fact]
    public void Interleaving_is_a_permutation_that_extract_row_undoes()
    {
        const int rows = 32, cols = 768;
        var rng = new Random(3);
        var w = new byte[rows * (int)GgmlTypeInfo.RowBytes(GgmlType.Q4_K, cols)];
        rng.NextBytes(w);
        var wx = Interleave(w, rows, cols);
        Assert.Equal(w.Order(), wx.Order()); // same bytes, nothing added or lost
        int rb = w.Length / rows, groupBytes = cols / 256 * Q4KInterleaved.GroupBlockBytes;
        var back = new byte[rb];
        for (int r = 0; r < rows; r++)
        {
            Q4KInterleaved.ExtractRow(wx.AsSpan(r / 16 * groupBytes, groupBytes), r % 16, back, cols);
            Assert.True(back.AsSpan().SequenceEqual(w.AsSpan(r * rb, rb)), $"row {r}");
        }
    }

    [Fact]
    public void Kernels_need_avx512_and_are_offered_only_with_it()
    {
        bool avx512 = Vector512.IsHardwareAccelerated && Avx512BW.IsSupported && Avx512F.IsSupported;
        Assert.Equal(avx512, Q4KInterleaved.IsSupported);
        Assert.True(Q4KInterleaved.CanInterleave(32, 512));
        Assert.False(Q4KInterleaved.CanInterleave(40, 512));
        Assert.False(Q4KInterleaved.CanInterleave(32, 576));
    }

    /// <summary>Against the scalar file-layout reference, tokens 1..9 (the 4-token and 1-token kernels), one to three super-blocks.</summary>
    [Theory]
    [InlineData(256, 1)]
    [InlineData(512, 4)]
    [InlineData(768, 9)]
    [InlineData(768, 6)]
    public void Kernels_match_the_scalar_reference(int cols, int tokens)
    {
        if (!Q4KInterleaved.IsSupported) return; // the AVX-512-off CI passes check the file-layout kernels instead
        const int rows = 48;
        var (w, act, stride) = Problem(rows, cols, tokens, cols + tokens);
        var wx = Interleave(w, rows, cols);
        var y = new float[tokens * rows];
        fixed (byte* pw = wx) fixed (byte* pa = act) fixed (float* py = y)
            Q4KInterleaved.Compute(pw, cols, pa, stride, tokens, py, rows, 0, rows / 16);
        int rb = w.Length / rows;
        for (int t = 0; t < tokens; t++)
            for (int r = 0; r < rows; r++)
            {
                float want = MatVec.Dot(GgmlType.Q4_K, w.AsSpan(r * rb, rb), act.AsSpan(t * stride, stride), cols, KernelPath.Scalar);
                float got = y[t * rows + r];
                Assert.True(Math.Abs(got - want) <= 1e-5f * Math.Abs(want) + 1e-4f * MathF.Pow(10, (r % 5) - 2),
                    $"cols {cols} token {t} row {r}: {got} vs reference {want}");
            }
    }

    [Fact]
    public void A_token_gives_the_same_bits_batched_or_alone()
    {
        if (!Q4KInterleaved.IsSupported) return;
        const int rows = 32, cols = 512, tokens = 7;
        var (w, act, stride) = Problem(rows, cols, tokens, 11);
        var wx = Interleave(w, rows, cols);
        var batched = new float[tokens * rows];
        var single = new float[rows];
        fixed (byte* pw = wx) fixed (byte* pa = act) fixed (float* pb = batched) fixed (float* ps = single)
        {
            Q4KInterleaved.Compute(pw, cols, pa, stride, tokens, pb, rows, 0, rows / 16);
            for (int t = 0; t < tokens; t++)
            {
                Q4KInterleaved.Compute(pw, cols, pa + t * stride, stride, 1, ps, rows, 0, rows / 16);
                for (int r = 0; r < rows; r++)
                    Assert.True(BitConverter.SingleToInt32Bits(single[r]) == BitConverter.SingleToInt32Bits(batched[t * rows + r]),
                        $"token {t} row {r}: alone {single[r]} vs batched {batched[t * rows + r]}");
            }
        }
    }

    /// <summary>
    /// Through WeightMatrix, as the models use it: row ranges that start and end inside a group (the worker pool's
    /// chunks), decoded rows, and whole-model logits, against the same file loaded without re-laying.
    /// </summary>
    [Fact]
    public void Weight_matrix_rows_and_model_logits_agree_with_the_file_layout()
    {
        using var plainFile = GgufFile.Open(RandomQwen2.Path_);
        using var packedFile = GgufFile.Open(RandomQwen2.Path_);
        plainFile.RepackWeights = false;
        var info = plainFile.GetTensor("blk.0.ffn_gate.weight");
        var plain = new WeightMatrix(plainFile, info);
        var packed = new WeightMatrix(packedFile, packedFile.GetTensor(info.Name));
        Assert.False(plain.IsInterleaved);
        Assert.Equal(Q4KInterleaved.IsSupported, packed.IsInterleaved);

        var a = new float[plain.Cols];
        var b = new float[plain.Cols];
        foreach (int r in new[] { 0, 15, 16, 200, plain.Rows - 1 })
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
        int[] prompt = [1, 7, 42, 99, 3, 250, 17, 8, 64];
        var s1 = m1.CreateState(32, KvCacheType.F32);
        var s2 = m2.CreateState(32, KvCacheType.F32);
        var l1 = m1.Forward(s1, prompt).ToArray();
        var l2 = m2.Forward(s2, prompt).ToArray();
        for (int step = 0; step < 3; step++)
        {
            float scale = l2.Max(Math.Abs);
            for (int i = 0; i < l1.Length; i++)
                Assert.True(Math.Abs(l1[i] - l2[i]) <= 1e-4f * scale, $"step {step} logit {i}: {l1[i]} vs {l2[i]}");
            l1 = m1.Forward(s1, [5 + step]).ToArray();
            l2 = m2.Forward(s2, [5 + step]).ToArray();
        }
    }
}
