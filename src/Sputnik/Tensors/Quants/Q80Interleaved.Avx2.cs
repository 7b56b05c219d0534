using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

/// <summary>
/// The AVX2 kernels over the same group layout (see <c>Q4KInterleaved.Avx2.cs</c>): rows 0–7 and 8–15 as two
/// 256-bit halves. With AVX-VNNI the slots are the 512-bit kernel's own 256-bit <c>vpdpbusd</c> steps; without it,
/// <c>vpsignb</c> moves each weight's sign onto the activation (|w| · x·sign(w), as the 512-bit path does with a
/// compare and a select) for <c>vpmaddubsw</c> + <c>vpmaddwd</c>. All give the same exact integers, then the same
/// float steps per row: the same bits on every path.
/// </summary>
internal sealed unsafe partial class Q80Interleaved
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Finish(Vector256<int> isum, Vector256<float> d, float* scales, int b, Vector256<float> acc) =>
        Fma.MultiplyAdd(Avx.ConvertToVector256Single(isum), d * Vector256.Create(scales[b]), acc);

    /// <summary>The rows' d of <paramref name="half"/> as floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> RowScales(byte* w, int half) => FloatConvert.HalfToFloat256(Vector128.Load((ushort*)w + 8 * half));

    /// <summary>Slot k of one half as signed quants (the top bit flipped back).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> Signed(byte* w, int half, int k) => (Vector256.Load(w + 32 + 64 * k + 32 * half) ^ Vector256.Create((byte)0x80)).AsSByte();

    /// <summary>One token's products for one slot of one half without AVX-VNNI: |w| · (x with w's sign), pair-summed to 32 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step(Vector256<byte> aw, Vector256<sbyte> v, byte* x, int k, ref Vector256<int> isum)
    {
        var sx = Avx2.Sign(Vector256.Create(*(int*)(x + 4 * k)).AsSByte(), v);
        isum += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(aw, sx), Vector256<short>.One);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SignedSlot(byte* w, int half, byte* x, int k, ref Vector256<int> isum)
    {
        var v = Signed(w, half, k);
        Step(Avx2.Abs(v), v, x, k, ref isum);
    }

    /// <summary>One half of one block, one token, without AVX-VNNI (slots written out, as the 512-bit kernel's).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> SignedHalf(byte* w, int half, byte* x)
    {
        var isum = Vector256<int>.Zero;
        SignedSlot(w, half, x, 0, ref isum);
        SignedSlot(w, half, x, 1, ref isum);
        SignedSlot(w, half, x, 2, ref isum);
        SignedSlot(w, half, x, 3, ref isum);
        SignedSlot(w, half, x, 4, ref isum);
        SignedSlot(w, half, x, 5, ref isum);
        SignedSlot(w, half, x, 6, ref isum);
        SignedSlot(w, half, x, 7, ref isum);
        return isum;
    }

    internal static void Group1Avx2(byte* w, int nb, byte* a, float* y)
    {
        int ahead = Prefetch.Ahead(GroupBlockBytes);
        float* sc = Scales(a, nb);
        int* qs = QuantSums(a, nb);
        Vector256<float> accLo = default, accHi = default;
        for (int b = 0; b < nb; b++, w += GroupBlockBytes)
        {
            if (Prefetch.Enabled) Prefetch.Lines(w + ahead, GroupBlockBytes);
            byte* x = a + b * Q80 + 2;
            Vector256<int> lo, hi;
            if (AvxVnni.IsSupported)
            {
                VnniBlock(w, x, qs, b, out lo, out hi);
            }
            else
            {
                lo = SignedHalf(w, 0, x);
                hi = SignedHalf(w, 1, x);
            }
            accLo = Finish(lo, RowScales(w, 0), sc, b, accLo);
            accHi = Finish(hi, RowScales(w, 1), sc, b, accHi);
        }
        accLo.Store(y);
        accHi.Store(y + 8);
    }

    /// <summary>One half of one block, four tokens, without AVX-VNNI.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SignedHalf4(byte* w, int half, byte* x0, int aStride, float* sc0, int b, ref Interleaving.Floats4x8 f)
    {
        Vector256<int> i0 = default, i1 = default, i2 = default, i3 = default;
        byte* x1 = x0 + aStride, x2 = x0 + 2 * aStride, x3 = x0 + 3 * aStride;
        for (int k = 0; k < 8; k++)
        {
            var v = Signed(w, half, k);
            var aw = Avx2.Abs(v);
            Step(aw, v, x0, k, ref i0);
            Step(aw, v, x1, k, ref i1);
            Step(aw, v, x2, k, ref i2);
            Step(aw, v, x3, k, ref i3);
        }
        var d = RowScales(w, half);
        f.F0 = Finish(i0, d, sc0, b, f.F0);
        f.F1 = Finish(i1, d, (float*)((byte*)sc0 + aStride), b, f.F1);
        f.F2 = Finish(i2, d, (float*)((byte*)sc0 + 2 * aStride), b, f.F2);
        f.F3 = Finish(i3, d, (float*)((byte*)sc0 + 3 * aStride), b, f.F3);
    }

    internal static void Group4Avx2(byte* w, int nb, byte* a, int aStride, float* y, int ldy, bool prefetch)
    {
        int ahead = Prefetch.Ahead(GroupBlockBytes);
        float* sc0 = Scales(a, nb), sc1 = (float*)((byte*)sc0 + aStride), sc2 = (float*)((byte*)sc0 + 2 * aStride), sc3 = (float*)((byte*)sc0 + 3 * aStride);
        int* qs0 = QuantSums(a, nb), qs1 = (int*)((byte*)qs0 + aStride), qs2 = (int*)((byte*)qs0 + 2 * aStride), qs3 = (int*)((byte*)qs0 + 3 * aStride);
        Interleaving.Floats4x8 lo = default, hi = default;
        for (int b = 0; b < nb; b++, w += GroupBlockBytes)
        {
            if (prefetch) Prefetch.WideLines(w + ahead, GroupBlockBytes);
            byte* x0 = a + b * Q80 + 2, x1 = x0 + aStride, x2 = x0 + 2 * aStride, x3 = x0 + 3 * aStride;
            if (AvxVnni.IsSupported)
            {
                var s = VnniBlock4(w, x0, x1, x2, x3, qs0, qs1, qs2, qs3, b);
                var dLo = RowScales(w, 0);
                var dHi = RowScales(w, 1);
                lo.F0 = Finish(s.L0, dLo, sc0, b, lo.F0); hi.F0 = Finish(s.H0, dHi, sc0, b, hi.F0);
                lo.F1 = Finish(s.L1, dLo, sc1, b, lo.F1); hi.F1 = Finish(s.H1, dHi, sc1, b, hi.F1);
                lo.F2 = Finish(s.L2, dLo, sc2, b, lo.F2); hi.F2 = Finish(s.H2, dHi, sc2, b, hi.F2);
                lo.F3 = Finish(s.L3, dLo, sc3, b, lo.F3); hi.F3 = Finish(s.H3, dHi, sc3, b, hi.F3);
            }
            else
            {
                SignedHalf4(w, 0, x0, aStride, sc0, b, ref lo);
                SignedHalf4(w, 1, x0, aStride, sc0, b, ref hi);
            }
        }
        Interleaving.Floats4x8.Store(lo, hi, y, ldy);
    }
}
