using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

/// <summary>
/// Software prefetch for the single-token (decode) kernels: while one block of weights is multiplied, the cache
/// lines about 2 KiB ahead are requested. Decode streams every weight once per token, and one core's kernel alone
/// kept too few misses in flight for the hardware prefetchers: with the weights in DRAM (bench `dram`, Q4_K
/// 8960×1536, one thread) the interleaved kernel read 18.6 GB/s without and 29.9 GB/s with it.
/// SPUTNIK_PREFETCH=0 turns it off (A/B benchmarks).
/// </summary>
internal static unsafe class Prefetch
{
    public static readonly bool Enabled = Sse.IsSupported && Environment.GetEnvironmentVariable("SPUTNIK_PREFETCH") != "0";

    /// <summary>How far ahead of the block being multiplied the requested lines start.</summary>
    public const int DistanceBytes = 2048;

    /// <summary>The distance rounded up to whole blocks of <paramref name="blockBytes"/>, so each call requests one block's lines.</summary>
    public static int Ahead(int blockBytes) => (DistanceBytes + blockBytes - 1) / blockBytes * blockBytes;

    /// <summary>Requests the cache lines of [p, p + bytes) into all cache levels (a prefetch never faults, even past the end of a buffer).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Lines(byte* p, int bytes)
    {
        for (int o = 0; o < bytes; o += 64) Sse.Prefetch0(p + o);
    }
}
