using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

// 256-bit kernels (AVX2 + FMA; AVX-VNNI vpdpbusd where the CPU has it).
internal static unsafe partial class MatVec
{
    /// <summary>Per 4 bytes: Σ u8*s8 into int32 lanes (operands small enough that vpmaddubsw never saturates).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<int> MulAddBytes(Vector256<byte> u, Vector256<sbyte> s)
    {
        if (AvxVnni.IsSupported) return AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, u, s);
        return Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u, s), Vector256<short>.One);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<byte> Nibbles(byte* p16)
    {
        var b = Vector128.Load(p16);
        var m = Vector128.Create((byte)0x0F);
        return Vector256.Create(b & m, (b.AsUInt16() >> 4).AsByte() & m);
    }

    /// <summary>Byte i (0..31) is 0xFF where bit i of <paramref name="bits"/> is set.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<byte> BitsToBytes(uint bits)
    {
        var v = Vector256.Create(bits).AsByte();
        var ctrl = Vector256.Create((byte)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        var bit = Vector256.Create(0x8040201008040201UL).AsByte();
        return Vector256.Equals(Avx2.Shuffle(v, ctrl) & bit, bit);
    }

    /// <summary>Unpacks the 12-byte K-quant scale field: byte k of <paramref name="scales"/>/<paramref name="mins"/> is sub-block k's 6-bit value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScalesMinsK(byte* s, out ulong scales, out ulong mins)
    {
        const uint k1 = 0x3f3f3f3f, k2 = 0x0f0f0f0f, k3 = 0x03030303;
        uint u0 = *(uint*)s, u1 = *(uint*)(s + 4), u2 = *(uint*)(s + 8);
        uint sLo = u0 & k1;
        uint sHi = (u2 & k2) | (((u0 >> 6) & k3) << 4);
        uint mLo = u1 & k1;
        uint mHi = ((u2 >> 4) & k2) | (((u1 >> 6) & k3) << 4);
        scales = sLo | ((ulong)sHi << 32);
        mins = mLo | ((ulong)mHi << 32);
    }

    /// <summary>8 int lanes: mins[j] * (bsums[2j] + bsums[2j+1]).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> MinsTermVec(ulong mins, byte* a)
    {
        var bsums = Vector256.Load((short*)(a + KQuants.Q8KBsumsOffset));
        var pairs = Vector128.Shuffle(Vector128.CreateScalar(mins).AsByte(), Vector128.Create((byte)0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7));
        var dup = Avx2.ConvertToVector256Int16(pairs); // m0 m0 m1 m1 ... m7 m7 as shorts
        return Avx2.MultiplyAddAdjacent(bsums, dup);
    }

    private static float DotQ8_0Avx2(byte* w, byte* a, int nb)
    {
        var acc = Vector256<float>.Zero;
        for (int i = 0; i < nb; i++, w += Q80, a += Q80)
        {
            var wq = Vector256.Load((sbyte*)(w + 2));
            var xq = Vector256.Load((sbyte*)(a + 2));
            var p = MulAddBytes(Avx2.Abs(wq), Avx2.Sign(xq, wq));
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p), Vector256.Create(Half(w) * Half(a)), acc);
        }
        return Vector256.Sum(acc);
    }

    private static float DotQ4_0Avx2(byte* w, byte* a, float* sums, int nb)
    {
        var acc = Vector256<float>.Zero;
        float corr = 0;
        for (int i = 0; i < nb; i++, w += 18, a += Q80)
        {
            float dw = Half(w);
            var p = MulAddBytes(Nibbles(w + 2), Vector256.Load((sbyte*)(a + 2)));
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p), Vector256.Create(dw * Half(a)), acc);
            corr += dw * sums[i];
        }
        return Vector256.Sum(acc) - 8 * corr;
    }

    private static float DotQ4_1Avx2(byte* w, byte* a, float* sums, int nb)
    {
        var acc = Vector256<float>.Zero;
        float corr = 0;
        for (int i = 0; i < nb; i++, w += 20, a += Q80)
        {
            var p = MulAddBytes(Nibbles(w + 4), Vector256.Load((sbyte*)(a + 2)));
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p), Vector256.Create(Half(w) * Half(a)), acc);
            corr += Half(w + 2) * sums[i];
        }
        return Vector256.Sum(acc) + corr;
    }

    private static float DotQ5Avx2(byte* w, byte* a, float* sums, int nb, bool hasMin)
    {
        int blockBytes = hasMin ? 24 : 22, qhOff = hasMin ? 4 : 2;
        var acc = Vector256<float>.Zero;
        float corr = 0;
        var b16 = Vector256.Create((byte)0x10);
        for (int i = 0; i < nb; i++, w += blockBytes, a += Q80)
        {
            float dw = Half(w);
            var q = Nibbles(w + qhOff + 4) | (BitsToBytes(*(uint*)(w + qhOff)) & b16);
            var p = MulAddBytes(q, Vector256.Load((sbyte*)(a + 2)));
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p), Vector256.Create(dw * Half(a)), acc);
            corr += hasMin ? Half(w + 2) * sums[i] : -16 * dw * sums[i];
        }
        return Vector256.Sum(acc) + corr;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> ScaledPairs(Vector256<byte> q, sbyte* x, int scale)
    {
        var p = Avx2.MultiplyAddAdjacent(q, Vector256.Load(x));
        return Avx2.MultiplyAddAdjacent(p, Vector256.Create((short)scale));
    }

    private static float DotQ4_KAvx2(byte* w, byte* a, int nb)
    {
        var acc = Vector256<float>.Zero;
        var minsAcc = Vector256<float>.Zero;
        var low = Vector256.Create((byte)0x0F);
        for (int i = 0; i < nb; i++, w += 144, a += Q8K)
        {
            float dx = *(float*)a;
            ScalesMinsK(w + 4, out ulong sc, out ulong m);
            sbyte* x = (sbyte*)(a + 4);
            byte* q = w + 16;
            var sumi = Vector256<int>.Zero;
            for (int c = 0; c < 4; c++)
            {
                var b = Vector256.Load(q + 32 * c);
                sumi += ScaledPairs(b & low, x + 64 * c, (byte)(sc >> (16 * c)));
                sumi += ScaledPairs((b.AsUInt16() >> 4).AsByte() & low, x + 64 * c + 32, (byte)(sc >> (16 * c + 8)));
            }
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(sumi), Vector256.Create(dx * Half(w)), acc);
            minsAcc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(MinsTermVec(m, a)), Vector256.Create(dx * Half(w + 2)), minsAcc);
        }
        return Vector256.Sum(acc - minsAcc);
    }

    private static float DotQ5_KAvx2(byte* w, byte* a, int nb)
    {
        var acc = Vector256<float>.Zero;
        var minsAcc = Vector256<float>.Zero;
        var low = Vector256.Create((byte)0x0F);
        var b16 = Vector256.Create((byte)0x10);
        for (int i = 0; i < nb; i++, w += 176, a += Q8K)
        {
            float dx = *(float*)a;
            ScalesMinsK(w + 4, out ulong sc, out ulong m);
            sbyte* x = (sbyte*)(a + 4);
            var qh = Vector256.Load(w + 16);
            byte* q = w + 48;
            var sumi = Vector256<int>.Zero;
            for (int c = 0; c < 4; c++)
            {
                var b = Vector256.Load(q + 32 * c);
                var bit0 = Vector256.Create((byte)(1 << (2 * c)));
                var bit1 = Vector256.Create((byte)(2 << (2 * c)));
                var h0 = Vector256.Equals(qh & bit0, bit0) & b16;
                var h1 = Vector256.Equals(qh & bit1, bit1) & b16;
                sumi += ScaledPairs((b & low) | h0, x + 64 * c, (byte)(sc >> (16 * c)));
                sumi += ScaledPairs(((b.AsUInt16() >> 4).AsByte() & low) | h1, x + 64 * c + 32, (byte)(sc >> (16 * c + 8)));
            }
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(sumi), Vector256.Create(dx * Half(w)), acc);
            minsAcc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(MinsTermVec(m, a)), Vector256.Create(dx * Half(w + 2)), minsAcc);
        }
        return Vector256.Sum(acc - minsAcc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> ScaledPairs2(Vector256<byte> q, sbyte* x, sbyte s0, sbyte s1)
    {
        var p = Avx2.MultiplyAddAdjacent(q, Vector256.Load(x));
        return Avx2.MultiplyAddAdjacent(p, Vector256.Create(Vector128.Create((short)s0), Vector128.Create((short)s1)));
    }

    private static int Q6Offset(sbyte* sc, byte* a)
    {
        short* bsums = (short*)(a + KQuants.Q8KBsumsOffset);
        int s = 0;
        for (int j = 0; j < 16; j++) s += sc[j] * bsums[j];
        return 32 * s;
    }

    private static float DotQ6_KAvx2(byte* w, byte* a, int nb)
    {
        var acc = Vector256<float>.Zero;
        var low = Vector256.Create((byte)0x0F);
        var m30 = Vector256.Create((byte)0x30);
        for (int i = 0; i < nb; i++, w += 210, a += Q8K)
        {
            float d = *(float*)a * Half(w + KQuants.Q6KDOffset);
            sbyte* sc = (sbyte*)(w + KQuants.Q6KScalesOffset);
            sbyte* x = (sbyte*)(a + 4);
            var sumi = Vector256.Create(-Q6Offset(sc, a), 0, 0, 0, 0, 0, 0, 0);
            for (int n = 0; n < 2; n++)
            {
                var ql0 = Vector256.Load(w + 64 * n);
                var ql1 = Vector256.Load(w + 64 * n + 32);
                var qh = Vector256.Load(w + KQuants.Q6KQhOffset + 32 * n).AsUInt16();
                var q1 = (ql0 & low) | ((qh << 4).AsByte() & m30);
                var q2 = (ql1 & low) | ((qh << 2).AsByte() & m30);
                var q3 = ((ql0.AsUInt16() >> 4).AsByte() & low) | (qh.AsByte() & m30);
                var q4 = ((ql1.AsUInt16() >> 4).AsByte() & low) | ((qh >> 2).AsByte() & m30);
                sbyte* xs = x + 128 * n;
                sbyte* s = sc + 8 * n;
                sumi += ScaledPairs2(q1, xs, s[0], s[1]);
                sumi += ScaledPairs2(q2, xs + 32, s[2], s[3]);
                sumi += ScaledPairs2(q3, xs + 64, s[4], s[5]);
                sumi += ScaledPairs2(q4, xs + 96, s[6], s[7]);
            }
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(sumi), Vector256.Create(d), acc);
        }
        return Vector256.Sum(acc);
    }
}
