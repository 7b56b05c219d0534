namespace Sputnik.Tensors.Quants;

// Scalar reference kernels: integer sums per block, then float scaling, as ggml's generic vec_dot implementations.
internal static unsafe partial class MatVec
{
    private const int Q80 = 34;    // bytes of a Q8_0 block
    private const int Q8K = 292;   // bytes of a Q8_K block

    private static float DotQ8_0Scalar(byte* w, byte* a, int nb)
    {
        float sum = 0;
        for (int i = 0; i < nb; i++, w += Q80, a += Q80)
        {
            int s = 0;
            for (int j = 0; j < 32; j++) s += (sbyte)w[2 + j] * (sbyte)a[2 + j];
            sum += s * (Half(w) * Half(a));
        }
        return sum;
    }

    private static float DotQ4_0Scalar(byte* w, byte* a, int nb)
    {
        float sum = 0;
        for (int i = 0; i < nb; i++, w += 18, a += Q80)
        {
            int s = 0;
            for (int j = 0; j < 16; j++)
                s += ((w[2 + j] & 0xF) - 8) * (sbyte)a[2 + j] + ((w[2 + j] >> 4) - 8) * (sbyte)a[18 + j];
            sum += s * (Half(w) * Half(a));
        }
        return sum;
    }

    private static float DotQ4_1Scalar(byte* w, byte* a, float* sums, int nb)
    {
        float sum = 0;
        for (int i = 0; i < nb; i++, w += 20, a += Q80)
        {
            int s = 0;
            for (int j = 0; j < 16; j++)
                s += (w[4 + j] & 0xF) * (sbyte)a[2 + j] + (w[4 + j] >> 4) * (sbyte)a[18 + j];
            sum += s * (Half(w) * Half(a)) + Half(w + 2) * sums[i];
        }
        return sum;
    }

    private static int DotQ5Ints(byte* qs, uint qh, byte* a, int offset)
    {
        int s = 0;
        for (int j = 0; j < 16; j++)
        {
            int h0 = (int)((qh >> j) << 4) & 0x10;
            int h1 = (int)(qh >> (j + 12)) & 0x10;
            s += (((qs[j] & 0xF) | h0) - offset) * (sbyte)a[2 + j] + (((qs[j] >> 4) | h1) - offset) * (sbyte)a[18 + j];
        }
        return s;
    }

    private static float DotQ5_0Scalar(byte* w, byte* a, int nb)
    {
        float sum = 0;
        for (int i = 0; i < nb; i++, w += 22, a += Q80)
            sum += DotQ5Ints(w + 6, *(uint*)(w + 2), a, 16) * (Half(w) * Half(a));
        return sum;
    }

    private static float DotQ5_1Scalar(byte* w, byte* a, float* sums, int nb)
    {
        float sum = 0;
        for (int i = 0; i < nb; i++, w += 24, a += Q80)
            sum += DotQ5Ints(w + 8, *(uint*)(w + 4), a, 0) * (Half(w) * Half(a)) + Half(w + 2) * sums[i];
        return sum;
    }

    /// <summary>Unpacks the 8 six-bit scales and mins of a Q4_K/Q5_K block.</summary>
    private static void ScalesMinsK(byte* s, byte* sc, byte* m)
    {
        for (int j = 0; j < 4; j++)
        {
            sc[j] = (byte)(s[j] & 63);
            m[j] = (byte)(s[j + 4] & 63);
            sc[j + 4] = (byte)((s[j + 8] & 0xF) | ((s[j] >> 6) << 4));
            m[j + 4] = (byte)((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
        }
    }

    private static int MinsTerm(byte* m, byte* a)
    {
        short* bsums = (short*)(a + KQuants.Q8KBsumsOffset);
        int s = 0;
        for (int j = 0; j < 8; j++) s += m[j] * (bsums[2 * j] + bsums[2 * j + 1]);
        return s;
    }

    private static float DotQ4_KScalar(byte* w, byte* a, int nb)
    {
        byte* sc = stackalloc byte[8];
        byte* m = stackalloc byte[8];
        float sum = 0;
        for (int i = 0; i < nb; i++, w += 144, a += Q8K)
        {
            float dx = *(float*)a;
            ScalesMinsK(w + 4, sc, m);
            sbyte* x = (sbyte*)(a + 4);
            byte* q = w + 16;
            int s = 0;
            for (int c = 0; c < 4; c++)
            {
                int lo = 0, hi = 0;
                for (int l = 0; l < 32; l++)
                {
                    lo += (q[32 * c + l] & 0xF) * x[64 * c + l];
                    hi += (q[32 * c + l] >> 4) * x[64 * c + 32 + l];
                }
                s += sc[2 * c] * lo + sc[2 * c + 1] * hi;
            }
            sum += dx * Half(w) * s - dx * Half(w + 2) * MinsTerm(m, a);
        }
        return sum;
    }

    private static float DotQ5_KScalar(byte* w, byte* a, int nb)
    {
        byte* sc = stackalloc byte[8];
        byte* m = stackalloc byte[8];
        float sum = 0;
        for (int i = 0; i < nb; i++, w += 176, a += Q8K)
        {
            float dx = *(float*)a;
            ScalesMinsK(w + 4, sc, m);
            sbyte* x = (sbyte*)(a + 4);
            byte* qh = w + 16;
            byte* q = w + 48;
            int s = 0;
            for (int c = 0; c < 4; c++)
            {
                int lo = 0, hi = 0;
                for (int l = 0; l < 32; l++)
                {
                    int h0 = ((qh[l] >> (2 * c)) & 1) << 4;
                    int h1 = ((qh[l] >> (2 * c + 1)) & 1) << 4;
                    lo += ((q[32 * c + l] & 0xF) | h0) * x[64 * c + l];
                    hi += ((q[32 * c + l] >> 4) | h1) * x[64 * c + 32 + l];
                }
                s += sc[2 * c] * lo + sc[2 * c + 1] * hi;
            }
            sum += dx * Half(w) * s - dx * Half(w + 2) * MinsTerm(m, a);
        }
        return sum;
    }

    private static float DotQ6_KScalar(byte* w, byte* a, int nb)
    {
        float sum = 0;
        for (int i = 0; i < nb; i++, w += 210, a += Q8K)
        {
            float d = *(float*)a * Half(w + KQuants.Q6KDOffset);
            sbyte* sc = (sbyte*)(w + KQuants.Q6KScalesOffset);
            sbyte* x = (sbyte*)(a + 4);
            int s = 0;
            for (int n = 0; n < 2; n++)
            {
                byte* ql = w + 64 * n;
                byte* qh = w + KQuants.Q6KQhOffset + 32 * n;
                sbyte* xs = x + 128 * n;
                sbyte* scs = sc + 8 * n;
                for (int half = 0; half < 2; half++)
                {
                    int s1 = 0, s2 = 0, s3 = 0, s4 = 0;
                    for (int l = 16 * half; l < 16 * half + 16; l++)
                    {
                        s1 += (((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32) * xs[l];
                        s2 += (((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32) * xs[l + 32];
                        s3 += (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32) * xs[l + 64];
                        s4 += (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32) * xs[l + 96];
                    }
                    s += scs[half] * s1 + scs[half + 2] * s2 + scs[half + 4] * s3 + scs[half + 6] * s4;
                }
            }
            sum += d * s;
        }
        return sum;
    }
}
