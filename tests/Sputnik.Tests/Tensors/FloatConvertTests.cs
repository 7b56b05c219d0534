using System.Runtime.Intrinsics;
using Sputnik.Tensors.Quants;
using Xunit;

namespace Sputnik.Tests.Tensors;

public class FloatConvertTests
{
    public static IEnumerable<object[]> Widths()
    {
        yield return [0];
        if (Vector256.IsHardwareAccelerated) yield return [256];
        if (Vector512.IsHardwareAccelerated) yield return [512];
    }

    /// <summary>All 65,536 half bit patterns (with an odd count so every path's tail runs) against the runtime's exact conversion.</summary>
    [Theory]
    [MemberData(nameof(Widths))]
    public unsafe void HalfToFloat_is_exact_for_every_bit_pattern(int width)
    {
        const int n = 65536 + 3;
        var src = new ushort[n];
        for (int i = 0; i < n; i++) src[i] = (ushort)i;
        var dst = new float[n];
        fixed (ushort* s = src)
        fixed (float* d = dst)
            FloatConvert.HalfToFloat(s, d, n, width);
        for (int i = 0; i < n; i++)
        {
            float expect = (float)BitConverter.UInt16BitsToHalf(src[i]);
            Assert.True(BitConverter.SingleToInt32Bits(expect) == BitConverter.SingleToInt32Bits(dst[i]),
                $"width {width}: half 0x{src[i]:X4} gave {dst[i]} (0x{BitConverter.SingleToInt32Bits(dst[i]):X8}), expected {expect} (0x{BitConverter.SingleToInt32Bits(expect):X8})");
        }
    }

    /// <summary>Both 8-lane finite forms (the min one, and the multiply one AMD cores run) on every finite half, bit for bit.</summary>
    [Fact]
    public void Both_finite_forms_are_exact_for_every_finite_half()
    {
        if (!Vector256.IsHardwareAccelerated) Assert.Skip("needs 256-bit vectors");
        var halves = Enumerable.Range(0, 65536).Select(i => (ushort)i).Where(h => (h & 0x7C00) != 0x7C00).ToArray();
        Assert.Equal(2 * 31 * 1024, halves.Length);
        for (int i = 0; i < halves.Length; i += 8)
        {
            var v = Vector128.Create(halves.AsSpan(i, 8));
            var byMin = FloatConvert.FiniteHalfToFloat256(v);
            var byMultiply = FloatConvert.FiniteHalfToFloat256ByMultiply(v);
            for (int j = 0; j < 8; j++)
            {
                int expect = BitConverter.SingleToInt32Bits((float)BitConverter.UInt16BitsToHalf(halves[i + j]));
                Assert.True(expect == BitConverter.SingleToInt32Bits(byMin[j]), $"min form, half 0x{halves[i + j]:X4}: {byMin[j]}");
                Assert.True(expect == BitConverter.SingleToInt32Bits(byMultiply[j]), $"multiply form, half 0x{halves[i + j]:X4}: {byMultiply[j]}");
            }
        }
    }
}
