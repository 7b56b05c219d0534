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
}
