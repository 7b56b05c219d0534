using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sputnik.Models;

namespace Sputnik.Tensors;

// Single-token p·v over a Q8_0 or Q4_0 value cache, reading the blocks where they lie. The tiled path decodes each
// tile of values into a float buffer (block value × scale) and the row loops read it back: at depth 4,096 on a Zen 4
// that decode was about a fifth of Q8_0-cache decode attention. Here the query heads of a GQA group go in the fused
// F16 kernels' blocks of 1–8 rows through the same p·v passes (FlashAttention.FusedValues.cs), and each block
// of values is widened and multiplied by its scale once for all of them: the same product, rounded the same, as the
// decoded float, then one multiply-add a row and position in the tiled order (o·alpha first). So the bits are the
// tiled path's. One thread, depth 4,096, qwen2-1.5B's cache (`attn 4096 Q8_0 2 tiled,fused`): 17.6 → 14.8–14.9 ms a
// token; Q4_0 18.6–18.8 → 15.6.
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
        int vw = values.Width, blockBytes = KvRowCodec.Bytes(values.Type, KvRowCodec.Block), vs = values.RowStride;
        // The values' own rows a tile ahead only when the key pass did not ask for them.
        GatherScales(values, first, n, sc, sc.ValueScales, width, default, prefetch: !PrefetchValuesWithKeys);
        ref byte v0 = ref Unsafe.Add(ref MemoryMarshal.GetReference(values.Rows), (nint)first * vs + values.RowOffset);
        bool q8 = values.Type == KvCacheType.Q8_0;
        fixed (byte* v = &v0)
        fixed (float* d = sc.ValueScales)
        {
            for (int r = 0, block; r < rows; r += block)
            {
                block = FusedBlock(rows - r);
                var job = new BlockValueJob(ref sc.SegOut[r * vw], vw, sc.Alpha.AsSpan(r, block), ref sc.Scores[r * Tile], n, v, vs, blockBytes, d);
                switch (block)
                {
                    case 8: BlockQuantValues<EightRows>(q8, width, job); break;
                    case 7: BlockQuantValues<SevenRows>(q8, width, job); break;
                    case 6: BlockQuantValues<SixRows>(q8, width, job); break;
                    case 5: BlockQuantValues<FiveRows>(q8, width, job); break;
                    case 4: BlockQuantValues<FourRows>(q8, width, job); break;
                    case 3: BlockQuantValues<ThreeRows>(q8, width, job); break;
                    case 2: BlockQuantValues<TwoRows>(q8, width, job); break;
                    default: BlockQuantValues<OneRow>(q8, width, job); break;
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

    /// <summary>Q4_0: a scale, then 16 bytes of nibbles (<see cref="KvRowCodec.Q4_0Values"/> centres them).</summary>
    private readonly unsafe struct Q4Values : IBlockValues
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Sixteen(byte* blk, int half)
        {
            KvRowCodec.Q4_0Values(ref *blk, out var lo, out var hi);
            return Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(half == 0 ? lo : hi));
        }

        /// <summary>
        /// The same layout for 8 values, from the 8 bytes that hold them: <see cref="KvRowCodec.Q4_0Values"/> would load
        /// and centre all 32 for each 8 (the 256-bit passes ran 17 → 31 ms a token at depth 4,096 that way).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Eight(byte* blk, int quarter)
        {
            var packed = Vector128.CreateScalarUnsafe(*(ulong*)(blk + 2 + 8 * (quarter & 1))).AsByte();
            var nibbles = quarter < 2 ? packed & Vector128.Create((byte)0x0F) : Vector128.ShiftRightLogical(packed, 4);
            return Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(nibbles.AsSByte() - Vector128.Create((sbyte)8)));
        }
    }

    /// <summary>
    /// Value blocks at 512 bits: vector i of a pass is half i mod 2 of block i / 2 (a pass starts at a block), times
    /// that block's scale at position t.
    /// </summary>
    private readonly unsafe struct BlockVectors512<TBlock>(byte* v, int vs, int blockBytes, float* d) : IValueVectors512 where TBlock : struct, IBlockValues
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector512<float> Sixteen(int t, int i) =>
            TBlock.Sixteen(v + (nint)t * vs + (i >> 1) * blockBytes, i & 1) * Vector512.Create(d[(i >> 1) * Tile + t]);

        public bool Finite => true;
    }

    /// <summary>Value blocks at 256 bits: vector i of a pass is quarter <paramref name="quarter"/> + i of one block, times its scale at position t.</summary>
    private readonly unsafe struct BlockVectors256<TBlock>(byte* v, int vs, float* d, int quarter) : IValueVectors256 where TBlock : struct, IBlockValues
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector256<float> Eight(int t, int i) => TBlock.Eight(v + (nint)t * vs, quarter + i) * Vector256.Create(d[t]);

        public bool Finite => true;
    }

    /// <summary>512 bits: two blocks (64 columns) a pass for up to six rows, one block for seven or eight (FusedColumns512).</summary>
    private static unsafe void QuantAccumulate512<TRows, TBlock>(scoped in BlockValueJob job) where TRows : struct, IFusedRows where TBlock : struct, IBlockValues
    {
        int nb = job.Vw / KvRowCodec.Block, b = 0;
        if (TRows.Rows <= 6)
            for (; b + 2 <= nb; b += 2)
                FusedColumns512<TRows, FourVectors, BlockVectors512<TBlock>>(ref Unsafe.Add(ref job.O, b * KvRowCodec.Block), job.Vw, job.Alpha, ref job.P, job.N,
                    new(job.V + b * job.BlockBytes, job.Vs, job.BlockBytes, job.D + b * Tile));
        for (; b < nb; b++)
            FusedColumns512<TRows, TwoVectors, BlockVectors512<TBlock>>(ref Unsafe.Add(ref job.O, b * KvRowCodec.Block), job.Vw, job.Alpha, ref job.P, job.N,
                new(job.V + b * job.BlockBytes, job.Vs, job.BlockBytes, job.D + b * Tile));
    }

    /// <summary>256 bits: each block's 32 columns as two passes of two 8-column vectors for up to six rows, four of one for seven or eight (FusedColumns256).</summary>
    private static unsafe void QuantAccumulate256<TRows, TBlock>(scoped in BlockValueJob job) where TRows : struct, IFusedRows where TBlock : struct, IBlockValues
    {
        int nb = job.Vw / KvRowCodec.Block;
        for (int b = 0; b < nb; b++)
        {
            byte* v = job.V + b * job.BlockBytes;
            float* d = job.D + b * Tile;
            ref float o = ref Unsafe.Add(ref job.O, b * KvRowCodec.Block);
            if (TRows.Rows <= 6)
                for (int quarter = 0; quarter < 4; quarter += 2)
                    FusedColumns256<TRows, TwoVectors, BlockVectors256<TBlock>>(ref Unsafe.Add(ref o, 8 * quarter), job.Vw, job.Alpha, ref job.P, job.N, new(v, job.Vs, d, quarter));
            else
                for (int quarter = 0; quarter < 4; quarter++)
                    FusedColumns256<TRows, OneVector, BlockVectors256<TBlock>>(ref Unsafe.Add(ref o, 8 * quarter), job.Vw, job.Alpha, ref job.P, job.N, new(v, job.Vs, d, quarter));
        }
    }
}
