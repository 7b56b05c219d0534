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

    /// <summary>Positions [first, first + count) of a Q8_0/Q4_0 key head as 8-bit values (Q4_0's nibbles centred) and float block scales.</summary>
    private static void UnpackKeyTile(in KvHead h, int first, int count, Scratch sc)
    {
        int nb = h.Width / KvRowCodec.Block, blockBytes = KvRowCodec.Bytes(h.Type, KvRowCodec.Block);
        int start = h.Row(first), wrap = h.Ring > 0 ? h.Ring : int.MaxValue;
        ref sbyte ints = ref MemoryMarshal.GetArrayDataReference(sc.KeyInts);
        for (int t = 0; t < count; t++)
        {
            int r = start + t;
            PrefetchRow(h, r + PrefetchAhead, nb * blockBytes);
            if (r >= wrap) r -= wrap; // a ring's tile continues at its first row
            var row = h.Rows.Slice(r * h.RowStride + h.RowOffset, nb * blockBytes);
            for (int b = 0; b < nb; b++)
            {
                var blk = row.Slice(b * blockBytes, blockBytes);
                sc.KeyScales[t * nb + b] = (float)MemoryMarshal.Read<Half>(blk);
                ref sbyte dst = ref Unsafe.Add(ref ints, t * h.Width + b * KvRowCodec.Block);
                if (h.Type == KvCacheType.Q8_0)
                {
                    MemoryMarshal.Cast<byte, sbyte>(blk.Slice(2, KvRowCodec.Block)).CopyTo(MemoryMarshal.CreateSpan(ref dst, KvRowCodec.Block));
                }
                else
                {
                    var packed = Vector128.Create(blk.Slice(2, 16));
                    (packed & Vector128.Create((byte)0x0F)).AsSByte().Subtract8().StoreUnsafe(ref dst);
                    Vector128.ShiftRightLogical(packed, 4).AsSByte().Subtract8().StoreUnsafe(ref dst, 16);
                }
            }
        }
    }

    private static Vector128<sbyte> Subtract8(this Vector128<sbyte> v) => v - Vector128.Create((sbyte)8);

    /// <summary>Q8_0 query row r · quantized key t of the tile: Σ over blocks of (exact integer dot) · d_k · d_q, blocks in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float QuantDot(Scratch sc, int t, int r, int nb, int width)
    {
        const int B = KvRowCodec.Block;
        ref sbyte k = ref MemoryMarshal.GetArrayDataReference(sc.KeyInts);
        ref sbyte q = ref MemoryMarshal.GetArrayDataReference(sc.QueryInts);
        int kw = nb * B;
        float s = 0;
        for (int b = 0; b < nb; b++)
        {
            int dot = IntDot32(ref Unsafe.Add(ref k, t * kw + b * B), ref Unsafe.Add(ref q, r * kw + b * B), width);
            s += dot * sc.KeyScales[t * nb + b] * sc.QueryScales[r * nb + b];
        }
        return s;
    }

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
