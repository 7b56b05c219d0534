using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors;

/// <summary>
/// The CPU's maker, from CPUID leaf 0's vendor string (EBX, EDX, ECX), for the few choices that differ between them:
/// how far ahead to prefetch, and whether subnormal floats may reach a multiply.
/// </summary>
internal static class CpuVendor
{
    /// <summary>"GenuineIntel".</summary>
    public static readonly bool Intel = Is(0x756E6547, 0x49656E69, 0x6C65746E);

    /// <summary>"AuthenticAMD".</summary>
    public static readonly bool Amd = Is(0x68747541, 0x69746E65, 0x444D4163);

    private static bool Is(int ebx, int edx, int ecx)
    {
        if (!X86Base.IsSupported) return false;
        var (_, b, c, d) = X86Base.CpuId(0, 0);
        return b == ebx && d == edx && c == ecx;
    }
}
