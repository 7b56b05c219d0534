using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sputnik.Models;
using Sputnik.Tensors.Quants;

namespace Sputnik.Tensors;

// Keys in a block-quantized cache (Q8_0, Q4_0): queries quantized like them, q·k as integer dot products per block.
internal static partial class FlashAttention
{
    /// <summary>Each query row (token i, head j) as Q8_0 (ggml's reference quantizer): 8-bit values and float block scales.</summary>
    private static void QuantizeQueries(ReadOnlySpan<float> q, int qStride, int tokens, int group, int kw, int rotation, Scratch sc)
    {
        int nb = kw / KvRowCodec.Block;
        var blk = sc.QueryBlocks.AsSpan();
        var row = sc.QueryRow.AsSpan(0, kw);
        for (int i = 0; i < tokens; i++)
            for (int j = 0; j < group; j++)
            {
                int r = i * group + j;
                q.Slice(i * qStride + j * kw, kw).CopyTo(row);
                Hadamard.Rotate(row, rotation); // into the keys' rotated space
                for (int b = 0; b < nb; b++)
                {
                    LegacyQuants.QuantQ8_0Activation(row.Slice(b * KvRowCodec.Block, KvRowCodec.Block), blk);
                    sc.QueryScales[r * nb + b] = (float)MemoryMarshal.Read<Half>(blk);
                    MemoryMarshal.Cast<byte, sbyte>(blk[2..]).CopyTo(sc.QueryInts.AsSpan(r * kw + b * KvRowCodec.Block, KvRowCodec.Block));
                }
            }
    }

    /// <summary>Each query row rounded to F16 (for an F16 key cache), rows of kw floats.</summary>
    private static void RoundQueries(ReadOnlySpan<float> q, int qStride, int tokens, int group, int kw, Scratch sc)
    {
        var half = sc.HalfRow.AsSpan(0, kw);
        for (int i = 0; i < tokens; i++)
            for (int j = 0; j < group; j++)
            {
                TensorPrimitives.ConvertToHalf(q.Slice(i * qStride + j * kw, kw), half);
                FloatConvert.HalfToFloat(half, sc.HalfQueries.AsSpan((i * group + j) * kw, kw));
            }
    }

    /// <summary>
    /// A tile's 8-bit key values: key t's block b at First + t·KeyStride + b·BlockStride. Either the cache's own Q8_0
    /// rows, read where they lie (<see cref="InPlace"/>), or the tile unpacked into the scratch's KeyInts.
    /// </summary>
    private readonly ref struct KeyInts(ref sbyte first, int keyStride, int blockStride)
    {
        public readonly ref sbyte First = ref first;
        public readonly int KeyStride = keyStride, BlockStride = blockStride;

        /// <summary>Whether the tile's keys are read in place: Q8_0 rows (32 values after each block's scale) not wrapping a ring.</summary>
        public static bool InPlace(in KvHead h) => h.Type == KvCacheType.Q8_0 && h.Ring == 0;

        /// <summary>The keys of the tile starting at position <paramref name="first"/>, in place or unpacked (see <see cref="InPlace"/>).</summary>
        public static KeyInts Of(in KvHead h, int first, Scratch sc)
        {
            if (!InPlace(h)) return new KeyInts(ref MemoryMarshal.GetArrayDataReference(sc.KeyInts), h.Width, KvRowCodec.Block);
            ref byte row = ref Unsafe.Add(ref MemoryMarshal.GetReference(h.Rows), (nint)h.Row(first) * h.RowStride + h.RowOffset + 2);
            return new KeyInts(ref Unsafe.As<byte, sbyte>(ref row), h.RowStride, KvRowCodec.Bytes(h.Type, KvRowCodec.Block));
        }
    }

    /// <summary>
    /// Positions [first, first + count) of a Q8_0/Q4_0 key head as float block scales (block b of position t at
    /// b·Tile + t) and, unless <see cref="KeyInts.InPlace"/>, 8-bit values (Q4_0's nibbles centred).
    /// </summary>
    private static unsafe void UnpackKeyTile(in KvHead h, int first, int count, Scratch sc, int width, in KvHead companion)
    {
        GatherScales(h, first, count, sc, sc.KeyScales, width, companion, prefetch: true);
        if (KeyInts.InPlace(h)) return;
        int nb = h.Width / KvRowCodec.Block, blockBytes = KvRowCodec.Bytes(h.Type, KvRowCodec.Block);
        int start = h.Row(first), wrap = h.Ring > 0 ? h.Ring : int.MaxValue;
        fixed (byte* rows = h.Rows)
        fixed (sbyte* ints = sc.KeyInts)
        {
            for (int t = 0; t < count; t++)
            {
                int r = start + t;
                if (r >= wrap) r -= wrap; // a ring's tile continues at its first row
                byte* row = rows + (long)r * h.RowStride + h.RowOffset;
                for (int b = 0; b < nb; b++)
                {
                    byte* blk = row + b * blockBytes;
                    sbyte* dst = ints + t * h.Width + b * KvRowCodec.Block;
                    if (h.Type == KvCacheType.Q8_0)
                    {
                        Vector128.Load(blk + 2).Store((byte*)dst);
                        Vector128.Load(blk + 18).Store((byte*)dst + 16);
                    }
                    else
                    {
                        KvRowCodec.Q4_0Values(ref *blk, out var lo, out var hi);
                        lo.Store(dst);
                        hi.Store(dst + 16);
                    }
                }
            }
        }
    }

    /// <summary>
    /// The F16 block scales of positions [first, first + count) of a Q8_0/Q4_0 head (a ring's tile may wrap) as floats
    /// in <paramref name="scales"/>, block b of position t at b·Tile + t, converted in one vector pass. With
    /// <paramref name="prefetch"/>, reading a row requests the rows a tile ahead, the head's and
    /// <paramref name="companion"/>'s (<see cref="RowPrefetch.Ahead"/>; a head with no rows: none).
    /// </summary>
    private static unsafe void GatherScales(in KvHead h, int first, int count, Scratch sc, float[] scales, int width, in KvHead companion, bool prefetch)
    {
        int nb = h.Width / KvRowCodec.Block, blockBytes = KvRowCodec.Bytes(h.Type, KvRowCodec.Block);
        int start = h.Row(first), wrap = h.Ring > 0 ? h.Ring : int.MaxValue;
        fixed (byte* rows = h.Rows, companionRows = companion.Rows)
        fixed (ushort* bits = sc.ScaleBits)
        {
            var ahead = prefetch ? RowPrefetch.Ahead(h, rows, companion, companionRows, start, count) : default;
            for (int t = 0; t < count; t++)
            {
                if (t < ahead.Rows) ahead.Fetch(t);
                int r = start + t;
                if (r >= wrap) r -= wrap; // a ring's tile continues at its first row
                byte* row = rows + (long)r * h.RowStride + h.RowOffset;
                for (int b = 0; b < nb; b++) bits[b * Tile + t] = *(ushort*)(row + b * blockBytes);
            }
        }
        ConvertScales(sc.ScaleBits, scales, nb * Tile, width);
    }

    /// <summary>The first n F16 scales of <paramref name="bits"/> as floats, 8 or 16 at a time (exact, as the scalar conversion).</summary>
    private static unsafe void ConvertScales(ushort[] bits, float[] scales, int n, int width)
    {
        fixed (ushort* b = bits)
        fixed (float* f = scales)
            FloatConvert.HalfToFloat(b, f, n, width >= 256 ? width : 0);
    }

    /// <summary>
    /// Positions [first, first + count) of a Q8_0/Q4_0 value head (not wrapping a ring) as floats in buffer, Width
    /// apart: the tile's block scales are read, converted in one pass, then each block widened.
    /// </summary>
    private static void DecodeBlockTile(in KvHead h, int first, int count, float[] buffer, int width, Scratch sc, in KvHead companion, bool prefetch)
    {
        int nb = h.Width / KvRowCodec.Block, blockBytes = KvRowCodec.Bytes(h.Type, KvRowCodec.Block), start = h.Row(first);
        GatherScales(h, first, count, sc, sc.ValueScales, width, companion, prefetch);
        ref float o = ref MemoryMarshal.GetArrayDataReference(buffer);
        for (int t = 0; t < count; t++)
        {
            ref byte row = ref MemoryMarshal.GetReference(h.Rows.Slice((start + t) * h.RowStride + h.RowOffset, nb * blockBytes));
            for (int b = 0; b < nb; b++)
                KvRowCodec.DecodeBlock(h.Type, ref Unsafe.Add(ref row, b * blockBytes), sc.ValueScales[b * Tile + t],
                    ref Unsafe.Add(ref o, t * h.Width + b * KvRowCodec.Block), width);
        }
    }

    /// <summary>
    /// s[t − from] = (Q8_0 query row r · quantized key t)·scale for keys t in [a, b) of the tile; returns the largest.
    /// Eight keys at a time on AVX2, each key's blocks in the order <see cref="QuantDot"/> takes them (same bits).
    /// </summary>
    private static float QuantScores(Scratch sc, scoped KeyInts keys, int r, int a, int b, int from, int nb, float scale, Span<float> s, int width)
    {
        float max = float.NegativeInfinity;
        int t = a;
        ref float s0 = ref MemoryMarshal.GetReference(s);
        if (width >= 256 && Avx2.IsSupported)
            for (; t + 8 <= b; t += 8)
            {
                var x = QuantDot8(sc, keys, t, r, nb) * scale;
                x.StoreUnsafe(ref Unsafe.Add(ref s0, t - from));
                max = Math.Max(max, MaxLane(x));
            }
        for (; t < b; t++)
        {
            float x = QuantDot(sc, keys, t, r, nb, width) * scale;
            Unsafe.Add(ref s0, t - from) = x;
            max = Math.Max(max, x);
        }
        return max;
    }

    /// <summary>Q8_0 query row r · quantized key t of the tile: Σ over blocks of (exact integer dot) · d_k · d_q, blocks in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float QuantDot(Scratch sc, scoped KeyInts keys, int t, int r, int nb, int width)
    {
        const int B = KvRowCodec.Block;
        ref sbyte k = ref Unsafe.Add(ref keys.First, (nint)t * keys.KeyStride);
        ref sbyte q = ref MemoryMarshal.GetArrayDataReference(sc.QueryInts);
        int kw = nb * B;
        float s = 0;
        for (int b = 0; b < nb; b++)
        {
            int dot = IntDot32(ref Unsafe.Add(ref k, b * keys.BlockStride), ref Unsafe.Add(ref q, r * kw + b * B), width);
            s += dot * sc.KeyScales[b * Tile + t] * sc.QueryScales[r * nb + b];
        }
        return s;
    }

    /// <summary>
    /// <see cref="QuantDot"/> of keys t … t + 7 as one vector. Per block, each key's 32 products go through vpsignb
    /// (the key takes the query's sign; |values| ≤ 127, so no 16-bit pair overflows), vpmaddubsw and vpmaddwd; the
    /// eight keys' integer sums are gathered into one vector by horizontal adds (exact), then scaled as QuantDot does.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> QuantDot8(Scratch sc, scoped KeyInts keys, int t, int r, int nb)
    {
        const int B = KvRowCodec.Block;
        int kw = nb * B, ks = keys.KeyStride;
        ref sbyte k0 = ref Unsafe.Add(ref keys.First, (nint)t * ks);
        ref sbyte q = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(sc.QueryInts), r * kw);
        ref float dk = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(sc.KeyScales), t);
        var s = Vector256<float>.Zero;
        for (int b = 0; b < nb; b++)
        {
            var qb = Vector256.LoadUnsafe(ref Unsafe.Add(ref q, b * B));
            var qa = Avx2.Abs(qb);
            ref sbyte kb = ref Unsafe.Add(ref k0, b * keys.BlockStride);
            var d0 = BlockDot(qa, qb, ref kb);
            var d1 = BlockDot(qa, qb, ref Unsafe.Add(ref kb, ks));
            var d2 = BlockDot(qa, qb, ref Unsafe.Add(ref kb, 2 * ks));
            var d3 = BlockDot(qa, qb, ref Unsafe.Add(ref kb, 3 * ks));
            var d4 = BlockDot(qa, qb, ref Unsafe.Add(ref kb, 4 * ks));
            var d5 = BlockDot(qa, qb, ref Unsafe.Add(ref kb, 5 * ks));
            var d6 = BlockDot(qa, qb, ref Unsafe.Add(ref kb, 6 * ks));
            var d7 = BlockDot(qa, qb, ref Unsafe.Add(ref kb, 7 * ks));
            var h0 = Avx2.HorizontalAdd(Avx2.HorizontalAdd(d0, d1), Avx2.HorizontalAdd(d2, d3));
            var h1 = Avx2.HorizontalAdd(Avx2.HorizontalAdd(d4, d5), Avx2.HorizontalAdd(d6, d7));
            var dots = Avx2.Permute2x128(h0, h1, 0x20) + Avx2.Permute2x128(h0, h1, 0x31);
            s += Vector256.ConvertToSingle(dots) * Vector256.LoadUnsafe(ref dk, (nuint)(b * Tile)) * sc.QueryScales[r * nb + b];
        }
        return s;
    }

    /// <summary>One key block's 32 products with the query block (qa = |q|, qb = q), pair-summed to eight ints.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> BlockDot(Vector256<byte> qa, Vector256<sbyte> qb, ref sbyte k) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(qa, Avx2.Sign(Vector256.LoadUnsafe(ref k), qb)), Vector256<short>.One);

    /// <summary>Exact dot product of 32 signed bytes (|values| ≤ 128, so every product fits 16 bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int IntDot32(ref sbyte a, ref sbyte b, int width)
    {
        if (width >= 256 && Avx2.IsSupported)
        {
            var (al, ah) = Vector256.Widen(Vector256.LoadUnsafe(ref a));
            var (bl, bh) = Vector256.Widen(Vector256.LoadUnsafe(ref b));
            return Vector256.Sum(Avx2.MultiplyAddAdjacent(al, bl) + Avx2.MultiplyAddAdjacent(ah, bh));
        }
        if (width >= 128)
        {
            var acc = Vector128<int>.Zero;
            for (int h = 0; h < 32; h += 16)
            {
                var (al, ah) = Vector128.Widen(Vector128.LoadUnsafe(ref Unsafe.Add(ref a, h)));
                var (bl, bh) = Vector128.Widen(Vector128.LoadUnsafe(ref Unsafe.Add(ref b, h)));
                var (p0, p1) = Vector128.Widen(al * bl);
                var (p2, p3) = Vector128.Widen(ah * bh);
                acc += p0 + p1 + p2 + p3;
            }
            return Vector128.Sum(acc);
        }
        int sum = 0;
        for (int i = 0; i < 32; i++) sum += Unsafe.Add(ref a, i) * Unsafe.Add(ref b, i);
        return sum;
    }
}
