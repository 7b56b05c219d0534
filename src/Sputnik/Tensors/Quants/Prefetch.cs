using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

/// <summary>
/// Software prefetch for the single-token (decode) kernels, and for the four-token ones on their first pass over a
/// group (batched decode; their weights come from DRAM there): while one block of weights is multiplied, the cache
/// lines some KiB ahead are requested. Decode streams every weight once per token, and one core's kernel alone
/// kept too few misses in flight for the hardware prefetchers. The four-token and F16/BF16 kernels' requests go to L2
/// on every core (<see cref="WideIntoL2"/>); the single-token quantized kernels' distance and level depend on the core:
/// <list type="bullet">
/// <item>AMD EPYC (measured 2026-12-05): into L1 2 KiB ahead. With the weights in DRAM (bench <c>dram</c>, Q4_K
/// 8960×1536, one thread) the interleaved kernel read 18.6 GB/s without and 29.9 GB/s with it.</item>
/// <item>Intel (Xeon, family 6 model 207, measured 2026-12-06): into L2 8 KiB ahead. An L1 prefetch is held by
/// the core's few L1 fill buffers, an L2 one by the larger L2 queue, so more lines are in flight per core; qwen2-1.5B
/// Q4_K_M decode (2 threads, 6 alternating rounds, median) went 16.1 → 18.5 t/s against L1 at 2 KiB, 12.0 without.</item>
/// </list>
/// SPUTNIK_PREFETCH=0 turns it off; SPUTNIK_PREFETCH_DIST=BYTES and SPUTNIK_PREFETCH_LEVEL=1|2 override the choice
/// (A/B benchmarks).
/// </summary>
internal static unsafe class Prefetch
{
    public static readonly bool Enabled = Sse.IsSupported && Environment.GetEnvironmentVariable("SPUTNIK_PREFETCH") != "0";

    internal static readonly bool IsIntel = X86Base.IsSupported && IntelVendor();

    /// <summary>How far ahead of the block being multiplied the requested lines start.</summary>
    public static readonly int DistanceBytes =
        int.TryParse(Environment.GetEnvironmentVariable("SPUTNIK_PREFETCH_DIST"), out int d) && d is >= 64 and <= 1 << 20 ? d
        : IsIntel ? 8192 : 2048;

    /// <summary>True: prefetch into L2 (prefetcht1); false: into every level (prefetcht0).</summary>
    public static readonly bool IntoL2 = Environment.GetEnvironmentVariable("SPUTNIK_PREFETCH_LEVEL") switch
    {
        "1" => false,
        "2" => true,
        _ => IsIntel,
    };

    /// <summary>
    /// Where the prefetches that feed more than one single-token product go: the F16/BF16 decode kernels'
    /// (<see cref="HalfWeights"/>: their next group of four rows, 12–72 KB ahead for qwen2-1.5B's matrices, a whole L1
    /// or more) and the four-token kernels' on their first pass over a group (batched decode). Into L2 on every core;
    /// SPUTNIK_PREFETCH_LEVEL=1 brings back L1 for an A/B. On a Zen 4, alternating: `Sputnik.Bench dram F16 2 8960
    /// 1536 16`, scaled halves ÷ streaming sum, into L1 0.70 / 0.73, into L2 1.09 / 1.04; eight streams (`batch …
    /// qwen2-1.5b-Q4_K_M.gguf 2 32 1 8`) 85.9 / 82.8 → 112.4 / 110.6 t/s. The single-token quantized kernels, 2 KiB
    /// ahead, kept L1 there (`dram Q4_K 2 8960 1536 48`, kernel ÷ streaming 0.99 / 1.05 against 0.86 / 0.91 into L2).
    /// </summary>
    public static readonly bool WideIntoL2 = Environment.GetEnvironmentVariable("SPUTNIK_PREFETCH_LEVEL") != "1";

    /// <summary>Requests the line at p for an F16/BF16 decode kernel (<see cref="WideIntoL2"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WideLine(void* p) => Line(p, WideIntoL2);

    /// <summary>Requests the cache lines of [p, p + bytes) for a four-token kernel's first pass (<see cref="WideIntoL2"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WideLines(byte* p, int bytes) => Lines(p, bytes, WideIntoL2);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Lines(byte* p, int bytes, bool intoL2)
    {
        for (int o = 0; o < bytes; o += 64) Line(p + o, intoL2); // the level is a static readonly: folded, no branch per line
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Line(void* p, bool intoL2)
    {
        if (intoL2) Sse.Prefetch1(p);
        else Sse.Prefetch0(p);
    }

    /// <summary>The distance rounded up to whole blocks of <paramref name="blockBytes"/>, so each call requests one block's lines.</summary>
    public static int Ahead(int blockBytes) => (DistanceBytes + blockBytes - 1) / blockBytes * blockBytes;

    /// <summary>Requests the cache lines of [p, p + bytes) (a prefetch never faults, even past the end of a buffer).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Lines(byte* p, int bytes) => Lines(p, bytes, IntoL2);

    /// <summary>
    /// Requests the lines of part <paramref name="part"/> of <paramref name="parts"/> of the block of
    /// <paramref name="bytes"/> at p. A kernel whose block spans many lines (Q4_K: 36 for a group of 16 rows, Q6_K:
    /// 53) requests a part before each part of its work rather than the whole block at once. Our reading of why that is
    /// faster (not measured directly; this VM has no hardware counters): a burst of 36–53 requests holds the core's
    /// line-fill buffers, and the block's own loads wait behind them. Measured (Intel
    /// Xeon, `Sputnik.Bench dram Q4_K 1|2 8960 1536 48`, three alternating rounds, kernel ÷ streaming sum): one
    /// thread 0.89 / 0.89 / 0.90 all at once against 0.96 / 0.95 / 0.95 in four parts; two threads 0.71 / 0.77 / 0.61
    /// against 0.81 / 0.77 / 0.82.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Part(byte* p, int bytes, int part, int parts)
    {
        int from = bytes * part / parts;
        Lines(p + from, bytes * (part + 1) / parts - from);
    }

    /// <summary>CPUID leaf 0's vendor string is "GenuineIntel" (EBX, EDX, ECX).</summary>
    private static bool IntelVendor()
    {
        var (_, ebx, ecx, edx) = X86Base.CpuId(0, 0);
        return ebx == 0x756E6547 && edx == 0x49656E69 && ecx == 0x6C65746E;
    }
}
