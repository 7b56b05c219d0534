using System.Buffers.Binary;
using static Sputnik.Tensors.Quants.FloatConvert;
using static Sputnik.Tensors.Quants.QuantMath;

namespace Sputnik.Tensors.Quants;

/// <summary>
/// Scalar reference (de)quantizers of the 256-weight super-block formats, byte layouts as in ggml-common.h:
/// Q4_K {f16 d, dmin; u8 scales[12]; u8 qs[128]} (144 B),
/// Q5_K {f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]} (176 B),
/// Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d} (210 B),
/// Q8_K {f32 d; i8 qs[256]; i16 bsums[16]} (292 B).
/// </summary>
internal static class KQuants
{
    internal const int QK_K = 256;

    // Q4_K / Q5_K field offsets
    internal const int KScalesOffset = 4;
    internal const int Q4KQsOffset = 16;
    internal const int Q5KQhOffset = 16;
    internal const int Q5KQsOffset = 48;
    // Q6_K field offsets
    internal const int Q6KQhOffset = 128;
    internal const int Q6KScalesOffset = 192;
    internal const int Q6KDOffset = 208;
    // Q8_K field offsets
    internal const int Q8KQsOffset = 4;
    internal const int Q8KBsumsOffset = 260;

    // ---------------- dequantization ----------------

    internal static void DequantQ4_K(ReadOnlySpan<byte> b, Span<float> y)
    {
        float d = ReadHalf(b, 0), dmin = ReadHalf(b, 2);
        ReadOnlySpan<byte> scales = b.Slice(KScalesOffset, 12);
        ReadOnlySpan<byte> q = b.Slice(Q4KQsOffset, 128);
        int yi = 0, qi = 0;
        for (int j = 0; j < 8; j += 2)
        {
            GetScaleMinK4(j, scales, out int sc0, out int m0);
            GetScaleMinK4(j + 1, scales, out int sc1, out int m1);
            float d1 = d * sc0, mm1 = dmin * m0, d2 = d * sc1, mm2 = dmin * m1;
            for (int l = 0; l < 32; l++) y[yi++] = d1 * (q[qi + l] & 0xF) - mm1;
            for (int l = 0; l < 32; l++) y[yi++] = d2 * (q[qi + l] >> 4) - mm2;
            qi += 32;
        }
    }

    internal static void DequantQ5_K(ReadOnlySpan<byte> b, Span<float> y)
    {
        float d = ReadHalf(b, 0), dmin = ReadHalf(b, 2);
        ReadOnlySpan<byte> scales = b.Slice(KScalesOffset, 12);
        ReadOnlySpan<byte> qh = b.Slice(Q5KQhOffset, 32);
        ReadOnlySpan<byte> ql = b.Slice(Q5KQsOffset, 128);
        int yi = 0, qi = 0;
        int u1 = 1, u2 = 2;
        for (int j = 0; j < 8; j += 2)
        {
            GetScaleMinK4(j, scales, out int sc0, out int m0);
            GetScaleMinK4(j + 1, scales, out int sc1, out int m1);
            float d1 = d * sc0, mm1 = dmin * m0, d2 = d * sc1, mm2 = dmin * m1;
            for (int l = 0; l < 32; l++) y[yi++] = d1 * ((ql[qi + l] & 0xF) + ((qh[l] & u1) != 0 ? 16 : 0)) - mm1;
            for (int l = 0; l < 32; l++) y[yi++] = d2 * ((ql[qi + l] >> 4) + ((qh[l] & u2) != 0 ? 16 : 0)) - mm2;
            qi += 32;
            u1 <<= 2;
            u2 <<= 2;
        }
    }

    internal static void DequantQ6_K(ReadOnlySpan<byte> b, Span<float> y)
    {
        float d = ReadHalf(b, Q6KDOffset);
        for (int n = 0; n < 2; n++)
        {
            ReadOnlySpan<byte> ql = b.Slice(64 * n, 64);
            ReadOnlySpan<byte> qh = b.Slice(Q6KQhOffset + 32 * n, 32);
            int sc = Q6KScalesOffset + 8 * n;
            Span<float> yy = y.Slice(128 * n, 128);
            for (int l = 0; l < 32; l++)
            {
                int isc = sc + l / 16;
                int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                yy[l] = d * (sbyte)b[isc] * q1;
                yy[l + 32] = d * (sbyte)b[isc + 2] * q2;
                yy[l + 64] = d * (sbyte)b[isc + 4] * q3;
                yy[l + 96] = d * (sbyte)b[isc + 6] * q4;
            }
        }
    }

    internal static void DequantQ8_K(ReadOnlySpan<byte> b, Span<float> y)
    {
        float d = BinaryPrimitives.ReadSingleLittleEndian(b);
        for (int j = 0; j < QK_K; j++) y[j] = d * (sbyte)b[Q8KQsOffset + j];
    }

    // ---------------- quantization (quantize_row_*_ref) ----------------

    /// <summary>Shared body of Q4_K (nmax 15) and Q5_K (nmax 31): per-32 asymmetric fits, then 6-bit scales/mins and a requantization pass.</summary>
    private static void QuantScaleMinK(ReadOnlySpan<float> x, Span<byte> b, int nmax, float rmin, float rdelta, int nstep, Span<byte> L)
    {
        Span<float> weights = stackalloc float[32];
        Span<byte> laux = stackalloc byte[32];
        Span<float> mins = stackalloc float[8];
        Span<float> scales = stackalloc float[8];
        float maxScale = 0, maxMin = 0;
        for (int j = 0; j < 8; j++)
        {
            ReadOnlySpan<float> xs = x.Slice(32 * j, 32);
            float sumX2 = 0;
            for (int l = 0; l < 32; l++) sumX2 += xs[l] * xs[l];
            float avX = MathF.Sqrt(sumX2 / 32);
            for (int l = 0; l < 32; l++) weights[l] = avX + MathF.Abs(xs[l]);
            scales[j] = MakeQkx2Quants(nmax, xs, weights, L.Slice(32 * j, 32), out mins[j], laux, rmin, rdelta, nstep);
            if (scales[j] > maxScale) maxScale = scales[j];
            if (mins[j] > maxMin) maxMin = mins[j];
        }
        float invScale = maxScale > 0 ? 63f / maxScale : 0f;
        float invMin = maxMin > 0 ? 63f / maxMin : 0f;
        Span<byte> sc = b.Slice(KScalesOffset, 12);
        sc.Clear();
        for (int j = 0; j < 8; j++)
        {
            int ls = Math.Min(63, NearestInt(invScale * scales[j]));
            int lm = Math.Min(63, NearestInt(invMin * mins[j]));
            SetScaleMinK4(j, sc, ls, lm);
        }
        WriteHalf(b, 0, maxScale / 63f);
        WriteHalf(b, 2, maxMin / 63f);
        float dAll = ReadHalf(b, 0), dminAll = ReadHalf(b, 2);
        for (int j = 0; j < 8; j++)
        {
            GetScaleMinK4(j, sc, out int s, out int m);
            float d = dAll * s;
            if (d == 0) continue;
            float dm = dminAll * m;
            for (int ii = 0; ii < 32; ii++)
                L[32 * j + ii] = (byte)Math.Clamp(NearestInt((x[32 * j + ii] + dm) / d), 0, nmax);
        }
    }

    internal static void QuantQ4_K(ReadOnlySpan<float> x, Span<byte> b)
    {
        Span<byte> L = stackalloc byte[QK_K];
        QuantScaleMinK(x, b, 15, -1f, 0.1f, 20, L);
        Span<byte> q = b.Slice(Q4KQsOffset, 128);
        for (int j = 0, qi = 0; j < QK_K; j += 64, qi += 32)
            for (int l = 0; l < 32; l++) q[qi + l] = (byte)(L[j + l] | (L[j + l + 32] << 4));
    }

    internal static void QuantQ5_K(ReadOnlySpan<float> x, Span<byte> b)
    {
        Span<byte> L = stackalloc byte[QK_K];
        QuantScaleMinK(x, b, 31, -0.5f, 0.1f, 15, L);
        Span<byte> qh = b.Slice(Q5KQhOffset, 32);
        Span<byte> ql = b.Slice(Q5KQsOffset, 128);
        qh.Clear();
        int m1 = 1, m2 = 2;
        for (int n = 0, qi = 0; n < QK_K; n += 64, qi += 32)
        {
            for (int j = 0; j < 32; j++)
            {
                int l1 = L[n + j];
                if (l1 > 15) { l1 -= 16; qh[j] |= (byte)m1; }
                int l2 = L[n + j + 32];
                if (l2 > 15) { l2 -= 16; qh[j] |= (byte)m2; }
                ql[qi + j] = (byte)(l1 | (l2 << 4));
            }
            m1 <<= 2;
            m2 <<= 2;
        }
    }

    internal static void QuantQ6_K(ReadOnlySpan<float> x, Span<byte> b)
    {
        Span<sbyte> L = stackalloc sbyte[QK_K];
        Span<float> scales = stackalloc float[16];
        float maxScale = 0, maxAbsScale = 0;
        for (int ib = 0; ib < 16; ib++)
        {
            float scale = MakeQxQuants(32, x.Slice(16 * ib, 16), L.Slice(16 * ib, 16));
            scales[ib] = scale;
            float abs = MathF.Abs(scale);
            if (abs > maxAbsScale) { maxAbsScale = abs; maxScale = scale; }
        }
        if (maxAbsScale < GroupMaxEps)
        {
            b.Slice(0, 210).Clear();
            return;
        }
        float iscale = -128f / maxScale;
        WriteHalf(b, Q6KDOffset, 1 / iscale);
        for (int ib = 0; ib < 16; ib++)
            b[Q6KScalesOffset + ib] = (byte)(sbyte)Math.Min(127, NearestInt(iscale * scales[ib]));
        float dAll = ReadHalf(b, Q6KDOffset);
        for (int j = 0; j < 16; j++)
        {
            float d = dAll * (sbyte)b[Q6KScalesOffset + j];
            if (d == 0) continue;
            for (int ii = 0; ii < 16; ii++)
                L[16 * j + ii] = (sbyte)(Math.Clamp(NearestInt(x[16 * j + ii] / d), -32, 31) + 32);
        }
        for (int j = 0, o = 0; j < QK_K; j += 128, o++)
        {
            Span<byte> ql = b.Slice(64 * o, 64);
            Span<byte> qh = b.Slice(Q6KQhOffset + 32 * o, 32);
            for (int l = 0; l < 32; l++)
            {
                int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
                ql[l] = (byte)((q1 & 0xF) | ((q3 & 0xF) << 4));
                ql[l + 32] = (byte)((q2 & 0xF) | ((q4 & 0xF) << 4));
                qh[l] = (byte)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
            }
        }
    }

    /// <summary>Q8_K: d = max/-127 of the signed absolute maximum, qs = nearest(x/d) capped at 127, bsums = sums of 16 qs.</summary>
    internal static void QuantQ8_K(ReadOnlySpan<float> x, Span<byte> b)
    {
        float max = 0, amax = 0;
        for (int j = 0; j < QK_K; j++)
        {
            float ax = MathF.Abs(x[j]);
            if (ax > amax) { amax = ax; max = x[j]; }
        }
        if (amax == 0)
        {
            b.Slice(0, 292).Clear();
            return;
        }
        float iscale = -127f / max;
        for (int j = 0; j < QK_K; j++) b[Q8KQsOffset + j] = (byte)(sbyte)Math.Min(127, NearestInt(iscale * x[j]));
        for (int j = 0; j < 16; j++)
        {
            int sum = 0;
            for (int ii = 0; ii < 16; ii++) sum += (sbyte)b[Q8KQsOffset + 16 * j + ii];
            BinaryPrimitives.WriteInt16LittleEndian(b.Slice(Q8KBsumsOffset + 2 * j), (short)sum);
        }
        BinaryPrimitives.WriteSingleLittleEndian(b, 1 / iscale);
    }
}
