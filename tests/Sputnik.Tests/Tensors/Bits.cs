namespace Sputnik.Tests.Tensors;

/// <summary>Floats as their bit patterns, so an equality assertion tells −0 from +0 (xunit's float equality does not).</summary>
internal static class Bits
{
    public static int[] Of(ReadOnlySpan<float> x)
    {
        var bits = new int[x.Length];
        for (int i = 0; i < x.Length; i++) bits[i] = BitConverter.SingleToInt32Bits(x[i]);
        return bits;
    }
}
