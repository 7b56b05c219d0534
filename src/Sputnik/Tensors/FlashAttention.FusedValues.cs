using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Sputnik.Tensors;

// The fused p·v passes, one for every value format the fused paths read in place: F16 halves
// (FlashAttention.FusedHalves.cs) and Q8_0/Q4_0 blocks (FlashAttention.FusedBlockValues.cs). A pass takes a block of
// 1–8 query rows over one, two or four column vectors (16 floats at 512 bits, 8 at 256): o_r = o_r·alpha_r,
// then o_r += p_r[t]·v_t for each position t in order, each value vector produced once for all the block's rows by
// the format's reader (IValueVectors512/256). The row count and vector count are type arguments, so the JIT compiles
// each shape apart and drops the statements of rows and vectors the shape has not.
internal static partial class FlashAttention
{
    /// <summary>How many column vectors a p·v pass takes.</summary>
    private interface IColumnVectors { static abstract int Count { get; } }
    private struct OneVector : IColumnVectors { public static int Count => 1; }
    private struct TwoVectors : IColumnVectors { public static int Count => 2; }
    private struct FourVectors : IColumnVectors { public static int Count => 4; }

    /// <summary>A pass's value rows at 512 bits: vector i (16 floats) of the pass's columns in row t, as the probabilities multiply it.</summary>
    private interface IValueVectors512
    {
        Vector512<float> Sixteen(int t, int i);

        /// <summary>Whether every value read was finite (false: the pass's outputs must not be stored).</summary>
        bool Finite { get; }
    }

    /// <summary>The same at 256 bits: vector i (8 floats).</summary>
    private interface IValueVectors256
    {
        Vector256<float> Eight(int t, int i);

        bool Finite { get; }
    }

    /// <summary>F16 rows (vs halves apart) in float place (value·2^-112; the 2^112 is in the probabilities), watched for infinities and NaNs when TCheck says so.</summary>
    private unsafe struct HalfVectors512<TCheck>(ushort* v, int vs) : IValueVectors512 where TCheck : struct, IHalfCheck
    {
        private Vector256<ushort> _check;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector512<float> Sixteen(int t, int i)
        {
            return Widen<TCheck>(ref Unsafe.AsRef<ushort>(v + (nint)t * vs + 16 * i), 0, ref _check);
        }

        public readonly bool Finite => !TCheck.On || !Vector256.GreaterThanOrEqualAny(_check, Vector256.Create(DoubledInfNan));
    }

    /// <summary><see cref="HalfVectors512{TCheck}"/> at 256 bits.</summary>
    private unsafe struct HalfVectors256<TCheck>(ushort* v, int vs) : IValueVectors256 where TCheck : struct, IHalfCheck
    {
        private Vector128<ushort> _check;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector256<float> Eight(int t, int i)
        {
            return Widen256<TCheck>(ref Unsafe.AsRef<ushort>(v + (nint)t * vs + 8 * i), 0, ref _check);
        }

        public readonly bool Finite => !TCheck.On || !Vector128.GreaterThanOrEqualAny(_check, Vector128.Create(DoubledInfNan));
    }

    /// <summary>
    /// One pass of a block of rows (outputs vw apart from <paramref name="o0"/>, rescales <paramref name="alpha"/>,
    /// probabilities Tile apart from <paramref name="p"/>) over n positions and TCols 16-column vectors: false, the
    /// outputs left as they were, when the values were not all finite.
    /// </summary>
    private static bool FusedColumns512<TRows, TCols, TValues>(ref float o0, int vw, ReadOnlySpan<float> alpha, ref float p, int n, TValues values)
        where TRows : struct, IFusedRows where TCols : struct, IColumnVectors where TValues : struct, IValueVectors512
    {
        int R = TRows.Rows, C = TCols.Count;
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector512<float> a30 = default, a31 = default, a32 = default, a33 = default;
        Vector512<float> a40 = default, a41 = default, a42 = default, a43 = default;
        Vector512<float> a50 = default, a51 = default, a52 = default, a53 = default;
        Vector512<float> a60 = default, a61 = default, a62 = default, a63 = default;
        Vector512<float> a70 = default, a71 = default, a72 = default, a73 = default;
        a00 = Vector512.LoadUnsafe(ref o0) * alpha[0]; if (C > 1) a01 = Vector512.LoadUnsafe(ref o0, 16) * alpha[0];
        if (C > 2) { a02 = Vector512.LoadUnsafe(ref o0, 32) * alpha[0]; a03 = Vector512.LoadUnsafe(ref o0, 48) * alpha[0]; }
        if (R > 1) { a10 = Vector512.LoadUnsafe(ref o0, (nuint)vw) * alpha[1]; if (C > 1) a11 = Vector512.LoadUnsafe(ref o0, (nuint)(vw + 16)) * alpha[1]; }
        if (R > 1 && C > 2) { a12 = Vector512.LoadUnsafe(ref o0, (nuint)(vw + 32)) * alpha[1]; a13 = Vector512.LoadUnsafe(ref o0, (nuint)(vw + 48)) * alpha[1]; }
        if (R > 2) { a20 = Vector512.LoadUnsafe(ref o0, (nuint)(2 * vw)) * alpha[2]; if (C > 1) a21 = Vector512.LoadUnsafe(ref o0, (nuint)(2 * vw + 16)) * alpha[2]; }
        if (R > 2 && C > 2) { a22 = Vector512.LoadUnsafe(ref o0, (nuint)(2 * vw + 32)) * alpha[2]; a23 = Vector512.LoadUnsafe(ref o0, (nuint)(2 * vw + 48)) * alpha[2]; }
        if (R > 3) { a30 = Vector512.LoadUnsafe(ref o0, (nuint)(3 * vw)) * alpha[3]; if (C > 1) a31 = Vector512.LoadUnsafe(ref o0, (nuint)(3 * vw + 16)) * alpha[3]; }
        if (R > 3 && C > 2) { a32 = Vector512.LoadUnsafe(ref o0, (nuint)(3 * vw + 32)) * alpha[3]; a33 = Vector512.LoadUnsafe(ref o0, (nuint)(3 * vw + 48)) * alpha[3]; }
        if (R > 4)
        {
            a40 = Vector512.LoadUnsafe(ref o0, (nuint)(4 * vw)) * alpha[4]; if (C > 1) a41 = Vector512.LoadUnsafe(ref o0, (nuint)(4 * vw + 16)) * alpha[4];
            if (C > 2) { a42 = Vector512.LoadUnsafe(ref o0, (nuint)(4 * vw + 32)) * alpha[4]; a43 = Vector512.LoadUnsafe(ref o0, (nuint)(4 * vw + 48)) * alpha[4]; }
            if (R > 5) { a50 = Vector512.LoadUnsafe(ref o0, (nuint)(5 * vw)) * alpha[5]; if (C > 1) a51 = Vector512.LoadUnsafe(ref o0, (nuint)(5 * vw + 16)) * alpha[5]; }
            if (R > 5 && C > 2) { a52 = Vector512.LoadUnsafe(ref o0, (nuint)(5 * vw + 32)) * alpha[5]; a53 = Vector512.LoadUnsafe(ref o0, (nuint)(5 * vw + 48)) * alpha[5]; }
        }
        if (R > 6)
        {
            a60 = Vector512.LoadUnsafe(ref o0, (nuint)(6 * vw)) * alpha[6]; if (C > 1) a61 = Vector512.LoadUnsafe(ref o0, (nuint)(6 * vw + 16)) * alpha[6];
            if (C > 2) { a62 = Vector512.LoadUnsafe(ref o0, (nuint)(6 * vw + 32)) * alpha[6]; a63 = Vector512.LoadUnsafe(ref o0, (nuint)(6 * vw + 48)) * alpha[6]; }
            if (R > 7)
            {
                a70 = Vector512.LoadUnsafe(ref o0, (nuint)(7 * vw)) * alpha[7]; if (C > 1) a71 = Vector512.LoadUnsafe(ref o0, (nuint)(7 * vw + 16)) * alpha[7];
                if (C > 2) { a72 = Vector512.LoadUnsafe(ref o0, (nuint)(7 * vw + 32)) * alpha[7]; a73 = Vector512.LoadUnsafe(ref o0, (nuint)(7 * vw + 48)) * alpha[7]; }
            }
        }
        for (int t = 0; t < n; t++)
        {
            var y0 = values.Sixteen(t, 0);
            Vector512<float> y1 = default, y2 = default, y3 = default;
            if (C > 1) y1 = values.Sixteen(t, 1);
            if (C > 2) { y2 = values.Sixteen(t, 2); y3 = values.Sixteen(t, 3); }
            ref float pt = ref Unsafe.Add(ref p, t);
            var b = Vector512.Create(pt);
            a00 = Vector512.FusedMultiplyAdd(y0, b, a00); if (C > 1) a01 = Vector512.FusedMultiplyAdd(y1, b, a01);
            if (C > 2) { a02 = Vector512.FusedMultiplyAdd(y2, b, a02); a03 = Vector512.FusedMultiplyAdd(y3, b, a03); }
            if (R > 1) { b = Vector512.Create(Unsafe.Add(ref pt, Tile)); a10 = Vector512.FusedMultiplyAdd(y0, b, a10); if (C > 1) a11 = Vector512.FusedMultiplyAdd(y1, b, a11); }
            if (R > 1 && C > 2) { a12 = Vector512.FusedMultiplyAdd(y2, b, a12); a13 = Vector512.FusedMultiplyAdd(y3, b, a13); }
            if (R > 2) { b = Vector512.Create(Unsafe.Add(ref pt, 2 * Tile)); a20 = Vector512.FusedMultiplyAdd(y0, b, a20); if (C > 1) a21 = Vector512.FusedMultiplyAdd(y1, b, a21); }
            if (R > 2 && C > 2) { a22 = Vector512.FusedMultiplyAdd(y2, b, a22); a23 = Vector512.FusedMultiplyAdd(y3, b, a23); }
            if (R > 3) { b = Vector512.Create(Unsafe.Add(ref pt, 3 * Tile)); a30 = Vector512.FusedMultiplyAdd(y0, b, a30); if (C > 1) a31 = Vector512.FusedMultiplyAdd(y1, b, a31); }
            if (R > 3 && C > 2) { a32 = Vector512.FusedMultiplyAdd(y2, b, a32); a33 = Vector512.FusedMultiplyAdd(y3, b, a33); }
            if (R > 4)
            {
                b = Vector512.Create(Unsafe.Add(ref pt, 4 * Tile));
                a40 = Vector512.FusedMultiplyAdd(y0, b, a40); if (C > 1) a41 = Vector512.FusedMultiplyAdd(y1, b, a41);
                if (C > 2) { a42 = Vector512.FusedMultiplyAdd(y2, b, a42); a43 = Vector512.FusedMultiplyAdd(y3, b, a43); }
                if (R > 5) { b = Vector512.Create(Unsafe.Add(ref pt, 5 * Tile)); a50 = Vector512.FusedMultiplyAdd(y0, b, a50); if (C > 1) a51 = Vector512.FusedMultiplyAdd(y1, b, a51); }
                if (R > 5 && C > 2) { a52 = Vector512.FusedMultiplyAdd(y2, b, a52); a53 = Vector512.FusedMultiplyAdd(y3, b, a53); }
            }
            if (R > 6)
            {
                b = Vector512.Create(Unsafe.Add(ref pt, 6 * Tile));
                a60 = Vector512.FusedMultiplyAdd(y0, b, a60); if (C > 1) a61 = Vector512.FusedMultiplyAdd(y1, b, a61);
                if (C > 2) { a62 = Vector512.FusedMultiplyAdd(y2, b, a62); a63 = Vector512.FusedMultiplyAdd(y3, b, a63); }
                if (R > 7)
                {
                    b = Vector512.Create(Unsafe.Add(ref pt, 7 * Tile));
                    a70 = Vector512.FusedMultiplyAdd(y0, b, a70); if (C > 1) a71 = Vector512.FusedMultiplyAdd(y1, b, a71);
                    if (C > 2) { a72 = Vector512.FusedMultiplyAdd(y2, b, a72); a73 = Vector512.FusedMultiplyAdd(y3, b, a73); }
                }
            }
        }
        if (!values.Finite) return false;
        a00.StoreUnsafe(ref o0); if (C > 1) a01.StoreUnsafe(ref o0, 16);
        if (C > 2) { a02.StoreUnsafe(ref o0, 32); a03.StoreUnsafe(ref o0, 48); }
        if (R > 1) { a10.StoreUnsafe(ref o0, (nuint)vw); if (C > 1) a11.StoreUnsafe(ref o0, (nuint)(vw + 16)); }
        if (R > 1 && C > 2) { a12.StoreUnsafe(ref o0, (nuint)(vw + 32)); a13.StoreUnsafe(ref o0, (nuint)(vw + 48)); }
        if (R > 2) { a20.StoreUnsafe(ref o0, (nuint)(2 * vw)); if (C > 1) a21.StoreUnsafe(ref o0, (nuint)(2 * vw + 16)); }
        if (R > 2 && C > 2) { a22.StoreUnsafe(ref o0, (nuint)(2 * vw + 32)); a23.StoreUnsafe(ref o0, (nuint)(2 * vw + 48)); }
        if (R > 3) { a30.StoreUnsafe(ref o0, (nuint)(3 * vw)); if (C > 1) a31.StoreUnsafe(ref o0, (nuint)(3 * vw + 16)); }
        if (R > 3 && C > 2) { a32.StoreUnsafe(ref o0, (nuint)(3 * vw + 32)); a33.StoreUnsafe(ref o0, (nuint)(3 * vw + 48)); }
        if (R > 4)
        {
            a40.StoreUnsafe(ref o0, (nuint)(4 * vw)); if (C > 1) a41.StoreUnsafe(ref o0, (nuint)(4 * vw + 16));
            if (C > 2) { a42.StoreUnsafe(ref o0, (nuint)(4 * vw + 32)); a43.StoreUnsafe(ref o0, (nuint)(4 * vw + 48)); }
            if (R > 5) { a50.StoreUnsafe(ref o0, (nuint)(5 * vw)); if (C > 1) a51.StoreUnsafe(ref o0, (nuint)(5 * vw + 16)); }
            if (R > 5 && C > 2) { a52.StoreUnsafe(ref o0, (nuint)(5 * vw + 32)); a53.StoreUnsafe(ref o0, (nuint)(5 * vw + 48)); }
        }
        if (R > 6)
        {
            a60.StoreUnsafe(ref o0, (nuint)(6 * vw)); if (C > 1) a61.StoreUnsafe(ref o0, (nuint)(6 * vw + 16));
            if (C > 2) { a62.StoreUnsafe(ref o0, (nuint)(6 * vw + 32)); a63.StoreUnsafe(ref o0, (nuint)(6 * vw + 48)); }
            if (R > 7)
            {
                a70.StoreUnsafe(ref o0, (nuint)(7 * vw)); if (C > 1) a71.StoreUnsafe(ref o0, (nuint)(7 * vw + 16));
                if (C > 2) { a72.StoreUnsafe(ref o0, (nuint)(7 * vw + 32)); a73.StoreUnsafe(ref o0, (nuint)(7 * vw + 48)); }
            }
        }
        return true;
    }

    /// <summary>
    /// <see cref="FusedColumns512{TRows, TCols, TValues}"/> at 256 bits: two 8-column vectors for up to six rows (12
    /// accumulators of 16 registers), one for seven or eight (rows 6 and 7 have no second vector's accumulators).
    /// </summary>
    private static bool FusedColumns256<TRows, TCols, TValues>(ref float o0, int vw, ReadOnlySpan<float> alpha, ref float p, int n, TValues values)
        where TRows : struct, IFusedRows where TCols : struct, IColumnVectors where TValues : struct, IValueVectors256
    {
        int R = TRows.Rows, C = TCols.Count;
        if (C > 2 || R > 6 && C > 1) throw new InvalidOperationException($"no 256-bit p·v pass of {R} rows × {C} vectors"); // constants: folded away
        Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
        Vector256<float> a40 = default, a41 = default, a50 = default, a51 = default, a60 = default, a70 = default;
        a00 = Vector256.LoadUnsafe(ref o0) * alpha[0]; if (C > 1) a01 = Vector256.LoadUnsafe(ref o0, 8) * alpha[0];
        if (R > 1) { a10 = Vector256.LoadUnsafe(ref o0, (nuint)vw) * alpha[1]; if (C > 1) a11 = Vector256.LoadUnsafe(ref o0, (nuint)(vw + 8)) * alpha[1]; }
        if (R > 2) { a20 = Vector256.LoadUnsafe(ref o0, (nuint)(2 * vw)) * alpha[2]; if (C > 1) a21 = Vector256.LoadUnsafe(ref o0, (nuint)(2 * vw + 8)) * alpha[2]; }
        if (R > 3) { a30 = Vector256.LoadUnsafe(ref o0, (nuint)(3 * vw)) * alpha[3]; if (C > 1) a31 = Vector256.LoadUnsafe(ref o0, (nuint)(3 * vw + 8)) * alpha[3]; }
        if (R > 4)
        {
            a40 = Vector256.LoadUnsafe(ref o0, (nuint)(4 * vw)) * alpha[4]; if (C > 1) a41 = Vector256.LoadUnsafe(ref o0, (nuint)(4 * vw + 8)) * alpha[4];
            if (R > 5) { a50 = Vector256.LoadUnsafe(ref o0, (nuint)(5 * vw)) * alpha[5]; if (C > 1) a51 = Vector256.LoadUnsafe(ref o0, (nuint)(5 * vw + 8)) * alpha[5]; }
        }
        if (R > 6)
        {
            a60 = Vector256.LoadUnsafe(ref o0, (nuint)(6 * vw)) * alpha[6];
            if (R > 7) a70 = Vector256.LoadUnsafe(ref o0, (nuint)(7 * vw)) * alpha[7];
        }
        for (int t = 0; t < n; t++)
        {
            var y0 = values.Eight(t, 0);
            var y1 = C > 1 ? values.Eight(t, 1) : default;
            ref float pt = ref Unsafe.Add(ref p, t);
            var b = Vector256.Create(pt);
            a00 = Vector256.FusedMultiplyAdd(y0, b, a00); if (C > 1) a01 = Vector256.FusedMultiplyAdd(y1, b, a01);
            if (R > 1) { b = Vector256.Create(Unsafe.Add(ref pt, Tile)); a10 = Vector256.FusedMultiplyAdd(y0, b, a10); if (C > 1) a11 = Vector256.FusedMultiplyAdd(y1, b, a11); }
            if (R > 2) { b = Vector256.Create(Unsafe.Add(ref pt, 2 * Tile)); a20 = Vector256.FusedMultiplyAdd(y0, b, a20); if (C > 1) a21 = Vector256.FusedMultiplyAdd(y1, b, a21); }
            if (R > 3) { b = Vector256.Create(Unsafe.Add(ref pt, 3 * Tile)); a30 = Vector256.FusedMultiplyAdd(y0, b, a30); if (C > 1) a31 = Vector256.FusedMultiplyAdd(y1, b, a31); }
            if (R > 4)
            {
                b = Vector256.Create(Unsafe.Add(ref pt, 4 * Tile));
                a40 = Vector256.FusedMultiplyAdd(y0, b, a40); if (C > 1) a41 = Vector256.FusedMultiplyAdd(y1, b, a41);
                if (R > 5) { b = Vector256.Create(Unsafe.Add(ref pt, 5 * Tile)); a50 = Vector256.FusedMultiplyAdd(y0, b, a50); if (C > 1) a51 = Vector256.FusedMultiplyAdd(y1, b, a51); }
            }
            if (R > 6)
            {
                a60 = Vector256.FusedMultiplyAdd(y0, Vector256.Create(Unsafe.Add(ref pt, 6 * Tile)), a60);
                if (R > 7) a70 = Vector256.FusedMultiplyAdd(y0, Vector256.Create(Unsafe.Add(ref pt, 7 * Tile)), a70);
            }
        }
        if (!values.Finite) return false;
        a00.StoreUnsafe(ref o0); if (C > 1) a01.StoreUnsafe(ref o0, 8);
        if (R > 1) { a10.StoreUnsafe(ref o0, (nuint)vw); if (C > 1) a11.StoreUnsafe(ref o0, (nuint)(vw + 8)); }
        if (R > 2) { a20.StoreUnsafe(ref o0, (nuint)(2 * vw)); if (C > 1) a21.StoreUnsafe(ref o0, (nuint)(2 * vw + 8)); }
        if (R > 3) { a30.StoreUnsafe(ref o0, (nuint)(3 * vw)); if (C > 1) a31.StoreUnsafe(ref o0, (nuint)(3 * vw + 8)); }
        if (R > 4)
        {
            a40.StoreUnsafe(ref o0, (nuint)(4 * vw)); if (C > 1) a41.StoreUnsafe(ref o0, (nuint)(4 * vw + 8));
            if (R > 5) { a50.StoreUnsafe(ref o0, (nuint)(5 * vw)); if (C > 1) a51.StoreUnsafe(ref o0, (nuint)(5 * vw + 8)); }
        }
        if (R > 6)
        {
            a60.StoreUnsafe(ref o0, (nuint)(6 * vw));
            if (R > 7) a70.StoreUnsafe(ref o0, (nuint)(7 * vw));
        }
        return true;
    }
}
