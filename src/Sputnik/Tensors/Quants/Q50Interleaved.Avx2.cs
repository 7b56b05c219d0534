using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

/// <summary>
/// The AVX2 kernels over the same group layout (see <c>Q4KInterleaved.Avx2.cs</c>): rows 0–7 and 8–15 as two 256-bit
/// halves, for CPUs without AVX-512 and for AVX-512 ones without VBMI (Skylake-X, Cascade Lake). vpmultishiftqb has
/// no AVX2 form, so a slot's high bits are found as ggml's AVX2 Q5_0 does: vpshufb copies the row's qh byte holding
/// them into each of its 4 bytes, each byte keeps one bit, and a compare turns a set bit into 0x10. The weights, the
/// 16-bit sums, the −16·Σx and the float steps are the 512-bit kernel's, so both paths give the same bits.
/// </summary>
internal sealed unsafe partial class Q50Interleaved
{
    /// <summary>One half's four slots, high bits merged in (weights 0…31).</summary>
    private struct Half8
    {
        public Vector256<byte> L0, H0, L1, H1, L2, H2, L3, H3;
    }

    /// <summary>
    /// Each row's bits 8·<paramref name="qhByte"/> + 4·(k &amp; 1) + j (j = 0…3, byte j of the row's slot word) as 0x10
    /// in byte j, 0 otherwise; qh holds the 8 rows' 32-bit high-bit words.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> HighBits(Vector256<byte> qh, byte qhByte, int k)
    {
        byte b0 = qhByte, b1 = (byte)(4 + qhByte), b2 = (byte)(8 + qhByte), b3 = (byte)(12 + qhByte);
        var pick = Interleaving.Lanes256(Vector128.Create(b0, b0, b0, b0, b1, b1, b1, b1, b2, b2, b2, b2, b3, b3, b3, b3));
        var bit = ((k & 1) == 0 ? Vector256.Create(0x08040201u) : Vector256.Create(0x80402010u)).AsByte();
        return Vector256.Equals(Avx2.Shuffle(qh, pick) & bit, bit) & Vector256.Create((byte)0x10);
    }

    /// <summary>Slot k of one half: lo = weights 4k..4k+3 of its 8 rows, hi = weights 16+4k..16+4k+3.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Unpack(byte* w, int half, int k, Vector256<byte> qh, out Vector256<byte> lo, out Vector256<byte> hi)
    {
        var m4 = Vector256.Create((byte)0x0F);
        var v = Vector256.Load(w + QsOffset + 64 * k + 32 * half);
        lo = (v & m4) | HighBits(qh, (byte)(k / 2), k);
        hi = ((v.AsUInt16() >> 4).AsByte() & m4) | HighBits(qh, (byte)(2 + k / 2), k);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void UnpackHalf(byte* w, int half, out Half8 q)
    {
        var qh = Vector256.Load(w + HighBitsOffset + 32 * half);
        Unpack(w, half, 0, qh, out q.L0, out q.H0);
        Unpack(w, half, 1, qh, out q.L1, out q.H1);
        Unpack(w, half, 2, qh, out q.L2, out q.H2);
        Unpack(w, half, 3, qh, out q.L3, out q.H3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> Mul(Vector256<byte> q, byte* x) => Avx2.MultiplyAddAdjacent(q, Vector256.Create(*(int*)x).AsSByte());

    /// <summary>One token's Σ q·x per row over the block (x: its 32 quants), then − 16 · Σx (the 512-bit Dot's sums).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Dot(in Half8 q, byte* x, int quantSum)
    {
        var first = Mul(q.L0, x) + Mul(q.H0, x + 16) + Mul(q.L1, x + 4) + Mul(q.H1, x + 20);
        var second = Mul(q.L2, x + 8) + Mul(q.H2, x + 24) + Mul(q.L3, x + 12) + Mul(q.H3, x + 28);
        var ones = Vector256<short>.One;
        return Avx2.MultiplyAddAdjacent(first, ones) + Avx2.MultiplyAddAdjacent(second, ones) - Vector256.Create(16 * quantSum);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Finish(Vector256<int> isum, Vector256<float> d, float dx, Vector256<float> acc) =>
        Fma.MultiplyAdd(Avx.ConvertToVector256Single(isum), d * Vector256.Create(dx), acc);

    /// <summary>The rows' d of <paramref name="half"/> as floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> RowScales(byte* w, int half) => FloatConvert.HalfToFloat256(Vector128.Load((ushort*)w + 8 * half));

    /// <summary>One half of one block, one token (not inlined: the 8 unpacked slots and the sums fill the 16 registers).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Vector256<float> Half1(byte* w, int half, byte* x, int quantSum, float dx, Vector256<float> acc)
    {
        UnpackHalf(w, half, out var q);
        return Finish(Dot(q, x, quantSum), RowScales(w, half), dx, acc);
    }

    internal static void Group1Avx2(byte* w, int nb, byte* a, float* y)
    {
        int ahead = Prefetch.Ahead(GroupBlockBytes);
        float* sc = Scales(a, nb);
        int* qs = QuantSums(a, nb);
        Vector256<float> lo = default, hi = default;
        for (int b = 0; b < nb; b++, w += GroupBlockBytes)
        {
            if (Prefetch.Enabled) Prefetch.Lines(w + ahead, GroupBlockBytes);
            byte* x = a + b * Q80 + 2;
            lo = Half1(w, 0, x, qs[b], sc[b], lo);
            hi = Half1(w, 1, x, qs[b], sc[b], hi);
        }
        lo.Store(y);
        hi.Store(y + 8);
    }

    /// <summary>One half of one block, four tokens (the slots unpacked once for the four).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Half4(byte* w, int half, byte* x0, int aStride, int* qs0, float* sc0, int b, ref Interleaving.Floats4x8 f)
    {
        UnpackHalf(w, half, out var q);
        var d = RowScales(w, half);
        f.F0 = Finish(Dot(q, x0, qs0[b]), d, sc0[b], f.F0);
        f.F1 = Finish(Dot(q, x0 + aStride, *(int*)((byte*)(qs0 + b) + aStride)), d, *(float*)((byte*)(sc0 + b) + aStride), f.F1);
        f.F2 = Finish(Dot(q, x0 + 2 * aStride, *(int*)((byte*)(qs0 + b) + 2 * aStride)), d, *(float*)((byte*)(sc0 + b) + 2 * aStride), f.F2);
        f.F3 = Finish(Dot(q, x0 + 3 * aStride, *(int*)((byte*)(qs0 + b) + 3 * aStride)), d, *(float*)((byte*)(sc0 + b) + 3 * aStride), f.F3);
    }

    internal static void Group4Avx2(byte* w, int nb, byte* a, int aStride, float* y, int ldy, bool prefetch)
    {
        int ahead = Prefetch.Ahead(GroupBlockBytes);
        float* sc0 = Scales(a, nb);
        int* qs0 = QuantSums(a, nb);
        Interleaving.Floats4x8 lo = default, hi = default;
        for (int b = 0; b < nb; b++, w += GroupBlockBytes)
        {
            if (prefetch) Prefetch.WideLines(w + ahead, GroupBlockBytes);
            byte* x0 = a + b * Q80 + 2;
            Half4(w, 0, x0, aStride, qs0, sc0, b, ref lo);
            Half4(w, 1, x0, aStride, qs0, sc0, b, ref hi);
        }
        Interleaving.Floats4x8.Store(lo, hi, y, ldy);
    }
}
