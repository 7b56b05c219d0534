using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sputnik.Models;

namespace Sputnik.Tensors;

// Single-token p·v over a Q8_0 or Q4_0 value cache, reading the blocks where they lie. The tiled path decodes each
// tile of values into a float buffer (block value × scale) and the row loops read it back: at depth 4,096 on a Zen 4
// that decode was about a fifth of Q8_0-cache decode attention. Here the query heads of a GQA group go in the fused
// F16 kernels' blocks of 4, 6, 7 or 8 rows (FlashAttention.FusedHalves.Kernels.cs), and each block of values is
// widened and multiplied by its scale once for all of them: the same product, rounded the same, as the decoded float,
// then one multiply-add a row and position in the tiled order (o·alpha first). So the bits are the tiled path's.
// Independent of the key cache's type: F16 keys with Q8_0 values (`-ctk f16 -ctv q8_0`) take it too.
internal static partial class FlashAttention
{
    /// <summary>Whether single-token attention reads Q8_0/Q4_0 values in place (settable for tests and the bench's A/B: `attn … tiled,fused`).</summary>
    internal static bool FusedBlockValues = true;

    /// <summary>Whether this call's value passes go the fused way: one token, Q8_0 or Q4_0 values in plain rows (not a ring, not shared with the keys), 512- or 256-bit vectors.</summary>
    internal static bool FusesBlockValues(in KvHead keys, in KvHead values, int tokens, int width) =>
        FusedBlockValues && tokens == 1 && KvRowCodec.IsBlockFormat(values.Type) && values.Ring == 0 && !values.SharesRowsWith(keys) &&
        (width == 512 ? Avx512F.IsSupported : width == 256 && Fma.IsSupported) && Avx2.IsSupported;

    /// <summary>
    /// The value pass of one tile for a single token's rows: probabilities at sc.Scores[r·Tile], rescale sc.Alpha[r],
    /// over value positions <paramref name="first"/> … first + n − 1, into sc.SegOut (rows vw apart).
    /// </summary>
    private static unsafe void FusedBlockValueTile(in KvHead values, Scratch sc, int rows, int first, int n, int width)
    {
        int vw = values.Width, nb = vw / KvRowCodec.Block, blockBytes = KvRowCodec.Bytes(values.Type, KvRowCodec.Block), vs = values.RowStride;
        // The tile's block scales, block b of position t at b·Tile + t, converted in one pass (as DecodeBlockTile does).
        ref byte v0 = ref Unsafe.Add(ref MemoryMarshal.GetReference(values.Rows), (nint)first * vs + values.RowOffset);
        ref ushort bits = ref MemoryMarshal.GetArrayDataReference(sc.ScaleBits);
        for (int t = 0; t < n; t++)
        {
            if (!PrefetchValuesWithKeys) PrefetchRow(values, first + t + PrefetchAhead);
            ref byte row = ref Unsafe.Add(ref v0, (nint)t * vs);
            for (int b = 0; b < nb; b++) Unsafe.Add(ref bits, b * Tile + t) = Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref row, b * blockBytes));
        }
        ConvertScales(sc.ScaleBits, sc.ValueScales, nb * Tile, width);
        // Pad rows of the last block: no rescale and zero probabilities, so their (unused) sums stay finite.
        int padded = FusedRowsPadded(rows);
        for (int r = rows; r < padded; r++)
        {
            sc.Alpha[r] = 0f;
            sc.Scores.AsSpan(r * Tile, n).Clear();
        }
        bool q8 = values.Type == KvCacheType.Q8_0;
        fixed (byte* v = &v0)
        fixed (float* d = sc.ValueScales)
        {
            for (int r = 0, block; r < padded; r += block)
            {
                block = FusedBlock(rows - r);
                var job = new BlockValueJob(ref sc.SegOut[r * vw], vw, sc.Alpha.AsSpan(r, block), ref sc.Scores[r * Tile], n, v, vs, blockBytes, d);
                switch (block)
                {
                    case 8: BlockQuantValues<EightRows>(q8, width, job); break;
                    case 7: BlockQuantValues<SevenRows>(q8, width, job); break;
                    case 6: BlockQuantValues<SixRows>(q8, width, job); break;
                    default: BlockQuantValues<FourRows>(q8, width, job); break;
                }
            }
        }
    }

    /// <summary>
    /// One block of rows' p·v: outputs at <see cref="O"/> (vw apart), rescales <see cref="Alpha"/>, probabilities at
    /// <see cref="P"/> (Tile apart), n positions of value rows at <see cref="V"/> (Vs bytes apart, blocks BlockBytes
    /// apart), their scales at <see cref="D"/> (block b of position t at b·Tile + t). Pointers into memory pinned for the tile.
    /// </summary>
    private readonly unsafe ref struct BlockValueJob(ref float o, int vw, ReadOnlySpan<float> alpha, ref float p, int n, byte* v, int vs, int blockBytes, float* d)
    {
        public readonly ref float O = ref o, P = ref p;
        public readonly ReadOnlySpan<float> Alpha = alpha;
        public readonly int Vw = vw, N = n, Vs = vs, BlockBytes = blockBytes;
        public readonly byte* V = v;
        public readonly float* D = d;
    }

    private static void BlockQuantValues<TRows>(bool q8, int width, scoped in BlockValueJob job) where TRows : struct, IFusedRows
    {
        if (width == 512)
        {
            if (q8) QuantAccumulate512<TRows, Q8Values>(job);
            else QuantAccumulate512<TRows, Q4Values>(job);
        }
        else if (q8) QuantAccumulate256<TRows, Q8Values>(job);
        else QuantAccumulate256<TRows, Q4Values>(job);
    }

    /// <summary>A block format's 32 values as integers in float form (the scale not applied), 16 or 8 at a time.</summary>
    private unsafe interface IBlockValues
    {
        /// <summary>Values 16·half … 16·half + 15 of the block at <paramref name="blk"/>.</summary>
        static abstract Vector512<float> Sixteen(byte* blk, int half);

        /// <summary>Values 8·quarter … 8·quarter + 7 of the block at <paramref name="blk"/>.</summary>
        static abstract Vector256<float> Eight(byte* blk, int quarter);
    }

    /// <summary>Q8_0: a scale, then 32 signed bytes.</summary>
    private readonly unsafe struct Q8Values : IBlockValues
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Sixteen(byte* blk, int half) =>
            Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)(blk + 2 + 16 * half))));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Eight(byte* blk, int quarter) =>
            Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32((sbyte*)(blk + 2 + 8 * quarter)));
    }

    /// <summary>Q4_0: a scale, then 16 bytes whose low nibbles are values 0–15 and high nibbles 16–31, each stored +8.</summary>
    private readonly unsafe struct Q4Values : IBlockValues
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Sixteen(byte* blk, int half)
        {
            var packed = Vector128.Load(blk + 2);
            var nibbles = half == 0 ? packed & Vector128.Create((byte)0x0F) : Vector128.ShiftRightLogical(packed, 4);
            return Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(nibbles.AsSByte() - Vector128.Create((sbyte)8)));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Eight(byte* blk, int quarter)
        {
            var packed = Vector128.CreateScalarUnsafe(*(ulong*)(blk + 2 + 8 * (quarter & 1))).AsByte();
            var nibbles = quarter < 2 ? packed & Vector128.Create((byte)0x0F) : Vector128.ShiftRightLogical(packed, 4);
            return Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(nibbles.AsSByte() - Vector128.Create((sbyte)8)));
        }
    }

    /// <summary>512 bits: two blocks (64 columns) a pass for up to six rows, one block for seven or eight.</summary>
    private static unsafe void QuantAccumulate512<TRows, TBlock>(scoped in BlockValueJob job) where TRows : struct, IFusedRows where TBlock : struct, IBlockValues
    {
        int nb = job.Vw / KvRowCodec.Block, b = 0;
        if (TRows.Rows <= 6)
            for (; b + 2 <= nb; b += 2) QuantColumns512<TRows, TBlock, TwoVectors>(job, b);
        for (; b < nb; b++) QuantColumns512<TRows, TBlock, OneVector>(job, b);
    }

    /// <summary>
    /// Blocks b … b + TCols.Count − 1 (TCols counts blocks here, two 16-column vectors each) of a block of rows:
    /// o_r = o_r·alpha_r, then o_r += p_r[t]·(value·scale) for each position t in order.
    /// </summary>
    private static unsafe void QuantColumns512<TRows, TBlock, TCols>(scoped in BlockValueJob job, int b)
        where TRows : struct, IFusedRows where TBlock : struct, IBlockValues where TCols : struct, IColumnVectors
    {
        int R = TRows.Rows, B = TCols.Count, vw = job.Vw, vs = job.Vs;
        var alpha = job.Alpha;
        ref float o0 = ref Unsafe.Add(ref job.O, b * KvRowCodec.Block);
        ref float p = ref job.P;
        byte* v = job.V + b * job.BlockBytes, v1 = v + job.BlockBytes;
        float* d = job.D + b * Tile;
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector512<float> a30 = default, a31 = default, a32 = default, a33 = default;
        Vector512<float> a40 = default, a41 = default, a42 = default, a43 = default;
        Vector512<float> a50 = default, a51 = default, a52 = default, a53 = default;
        Vector512<float> a60 = default, a61 = default;
        Vector512<float> a70 = default, a71 = default;
        a00 = Vector512.LoadUnsafe(ref o0) * alpha[0]; a01 = Vector512.LoadUnsafe(ref o0, 16) * alpha[0];
        if (B > 1) { a02 = Vector512.LoadUnsafe(ref o0, 32) * alpha[0]; a03 = Vector512.LoadUnsafe(ref o0, 48) * alpha[0]; }
        a10 = Vector512.LoadUnsafe(ref o0, (nuint)vw) * alpha[1]; a11 = Vector512.LoadUnsafe(ref o0, (nuint)(vw + 16)) * alpha[1];
        if (B > 1) { a12 = Vector512.LoadUnsafe(ref o0, (nuint)(vw + 32)) * alpha[1]; a13 = Vector512.LoadUnsafe(ref o0, (nuint)(vw + 48)) * alpha[1]; }
        a20 = Vector512.LoadUnsafe(ref o0, (nuint)(2 * vw)) * alpha[2]; a21 = Vector512.LoadUnsafe(ref o0, (nuint)(2 * vw + 16)) * alpha[2];
        if (B > 1) { a22 = Vector512.LoadUnsafe(ref o0, (nuint)(2 * vw + 32)) * alpha[2]; a23 = Vector512.LoadUnsafe(ref o0, (nuint)(2 * vw + 48)) * alpha[2]; }
        a30 = Vector512.LoadUnsafe(ref o0, (nuint)(3 * vw)) * alpha[3]; a31 = Vector512.LoadUnsafe(ref o0, (nuint)(3 * vw + 16)) * alpha[3];
        if (B > 1) { a32 = Vector512.LoadUnsafe(ref o0, (nuint)(3 * vw + 32)) * alpha[3]; a33 = Vector512.LoadUnsafe(ref o0, (nuint)(3 * vw + 48)) * alpha[3]; }
        if (R > 4)
        {
            a40 = Vector512.LoadUnsafe(ref o0, (nuint)(4 * vw)) * alpha[4]; a41 = Vector512.LoadUnsafe(ref o0, (nuint)(4 * vw + 16)) * alpha[4];
            if (B > 1) { a42 = Vector512.LoadUnsafe(ref o0, (nuint)(4 * vw + 32)) * alpha[4]; a43 = Vector512.LoadUnsafe(ref o0, (nuint)(4 * vw + 48)) * alpha[4]; }
            a50 = Vector512.LoadUnsafe(ref o0, (nuint)(5 * vw)) * alpha[5]; a51 = Vector512.LoadUnsafe(ref o0, (nuint)(5 * vw + 16)) * alpha[5];
            if (B > 1) { a52 = Vector512.LoadUnsafe(ref o0, (nuint)(5 * vw + 32)) * alpha[5]; a53 = Vector512.LoadUnsafe(ref o0, (nuint)(5 * vw + 48)) * alpha[5]; }
        }
        if (R > 6)
        {
            a60 = Vector512.LoadUnsafe(ref o0, (nuint)(6 * vw)) * alpha[6]; a61 = Vector512.LoadUnsafe(ref o0, (nuint)(6 * vw + 16)) * alpha[6];
            if (R > 7) { a70 = Vector512.LoadUnsafe(ref o0, (nuint)(7 * vw)) * alpha[7]; a71 = Vector512.LoadUnsafe(ref o0, (nuint)(7 * vw + 16)) * alpha[7]; }
        }
        for (int t = 0; t < job.N; t++)
        {
            byte* vt = v + (nint)t * vs;
            var s = Vector512.Create(d[t]);
            var y0 = TBlock.Sixteen(vt, 0) * s;
            var y1 = TBlock.Sixteen(vt, 1) * s;
            Vector512<float> y2 = default, y3 = default;
            if (B > 1)
            {
                s = Vector512.Create(d[Tile + t]);
                y2 = TBlock.Sixteen(v1 + (nint)t * vs, 0) * s;
                y3 = TBlock.Sixteen(v1 + (nint)t * vs, 1) * s;
            }
            ref float pt = ref Unsafe.Add(ref p, t);
            var b0 = Vector512.Create(pt);
            a00 = Vector512.FusedMultiplyAdd(y0, b0, a00); a01 = Vector512.FusedMultiplyAdd(y1, b0, a01);
            if (B > 1) { a02 = Vector512.FusedMultiplyAdd(y2, b0, a02); a03 = Vector512.FusedMultiplyAdd(y3, b0, a03); }
            var b1 = Vector512.Create(Unsafe.Add(ref pt, Tile));
            a10 = Vector512.FusedMultiplyAdd(y0, b1, a10); a11 = Vector512.FusedMultiplyAdd(y1, b1, a11);
            if (B > 1) { a12 = Vector512.FusedMultiplyAdd(y2, b1, a12); a13 = Vector512.FusedMultiplyAdd(y3, b1, a13); }
            var b2 = Vector512.Create(Unsafe.Add(ref pt, 2 * Tile));
            a20 = Vector512.FusedMultiplyAdd(y0, b2, a20); a21 = Vector512.FusedMultiplyAdd(y1, b2, a21);
            if (B > 1) { a22 = Vector512.FusedMultiplyAdd(y2, b2, a22); a23 = Vector512.FusedMultiplyAdd(y3, b2, a23); }
            var b3 = Vector512.Create(Unsafe.Add(ref pt, 3 * Tile));
            a30 = Vector512.FusedMultiplyAdd(y0, b3, a30); a31 = Vector512.FusedMultiplyAdd(y1, b3, a31);
            if (B > 1) { a32 = Vector512.FusedMultiplyAdd(y2, b3, a32); a33 = Vector512.FusedMultiplyAdd(y3, b3, a33); }
            if (R > 4)
            {
                var b4 = Vector512.Create(Unsafe.Add(ref pt, 4 * Tile));
                a40 = Vector512.FusedMultiplyAdd(y0, b4, a40); a41 = Vector512.FusedMultiplyAdd(y1, b4, a41);
                if (B > 1) { a42 = Vector512.FusedMultiplyAdd(y2, b4, a42); a43 = Vector512.FusedMultiplyAdd(y3, b4, a43); }
                var b5 = Vector512.Create(Unsafe.Add(ref pt, 5 * Tile));
                a50 = Vector512.FusedMultiplyAdd(y0, b5, a50); a51 = Vector512.FusedMultiplyAdd(y1, b5, a51);
                if (B > 1) { a52 = Vector512.FusedMultiplyAdd(y2, b5, a52); a53 = Vector512.FusedMultiplyAdd(y3, b5, a53); }
            }
            if (R > 6)
            {
                var b6 = Vector512.Create(Unsafe.Add(ref pt, 6 * Tile));
                a60 = Vector512.FusedMultiplyAdd(y0, b6, a60); a61 = Vector512.FusedMultiplyAdd(y1, b6, a61);
                if (R > 7)
                {
                    var b7 = Vector512.Create(Unsafe.Add(ref pt, 7 * Tile));
                    a70 = Vector512.FusedMultiplyAdd(y0, b7, a70); a71 = Vector512.FusedMultiplyAdd(y1, b7, a71);
                }
            }
        }
        a00.StoreUnsafe(ref o0); a01.StoreUnsafe(ref o0, 16);
        if (B > 1) { a02.StoreUnsafe(ref o0, 32); a03.StoreUnsafe(ref o0, 48); }
        a10.StoreUnsafe(ref o0, (nuint)vw); a11.StoreUnsafe(ref o0, (nuint)(vw + 16));
        if (B > 1) { a12.StoreUnsafe(ref o0, (nuint)(vw + 32)); a13.StoreUnsafe(ref o0, (nuint)(vw + 48)); }
        a20.StoreUnsafe(ref o0, (nuint)(2 * vw)); a21.StoreUnsafe(ref o0, (nuint)(2 * vw + 16));
        if (B > 1) { a22.StoreUnsafe(ref o0, (nuint)(2 * vw + 32)); a23.StoreUnsafe(ref o0, (nuint)(2 * vw + 48)); }
        a30.StoreUnsafe(ref o0, (nuint)(3 * vw)); a31.StoreUnsafe(ref o0, (nuint)(3 * vw + 16));
        if (B > 1) { a32.StoreUnsafe(ref o0, (nuint)(3 * vw + 32)); a33.StoreUnsafe(ref o0, (nuint)(3 * vw + 48)); }
        if (R > 4)
        {
            a40.StoreUnsafe(ref o0, (nuint)(4 * vw)); a41.StoreUnsafe(ref o0, (nuint)(4 * vw + 16));
            if (B > 1) { a42.StoreUnsafe(ref o0, (nuint)(4 * vw + 32)); a43.StoreUnsafe(ref o0, (nuint)(4 * vw + 48)); }
            a50.StoreUnsafe(ref o0, (nuint)(5 * vw)); a51.StoreUnsafe(ref o0, (nuint)(5 * vw + 16));
            if (B > 1) { a52.StoreUnsafe(ref o0, (nuint)(5 * vw + 32)); a53.StoreUnsafe(ref o0, (nuint)(5 * vw + 48)); }
        }
        if (R > 6)
        {
            a60.StoreUnsafe(ref o0, (nuint)(6 * vw)); a61.StoreUnsafe(ref o0, (nuint)(6 * vw + 16));
            if (R > 7) { a70.StoreUnsafe(ref o0, (nuint)(7 * vw)); a71.StoreUnsafe(ref o0, (nuint)(7 * vw + 16)); }
        }
    }

    /// <summary>256 bits: each block's 32 columns as two passes of two 8-column vectors for up to six rows, four of one for seven or eight.</summary>
    private static unsafe void QuantAccumulate256<TRows, TBlock>(scoped in BlockValueJob job) where TRows : struct, IFusedRows where TBlock : struct, IBlockValues
    {
        int nb = job.Vw / KvRowCodec.Block;
        for (int b = 0; b < nb; b++)
        {
            if (TRows.Rows <= 6)
            {
                QuantColumns256<TRows, TBlock, TwoVectors>(job, b, 0);
                QuantColumns256<TRows, TBlock, TwoVectors>(job, b, 2);
                continue;
            }
            for (int quarter = 0; quarter < 4; quarter++) QuantColumns256<TRows, TBlock, OneVector>(job, b, quarter);
        }
    }

    /// <summary>Quarters <paramref name="quarter"/> … + TCols.Count − 1 (8 columns each) of block b, as <see cref="QuantColumns512{TRows, TBlock, TCols}"/> does them.</summary>
    private static unsafe void QuantColumns256<TRows, TBlock, TCols>(scoped in BlockValueJob job, int b, int quarter)
        where TRows : struct, IFusedRows where TBlock : struct, IBlockValues where TCols : struct, IColumnVectors
    {
        int R = TRows.Rows, C = TCols.Count, vw = job.Vw, vs = job.Vs;
        var alpha = job.Alpha;
        ref float o0 = ref Unsafe.Add(ref job.O, b * KvRowCodec.Block + 8 * quarter);
        ref float p = ref job.P;
        byte* v = job.V + b * job.BlockBytes;
        float* d = job.D + b * Tile;
        Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
        Vector256<float> a40 = default, a41 = default, a50 = default, a51 = default, a60 = default, a70 = default;
        a00 = Vector256.LoadUnsafe(ref o0) * alpha[0]; if (C > 1) a01 = Vector256.LoadUnsafe(ref o0, 8) * alpha[0];
        a10 = Vector256.LoadUnsafe(ref o0, (nuint)vw) * alpha[1]; if (C > 1) a11 = Vector256.LoadUnsafe(ref o0, (nuint)(vw + 8)) * alpha[1];
        a20 = Vector256.LoadUnsafe(ref o0, (nuint)(2 * vw)) * alpha[2]; if (C > 1) a21 = Vector256.LoadUnsafe(ref o0, (nuint)(2 * vw + 8)) * alpha[2];
        a30 = Vector256.LoadUnsafe(ref o0, (nuint)(3 * vw)) * alpha[3]; if (C > 1) a31 = Vector256.LoadUnsafe(ref o0, (nuint)(3 * vw + 8)) * alpha[3];
        if (R > 4)
        {
            a40 = Vector256.LoadUnsafe(ref o0, (nuint)(4 * vw)) * alpha[4]; if (C > 1) a41 = Vector256.LoadUnsafe(ref o0, (nuint)(4 * vw + 8)) * alpha[4];
            a50 = Vector256.LoadUnsafe(ref o0, (nuint)(5 * vw)) * alpha[5]; if (C > 1) a51 = Vector256.LoadUnsafe(ref o0, (nuint)(5 * vw + 8)) * alpha[5];
        }
        if (R > 6)
        {
            a60 = Vector256.LoadUnsafe(ref o0, (nuint)(6 * vw)) * alpha[6];
            if (R > 7) a70 = Vector256.LoadUnsafe(ref o0, (nuint)(7 * vw)) * alpha[7];
        }
        for (int t = 0; t < job.N; t++)
        {
            byte* vt = v + (nint)t * vs;
            var s = Vector256.Create(d[t]);
            var y0 = TBlock.Eight(vt, quarter) * s;
            var y1 = C > 1 ? TBlock.Eight(vt, quarter + 1) * s : default;
            ref float pt = ref Unsafe.Add(ref p, t);
            var w = Vector256.Create(pt);
            a00 = Vector256.FusedMultiplyAdd(y0, w, a00); if (C > 1) a01 = Vector256.FusedMultiplyAdd(y1, w, a01);
            w = Vector256.Create(Unsafe.Add(ref pt, Tile));
            a10 = Vector256.FusedMultiplyAdd(y0, w, a10); if (C > 1) a11 = Vector256.FusedMultiplyAdd(y1, w, a11);
            w = Vector256.Create(Unsafe.Add(ref pt, 2 * Tile));
            a20 = Vector256.FusedMultiplyAdd(y0, w, a20); if (C > 1) a21 = Vector256.FusedMultiplyAdd(y1, w, a21);
            w = Vector256.Create(Unsafe.Add(ref pt, 3 * Tile));
            a30 = Vector256.FusedMultiplyAdd(y0, w, a30); if (C > 1) a31 = Vector256.FusedMultiplyAdd(y1, w, a31);
            if (R > 4)
            {
                w = Vector256.Create(Unsafe.Add(ref pt, 4 * Tile));
                a40 = Vector256.FusedMultiplyAdd(y0, w, a40); if (C > 1) a41 = Vector256.FusedMultiplyAdd(y1, w, a41);
                w = Vector256.Create(Unsafe.Add(ref pt, 5 * Tile));
                a50 = Vector256.FusedMultiplyAdd(y0, w, a50); if (C > 1) a51 = Vector256.FusedMultiplyAdd(y1, w, a51);
            }
            if (R > 6)
            {
                a60 = Vector256.FusedMultiplyAdd(y0, Vector256.Create(Unsafe.Add(ref pt, 6 * Tile)), a60);
                if (R > 7) a70 = Vector256.FusedMultiplyAdd(y0, Vector256.Create(Unsafe.Add(ref pt, 7 * Tile)), a70);
            }
        }
        a00.StoreUnsafe(ref o0); if (C > 1) a01.StoreUnsafe(ref o0, 8);
        a10.StoreUnsafe(ref o0, (nuint)vw); if (C > 1) a11.StoreUnsafe(ref o0, (nuint)(vw + 8));
        a20.StoreUnsafe(ref o0, (nuint)(2 * vw)); if (C > 1) a21.StoreUnsafe(ref o0, (nuint)(2 * vw + 8));
        a30.StoreUnsafe(ref o0, (nuint)(3 * vw)); if (C > 1) a31.StoreUnsafe(ref o0, (nuint)(3 * vw + 8));
        if (R > 4)
        {
            a40.StoreUnsafe(ref o0, (nuint)(4 * vw)); if (C > 1) a41.StoreUnsafe(ref o0, (nuint)(4 * vw + 8));
            a50.StoreUnsafe(ref o0, (nuint)(5 * vw)); if (C > 1) a51.StoreUnsafe(ref o0, (nuint)(5 * vw + 8));
        }
        if (R > 6)
        {
            a60.StoreUnsafe(ref o0, (nuint)(6 * vw));
            if (R > 7) a70.StoreUnsafe(ref o0, (nuint)(7 * vw));
        }
    }
}
