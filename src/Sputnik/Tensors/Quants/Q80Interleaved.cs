using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

/// <summary>
/// Q8_0 weights re-laid at load time 16 rows together, like <see cref="Q4KInterleaved"/>, with the quants stored plus
/// 128 (unsigned bytes, the form <c>vpdpbusd</c> multiplies with a signed activation). With AVX-VNNI one 256-bit
/// <c>vpdpbusd</c> per 8 rows and 4 weights accumulates Σ(w + 128)·x straight into 32 bits, from a start of
/// −128·Σx (the activation block's integer quant sum, shared by all 16 rows), so the sum is Σw·x exactly: two
/// multiply instructions per token and 64 weights. Without it (AVX-512 BW only) the top bit is flipped back once per
/// load and shared by every token, then |w| and w's sign move the sign onto the broadcast activation for
/// <c>vpmaddubsw</c> + <c>vpmaddwd</c> (which would saturate on w + 128). Both give the same exact integers, so the
/// same float steps give the same bits on either path, batched or alone. The per-block float work (convert, scale,
/// accumulate) is done once per 16 rows instead of once per row, and no row ends in a horizontal sum.
/// </summary>
/// <remarks>
/// Group g, block b (32 weights) at byte (g·nb + b)·544: <c>d[16]</c> (halves), then 8 slots of 64 bytes; slot k
/// holds, for each row, the file's quants 4k..4k+3 of that block, each xor 0x80 (<see cref="Interleaving.Field.Biased"/>).
/// </remarks>
internal sealed unsafe partial class Q80Interleaved : IGroupKernel
{
    private Q80Interleaved() { }

    private const int Q80 = 34;
    private const int GroupBlockBytes = Interleaving.Rows * Q80;

    /// <summary>The fields of a file block in the order the group block stores them, 16 rows of each (see remarks).</summary>
    public static readonly Interleaving.Field[] Layout =
        [new(0, 2), .. Enumerable.Range(0, 8).Select(k => new Interleaving.Field(2 + 4 * k, 4, Biased: true))];

    /// <summary>y[t·ldy + 16g + r] for groups [g0, g1), tokens [0, tokens); see <see cref="Interleaving.Compute"/>.</summary>
    public static void Compute(byte* w, int cols, byte* a, int aStride, int tokens, float* y, int ldy, int g0, int g1) =>
        Interleaving.Run<Q80Interleaved>(w, cols / 32, GroupBlockBytes, a, aStride, tokens, y, ldy, g0, g1);

    // The activation's float block scales and integer quant sums, after its blocks (MatVec.QuantizeActivation's layout).
    internal static float* Scales(byte* a, int nb) => (float*)(a + nb * (Q80 + 4));
    internal static int* QuantSums(byte* a, int nb) => (int*)(a + nb * (Q80 + 8));

    /// <summary>Slot k of a group block as signed quants (the top bit flipped back; the path without AVX-VNNI).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<sbyte> Signed(byte* w, int k) => (Vector512.Load(w + 32 + 64 * k) ^ Vector512.Create((byte)0x80)).AsSByte();

    /// <summary>One token's products for one slot without AVX-VNNI: |w| · (x with w's sign), pair-summed to 32 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step(Vector512<byte> aw, Vector512<sbyte> w, byte* x, int k, ref Vector512<int> isum)
    {
        var xb = Vector512.Create(*(int*)(x + 4 * k)).AsSByte();
        isum += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(aw, MatVec.WithSignOf(xb, w)), Vector512<short>.One);
    }

    /// <summary>−128·Σx of activation block b in every lane: where the vpdpbusd sums of its rows start.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Start(int* quantSums, int b) => Vector256.Create(-128 * quantSums[b]);

    /// <summary>One token's products for one slot by vpdpbusd: Σ(w + 128)·x added per row, rows 0–7 and 8–15.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step(Vector256<byte> lo, Vector256<byte> hi, byte* x, int k, ref Vector256<int> sLo, ref Vector256<int> sHi)
    {
        var xb = Vector256.Create(*(int*)(x + 4 * k)).AsSByte();
        sLo = AvxVnni.MultiplyWideningAndAdd(sLo, lo, xb);
        sHi = AvxVnni.MultiplyWideningAndAdd(sHi, hi, xb);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Join(Vector256<int> lo, Vector256<int> hi) => Avx512F.InsertVector256(lo.ToVector512Unsafe(), hi, 1);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Finish(Vector512<int> isum, Vector512<float> d, float* scales, int b, Vector512<float> acc) =>
        Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(isum), d * Vector512.Create(scales[b]), acc);

    /// <summary>Slot k of one token by vpdpbusd (rows 0–7 into lo, 8–15 into hi).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void VnniSlot(byte* w, byte* x, int k, ref Vector256<int> lo, ref Vector256<int> hi) =>
        Step(Vector256.Load(w + 32 + 64 * k), Vector256.Load(w + 64 + 64 * k), x, k, ref lo, ref hi);

    /// <summary>Slot k of one token without AVX-VNNI.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SignedSlot(byte* w, byte* x, int k, ref Vector512<int> isum)
    {
        var v = Signed(w, k);
        Step(Avx512BW.Abs(v), v, x, k, ref isum);
    }

    public static void Group1(byte* w, int nb, byte* a, float* y)
    {
        if (!Interleaving.Wide512) { Group1Avx2(w, nb, a, y); return; }
        int ahead = Prefetch.Ahead(GroupBlockBytes);
        float* sc = Scales(a, nb);
        int* qs = QuantSums(a, nb);
        var acc = Vector512<float>.Zero;
        for (int b = 0; b < nb; b++, w += GroupBlockBytes)
        {
            if (Prefetch.Enabled) Prefetch.Lines(w + ahead, GroupBlockBytes);
            byte* x = a + b * Q80 + 2;
            Vector512<int> isum;
            if (AvxVnni.IsSupported)
            {
                VnniBlock(w, x, qs, b, out var lo, out var hi);
                isum = Join(lo, hi);
            }
            else
            {
                isum = Vector512<int>.Zero;
                SignedSlot(w, x, 0, ref isum);
                SignedSlot(w, x, 1, ref isum);
                SignedSlot(w, x, 2, ref isum);
                SignedSlot(w, x, 3, ref isum);
                SignedSlot(w, x, 4, ref isum);
                SignedSlot(w, x, 5, ref isum);
                SignedSlot(w, x, 6, ref isum);
                SignedSlot(w, x, 7, ref isum);
            }
            acc = Finish(isum, FloatConvert.HalfToFloat512(Vector256.Load((ushort*)w)), sc, b, acc);
        }
        acc.Store(y);
    }

    /// <summary>Four tokens' vpdpbusd sums, rows 0–7 (L) and 8–15 (H).</summary>
    private struct Sums4
    {
        public Vector256<int> L0, H0, L1, H1, L2, H2, L3, H3;
    }

    /// <summary>Slot k of four tokens by vpdpbusd (written out in <see cref="VnniBlock4"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void VnniSlot4(byte* w, byte* x0, byte* x1, byte* x2, byte* x3, int k, ref Sums4 s)
    {
        var lo = Vector256.Load(w + 32 + 64 * k);
        var hi = Vector256.Load(w + 64 + 64 * k);
        Step(lo, hi, x0, k, ref s.L0, ref s.H0);
        Step(lo, hi, x1, k, ref s.L1, ref s.H1);
        Step(lo, hi, x2, k, ref s.L2, ref s.H2);
        Step(lo, hi, x3, k, ref s.L3, ref s.H3);
    }

    /// <summary>
    /// One block of one token by vpdpbusd, rows 0–7 into lo and 8–15 into hi, from −128·Σx. The eight slots are
    /// written out: as a loop the JIT kept its index arithmetic and counter, about as many scalar µops as the two
    /// multiplies of a slot. Shared by the 512-bit and AVX2 kernels.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void VnniBlock(byte* w, byte* x, int* quantSums, int b, out Vector256<int> lo, out Vector256<int> hi)
    {
        lo = Start(quantSums, b);
        hi = lo;
        VnniSlot(w, x, 0, ref lo, ref hi);
        VnniSlot(w, x, 1, ref lo, ref hi);
        VnniSlot(w, x, 2, ref lo, ref hi);
        VnniSlot(w, x, 3, ref lo, ref hi);
        VnniSlot(w, x, 4, ref lo, ref hi);
        VnniSlot(w, x, 5, ref lo, ref hi);
        VnniSlot(w, x, 6, ref lo, ref hi);
        VnniSlot(w, x, 7, ref lo, ref hi);
    }

    /// <summary>One block of four tokens by vpdpbusd (see <see cref="VnniBlock"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Sums4 VnniBlock4(byte* w, byte* x0, byte* x1, byte* x2, byte* x3, int* qs0, int* qs1, int* qs2, int* qs3, int b)
    {
        var s = new Sums4 { L0 = Start(qs0, b), L1 = Start(qs1, b), L2 = Start(qs2, b), L3 = Start(qs3, b) };
        (s.H0, s.H1, s.H2, s.H3) = (s.L0, s.L1, s.L2, s.L3);
        VnniSlot4(w, x0, x1, x2, x3, 0, ref s);
        VnniSlot4(w, x0, x1, x2, x3, 1, ref s);
        VnniSlot4(w, x0, x1, x2, x3, 2, ref s);
        VnniSlot4(w, x0, x1, x2, x3, 3, ref s);
        VnniSlot4(w, x0, x1, x2, x3, 4, ref s);
        VnniSlot4(w, x0, x1, x2, x3, 5, ref s);
        VnniSlot4(w, x0, x1, x2, x3, 6, ref s);
        VnniSlot4(w, x0, x1, x2, x3, 7, ref s);
        return s;
    }

    public static void Group4(byte* w, int nb, byte* a, int aStride, float* y, int ldy, bool prefetch)
    {
        if (!Interleaving.Wide512) { Group4Avx2(w, nb, a, aStride, y, ldy, prefetch); return; }
        int ahead = Prefetch.Ahead(GroupBlockBytes);
        float* sc0 = Scales(a, nb), sc1 = (float*)((byte*)sc0 + aStride), sc2 = (float*)((byte*)sc0 + 2 * aStride), sc3 = (float*)((byte*)sc0 + 3 * aStride);
        int* qs0 = QuantSums(a, nb), qs1 = (int*)((byte*)qs0 + aStride), qs2 = (int*)((byte*)qs0 + 2 * aStride), qs3 = (int*)((byte*)qs0 + 3 * aStride);
        Vector512<float> f0 = default, f1 = default, f2 = default, f3 = default;
        for (int b = 0; b < nb; b++, w += GroupBlockBytes)
        {
            if (prefetch) Prefetch.WideLines(w + ahead, GroupBlockBytes);
            byte* x0 = a + b * Q80 + 2, x1 = x0 + aStride, x2 = x0 + 2 * aStride, x3 = x0 + 3 * aStride;
            Vector512<int> i0, i1, i2, i3;
            if (AvxVnni.IsSupported)
            {
                var s = VnniBlock4(w, x0, x1, x2, x3, qs0, qs1, qs2, qs3, b);
                i0 = Join(s.L0, s.H0); i1 = Join(s.L1, s.H1); i2 = Join(s.L2, s.H2); i3 = Join(s.L3, s.H3);
            }
            else
            {
                i0 = default; i1 = default; i2 = default; i3 = default;
                for (int k = 0; k < 8; k++)
                {
                    var v = Signed(w, k);
                    var aw = Avx512BW.Abs(v);
                    Step(aw, v, x0, k, ref i0);
                    Step(aw, v, x1, k, ref i1);
                    Step(aw, v, x2, k, ref i2);
                    Step(aw, v, x3, k, ref i3);
                }
            }
            var d = FloatConvert.HalfToFloat512(Vector256.Load((ushort*)w));
            f0 = Finish(i0, d, sc0, b, f0);
            f1 = Finish(i1, d, sc1, b, f1);
            f2 = Finish(i2, d, sc2, b, f2);
            f3 = Finish(i3, d, sc3, b, f3);
        }
        f0.Store(y);
        f1.Store(y + ldy);
        f2.Store(y + 2 * ldy);
        f3.Store(y + 3 * ldy);
    }

    /// <summary>
    /// Eight tokens a weight load on the 512-bit path without AVX-VNNI, where a slot's sign split (load, flip, |w|,
    /// the comparison) and a block's scale conversion are a large share of a token's work; with AVX-VNNI a slot is one
    /// load shared by two vpdpbusd a token, and the AVX2 kernels have 16 registers, so both stay at four.
    /// </summary>
    public static bool EightTokens => Interleaving.Wide512 && !AvxVnni.IsSupported;

    public static void Group8(byte* w, int nb, byte* a, int aStride, float* y, int ldy, bool prefetch)
    {
        if (!EightTokens) throw new NotSupportedException("the eight-token Q8_0 kernel needs AVX-512 without AVX-VNNI");
        int ahead = Prefetch.Ahead(GroupBlockBytes);
        float* sc0 = Scales(a, nb);
        Vector512<float> f0 = default, f1 = default, f2 = default, f3 = default, f4 = default, f5 = default, f6 = default, f7 = default;
        for (int b = 0; b < nb; b++, w += GroupBlockBytes)
        {
            if (prefetch) Prefetch.WideLines(w + ahead, GroupBlockBytes);
            byte* x0 = a + b * Q80 + 2;
            Vector512<int> i0 = default, i1 = default, i2 = default, i3 = default, i4 = default, i5 = default, i6 = default, i7 = default;
            for (int k = 0; k < 8; k++)
            {
                var v = Signed(w, k);
                var aw = Avx512BW.Abs(v);
                Step(aw, v, x0, k, ref i0);
                Step(aw, v, x0 + aStride, k, ref i1);
                Step(aw, v, x0 + 2 * aStride, k, ref i2);
                Step(aw, v, x0 + 3 * aStride, k, ref i3);
                Step(aw, v, x0 + 4 * aStride, k, ref i4);
                Step(aw, v, x0 + 5 * aStride, k, ref i5);
                Step(aw, v, x0 + 6 * aStride, k, ref i6);
                Step(aw, v, x0 + 7 * aStride, k, ref i7);
            }
            var d = FloatConvert.HalfToFloat512(Vector256.Load((ushort*)w));
            f0 = Finish(i0, d, sc0, b, f0);
            f1 = Finish(i1, d, (float*)((byte*)sc0 + aStride), b, f1);
            f2 = Finish(i2, d, (float*)((byte*)sc0 + 2 * aStride), b, f2);
            f3 = Finish(i3, d, (float*)((byte*)sc0 + 3 * aStride), b, f3);
            f4 = Finish(i4, d, (float*)((byte*)sc0 + 4 * aStride), b, f4);
            f5 = Finish(i5, d, (float*)((byte*)sc0 + 5 * aStride), b, f5);
            f6 = Finish(i6, d, (float*)((byte*)sc0 + 6 * aStride), b, f6);
            f7 = Finish(i7, d, (float*)((byte*)sc0 + 7 * aStride), b, f7);
        }
        f0.Store(y);
        f1.Store(y + ldy);
        f2.Store(y + 2 * ldy);
        f3.Store(y + 3 * ldy);
        f4.Store(y + 4 * ldy);
        f5.Store(y + 5 * ldy);
        f6.Store(y + 6 * ldy);
        f7.Store(y + 7 * ldy);
    }
}
