using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

/// <summary>
/// Q5_0 weights re-laid at load time 16 rows together, like <see cref="Q80Interleaved"/> (the same bytes, permuted).
/// DeepSeek-V2-Lite's routed down-projections are Q5_0 in its Q4_K_M mix (1,408 columns, not a multiple of 256), and
/// in the file layout every row's pair of blocks needs its own unpacking, offset and float scale (<c>Q5_0Pairs</c>).
/// Here one 64-byte load holds 4 + 4 weights of 16 rows; the rows' high bits come from one 64-byte load per block,
/// and one vpmultishiftqb (VBMI) per 64 weights moves each weight's bit to bit 4 of its byte. The weights
/// stay unsigned (0…31) for vpmaddubsw, whose pair sums are added in 16 bits four at a time (4 · 2 · 31 · 128 =
/// 31,744 cannot overflow), and Q5_0's −16 offset is −16 · Σx once per block and token (the activation's integer
/// quant sum, shared by all 16 rows). The block's integers are exact, so the float steps (convert, one fused
/// multiply-add by d · dx per block) give the same bits for a token alone or batched.
/// </summary>
/// <remarks>
/// Group g, block b (32 weights) at byte (g·nb + b)·352: <c>d[16]</c> (halves), <c>qh[16]</c> (each row's 32 high
/// bits), then 4 slots of 64 bytes; slot k holds, for each row, the file's quant bytes 4k..4k+3 (low nibbles: weights
/// 4k..4k+3; high nibbles: weights 16+4k..16+4k+3).
/// </remarks>
internal sealed unsafe partial class Q50Interleaved : IGroupKernel
{
    private Q50Interleaved() { }

    private const int Q80 = 34;
    private const int GroupBlockBytes = Interleaving.Rows * 22;
    private const int HighBitsOffset = 32;
    private const int QsOffset = 96;

    /// <summary>The fields of a file block in the order the group block stores them, 16 rows of each (see remarks).</summary>
    public static readonly Interleaving.Field[] Layout =
        [new(0, 2), new(2, 4), .. Enumerable.Range(0, 4).Select(k => new Interleaving.Field(6 + 4 * k, 4))];

    /// <summary>y[t·ldy + 16g + r] for groups [g0, g1), tokens [0, tokens); see <see cref="Interleaving.Compute"/>.</summary>
    public static void Compute(byte* w, int cols, byte* a, int aStride, int tokens, float* y, int ldy, int g0, int g1) =>
        Interleaving.Run<Q50Interleaved>(w, cols / 32, GroupBlockBytes, a, aStride, tokens, y, ldy, g0, g1);

    /// <summary>Whether the 512-bit kernels run (they need VBMI's vpmultishiftqb); otherwise the AVX2 ones.</summary>
    private static bool Wide => Interleaving.Wide512 && Avx512Vbmi.IsSupported;

    // The activation (Q8_0 blocks, then their float scales and integer quant sums) is read as Q8_0's kernels read it.
    private static float* Scales(byte* a, int nb) => Q80Interleaved.Scales(a, nb);
    private static int* QuantSums(byte* a, int nb) => Q80Interleaved.QuantSums(a, nb);

    /// <summary>
    /// vpmultishiftqb's control that moves high bit <paramref name="first"/> + j of each row's 32-bit word (two rows per
    /// 64-bit lane) to bit 4 of the row's byte j: each byte takes the 8 bits from offset first + j − 4 (mod 64) of its lane.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> Control(int first)
    {
        uint row0 = (uint)((first - 4) & 63), row1 = (uint)((first + 28) & 63);
        return Vector512.Create((0x03020100u + 0x01010101u * row0) | (ulong)(0x03020100u + 0x01010101u * row1) << 32).AsByte();
    }

    /// <summary>The eight controls (slot k: low nibbles' bits 4k.., high nibbles' 16 + 4k..), built per call and kept in registers (see Q4KInterleaved.Patterns).</summary>
    private readonly struct Patterns
    {
        public readonly Vector512<byte> L0, L1, L2, L3, H0, H1, H2, H3;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Patterns()
        {
            L0 = Control(0); L1 = Control(4); L2 = Control(8); L3 = Control(12);
            H0 = Control(16); H1 = Control(20); H2 = Control(24); H3 = Control(28);
        }
    }

    /// <summary>Slot k's weights (0…31): lo = weights 4k..4k+3 of the 16 rows, hi = weights 16+4k..16+4k+3.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Unpack(byte* w, int k, Vector512<byte> qh, Vector512<byte> controlLo, Vector512<byte> controlHi,
        out Vector512<byte> lo, out Vector512<byte> hi)
    {
        var m4 = Vector512.Create((byte)0x0F);
        var bit4 = Vector512.Create((byte)0x10);
        var v = Vector512.Load(w + QsOffset + 64 * k);
        lo = (v & m4) | (Avx512Vbmi.MultiShift(controlLo, qh.AsUInt64()) & bit4);
        hi = ((v.AsUInt16() >> 4).AsByte() & m4) | (Avx512Vbmi.MultiShift(controlHi, qh.AsUInt64()) & bit4);
    }

    /// <summary>The four slots' weights of a block, high bits merged in.</summary>
    private struct Block
    {
        public Vector512<byte> L0, H0, L1, H1, L2, H2, L3, H3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void UnpackBlock(in Patterns p, byte* w, out Block q)
    {
        var qh = Vector512.Load(w + HighBitsOffset);
        Unpack(w, 0, qh, p.L0, p.H0, out q.L0, out q.H0);
        Unpack(w, 1, qh, p.L1, p.H1, out q.L1, out q.H1);
        Unpack(w, 2, qh, p.L2, p.H2, out q.L2, out q.H2);
        Unpack(w, 3, qh, p.L3, p.H3, out q.L3, out q.H3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> Mul(Vector512<byte> q, byte* x) => Avx512BW.MultiplyAddAdjacent(q, Vector512.Create(*(int*)x).AsSByte());

    /// <summary>One token's Σ q·x per row over the block (x: its 32 quants), then − 16 · Σx.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Dot(in Block q, byte* x, int quantSum)
    {
        var first = Mul(q.L0, x) + Mul(q.H0, x + 16) + Mul(q.L1, x + 4) + Mul(q.H1, x + 20);
        var second = Mul(q.L2, x + 8) + Mul(q.H2, x + 24) + Mul(q.L3, x + 12) + Mul(q.H3, x + 28);
        var ones = Vector512<short>.One;
        return Avx512BW.MultiplyAddAdjacent(first, ones) + Avx512BW.MultiplyAddAdjacent(second, ones) - Vector512.Create(16 * quantSum);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Finish(Vector512<int> isum, Vector512<float> d, float dx, Vector512<float> acc) =>
        Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(isum), d * Vector512.Create(dx), acc);

    public static void Group1(byte* w, int nb, byte* a, float* y)
    {
        if (!Wide) { Group1Avx2(w, nb, a, y); return; }
        int ahead = Prefetch.Ahead(GroupBlockBytes);
        float* sc = Scales(a, nb);
        int* qs = QuantSums(a, nb);
        var pat = new Patterns();
        var acc = Vector512<float>.Zero;
        for (int b = 0; b < nb; b++, w += GroupBlockBytes)
        {
            if (Prefetch.Enabled) Prefetch.Lines(w + ahead, GroupBlockBytes);
            UnpackBlock(pat, w, out var q);
            var isum = Dot(q, a + b * Q80 + 2, qs[b]);
            acc = Finish(isum, FloatConvert.HalfToFloat512(Vector256.Load((ushort*)w)), sc[b], acc);
        }
        acc.Store(y);
    }

    public static void Group4(byte* w, int nb, byte* a, int aStride, float* y, int ldy, bool prefetch)
    {
        if (!Wide) { Group4Avx2(w, nb, a, aStride, y, ldy, prefetch); return; }
        int ahead = Prefetch.Ahead(GroupBlockBytes);
        float* sc0 = Scales(a, nb), sc1 = (float*)((byte*)sc0 + aStride), sc2 = (float*)((byte*)sc0 + 2 * aStride), sc3 = (float*)((byte*)sc0 + 3 * aStride);
        int* qs0 = QuantSums(a, nb), qs1 = (int*)((byte*)qs0 + aStride), qs2 = (int*)((byte*)qs0 + 2 * aStride), qs3 = (int*)((byte*)qs0 + 3 * aStride);
        var pat = new Patterns();
        Vector512<float> f0 = default, f1 = default, f2 = default, f3 = default;
        for (int b = 0; b < nb; b++, w += GroupBlockBytes)
        {
            if (prefetch) Prefetch.WideLines(w + ahead, GroupBlockBytes);
            UnpackBlock(pat, w, out var q);
            byte* x0 = a + b * Q80 + 2;
            var d = FloatConvert.HalfToFloat512(Vector256.Load((ushort*)w));
            f0 = Finish(Dot(q, x0, qs0[b]), d, sc0[b], f0);
            f1 = Finish(Dot(q, x0 + aStride, qs1[b]), d, sc1[b], f1);
            f2 = Finish(Dot(q, x0 + 2 * aStride, qs2[b]), d, sc2[b], f2);
            f3 = Finish(Dot(q, x0 + 3 * aStride, qs3[b]), d, sc3[b], f3);
        }
        f0.Store(y);
        f1.Store(y + ldy);
        f2.Store(y + 2 * ldy);
        f3.Store(y + 3 * ldy);
    }
}
