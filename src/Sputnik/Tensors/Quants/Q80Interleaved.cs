using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

/// <summary>
/// Q8_0 weights re-laid at load time 16 rows together (the same bytes, permuted), like <see cref="Q4KInterleaved"/>.
/// A 64-byte load holds 4 weights of 16 rows; vpmaddubsw needs an unsigned operand, so |w| and w's sign (computed
/// once per load and shared by every token) move the sign onto the broadcast activation. The per-block float work
/// (convert, scale, accumulate) is done once per 16 rows instead of once per row, and no row ends in a horizontal sum.
/// </summary>
/// <remarks>
/// Group g, block b (32 weights) at byte (g·nb + b)·544: <c>d[16]</c> (halves), then 8 slots of 64 bytes; slot k
/// holds, for each row, the file's quants 4k..4k+3 of that block.
/// </remarks>
internal sealed unsafe class Q80Interleaved : IGroupKernel
{
    private Q80Interleaved() { }

    private const int Q80 = 34;
    private const int GroupBlockBytes = Interleaving.Rows * Q80;

    /// <summary>The fields of a file block in the order the group block stores them, 16 rows of each (see remarks).</summary>
    public static readonly Interleaving.Field[] Layout =
        [new(0, 2), .. Enumerable.Range(0, 8).Select(k => new Interleaving.Field(2 + 4 * k, 4))];

    /// <summary>y[t·ldy + 16g + r] for groups [g0, g1), tokens [0, tokens); see <see cref="Interleaving.Compute"/>.</summary>
    public static void Compute(byte* w, int cols, byte* a, int aStride, int tokens, float* y, int ldy, int g0, int g1) =>
        Interleaving.Run<Q80Interleaved>(w, cols / 32, GroupBlockBytes, a, aStride, tokens, y, ldy, g0, g1);


    /// <summary>One token's products for one 64-byte slot: |w| · (x with w's sign), pair-summed to 32 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step(Vector512<byte> aw, Vector512<sbyte> neg, byte* x, int k, ref Vector512<int> isum)
    {
        var xb = Vector512.Create(*(int*)(x + 4 * k)).AsSByte();
        var sx = Vector512.ConditionalSelect(neg, -xb, xb);
        isum += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(aw, sx), Vector512<short>.One);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Finish(Vector512<int> isum, Vector512<float> d, float* scales, int b, Vector512<float> acc) =>
        Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(isum), d * Vector512.Create(scales[b]), acc);

    public static void Group1(byte* w, int nb, byte* a, float* y)
    {
        int ahead = Prefetch.Ahead(GroupBlockBytes);
        float* sc = (float*)(a + nb * (Q80 + 4));
        var acc = Vector512<float>.Zero;
        for (int b = 0; b < nb; b++, w += GroupBlockBytes)
        {
            if (Prefetch.Enabled) Prefetch.Lines(w + ahead, GroupBlockBytes);
            byte* x = a + b * Q80 + 2;
            var isum = Vector512<int>.Zero;
            for (int k = 0; k < 8; k++)
            {
                var v = Vector512.Load((sbyte*)(w + 32 + 64 * k));
                Step(Avx512BW.Abs(v), Vector512.LessThan(v, Vector512<sbyte>.Zero), x, k, ref isum);
            }
            acc = Finish(isum, FloatConvert.HalfToFloat512(Vector256.Load((ushort*)w)), sc, b, acc);
        }
        acc.Store(y);
    }

    public static void Group4(byte* w, int nb, byte* a, int aStride, float* y, int ldy)
    {
        float* sc0 = (float*)(a + nb * (Q80 + 4)), sc1 = (float*)((byte*)sc0 + aStride), sc2 = (float*)((byte*)sc0 + 2 * aStride), sc3 = (float*)((byte*)sc0 + 3 * aStride);
        Vector512<float> f0 = default, f1 = default, f2 = default, f3 = default;
        for (int b = 0; b < nb; b++, w += GroupBlockBytes)
        {
            byte* x0 = a + b * Q80 + 2, x1 = x0 + aStride, x2 = x0 + 2 * aStride, x3 = x0 + 3 * aStride;
            Vector512<int> i0 = default, i1 = default, i2 = default, i3 = default;
            for (int k = 0; k < 8; k++)
            {
                var v = Vector512.Load((sbyte*)(w + 32 + 64 * k));
                var aw = Avx512BW.Abs(v);
                var neg = Vector512.LessThan(v, Vector512<sbyte>.Zero);
                Step(aw, neg, x0, k, ref i0);
                Step(aw, neg, x1, k, ref i1);
                Step(aw, neg, x2, k, ref i2);
                Step(aw, neg, x3, k, ref i3);
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
}
