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

    /// <summary>Every normal half's bits (exponent 1…30, both signs: 61,440), in order.</summary>
    internal static List<ushort> NormalHalves()
    {
        var normal = new List<ushort>();
        for (int h = 0; h < 65536; h++)
            if ((h & 0x7C00) != 0 && (h & 0x7C00) != 0x7C00) normal.Add((ushort)h);
        Assert.Equal(61440, normal.Count);
        return normal;
    }

    /// <summary>
    /// The 4-operation conversion of normal halves, 16 and 8 lanes, against the runtime's exact conversion for all
    /// 61,440 normal halves (software vectors where the CPU lacks the width, so every CI path checks both).
    /// </summary>
    [Fact]
    public void Normal_half_conversions_are_exact_for_every_normal_half()
    {
        var halves = NormalHalves().Select(h => (short)h).ToArray();
        for (int i = 0; i < halves.Length; i += 16)
        {
            var wide = FloatConvert.NormalHalfToFloat512(Vector256.Create(halves, i));
            for (int j = 0; j < 16; j++)
            {
                float expect = (float)BitConverter.Int16BitsToHalf(halves[i + j]);
                float narrow = FloatConvert.NormalHalfToFloat256(Vector128.Create(halves, i + j / 8 * 8)).GetElement(j % 8);
                Assert.True(BitConverter.SingleToInt32Bits(expect) == BitConverter.SingleToInt32Bits(wide.GetElement(j)),
                    $"16 lanes: half 0x{(ushort)halves[i + j]:X4} gave {wide.GetElement(j)}, expected {expect}");
                Assert.True(BitConverter.SingleToInt32Bits(expect) == BitConverter.SingleToInt32Bits(narrow),
                    $"8 lanes: half 0x{(ushort)halves[i + j]:X4} gave {narrow}, expected {expect}");
            }
        }
    }
}
