using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Sputnik.Gguf;

namespace Sputnik.Models;

/// <summary>
/// Slabs for the MoE experts re-laid at their first use (<see cref="WeightMatrix.EnsureRelaid"/>), one arena per model
/// file. An expert matrix is about 1 MB, too small for a 2 MiB page of its own, so each one in its own array ran on
/// 4 KiB pages: decode streamed half of Qwen3-30B-A3B's bytes through a page walk every 4 KiB. Matrices are placed
/// one after another in 2 MiB-aligned slabs advised for huge pages (<see cref="Tensors.HugePages"/>). A slab is
/// reserved, not resident: only the pages of the experts re-laid so far are touched, so memory still follows the
/// experts actually used. A matrix larger than a slab has an array of its own (<see cref="Holds"/>), large enough
/// for huge pages by itself.
/// </summary>
internal sealed unsafe class RelayArena
{
    private const long PageBytes = 2L << 20;
    private const long MinSlabBytes = 4L << 20, MaxSlabBytes = 64L << 20;

    private static readonly ConditionalWeakTable<GgufFile, RelayArena> Arenas = new();

    private readonly Lock _lock = new();
    private byte[]? _slab;
    private long _next, _end; // offsets into _slab

    /// <summary>Whether a matrix of <paramref name="bytes"/> goes into a slab.</summary>
    public static bool Holds(long bytes) => bytes <= MaxSlabBytes;

    /// <summary>The arena of a model file's re-laid experts.</summary>
    public static RelayArena Of(GgufFile file) => Arenas.GetValue(file, _ => new RelayArena());

    /// <summary>
    /// <paramref name="bytes"/> bytes, 64-byte aligned, at <paramref name="offset"/> in the returned pinned array, which
    /// the caller keeps alive (the slab lives as long as one of its matrices does).
    /// </summary>
    public byte[] Rent(long bytes, out int offset)
    {
        if (!Holds(bytes)) throw new ArgumentOutOfRangeException(nameof(bytes), $"{bytes} bytes exceed a slab of {MaxSlabBytes}");
        long need = (bytes + 63) & ~63L;
        lock (_lock)
        {
            if (_slab == null || _next + need > _end)
            {
                // About 32 matrices a slab (within 4–64 MiB), and room to start on a 2 MiB boundary.
                long slab = (Math.Clamp(32 * need, MinSlabBytes, MaxSlabBytes) + PageBytes - 1) & ~(PageBytes - 1);
                _slab = GC.AllocateUninitializedArray<byte>(checked((int)(slab + PageBytes)), pinned: true);
                byte* p = (byte*)Marshal.UnsafeAddrOfPinnedArrayElement(_slab, 0);
                _next = (((long)p + PageBytes - 1) & ~(PageBytes - 1)) - (long)p;
                _end = _next + slab;
                Tensors.HugePages.Advise(p + _next, slab); // before the first write
            }
            offset = checked((int)_next);
            _next += need;
            return _slab;
        }
    }
}
