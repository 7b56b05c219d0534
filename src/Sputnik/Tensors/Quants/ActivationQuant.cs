using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

/// <summary>
/// Vector forms of the two activation quantizers the integer kernels read (Q8_0 blocks for the 32-weight formats,
/// Q8_K blocks for the K-quants). They run over every activation of every matrix product — in prefill that is
/// hundreds of thousands of values per layer — so the scalar reference quantizers showed up in profiles. Both are
/// bit-identical to the scalar quantizers (LegacyQuants.QuantQ8_0Activation, KQuants.QuantQ8_K), which the tests check.
/// </summary>
internal static unsafe class ActivationQuant
{
    public static bool IsAccelerated => Vector512.IsHardwareAccelerated && Avx512F.IsSupported && Avx512BW.IsSupported;

    /// <summary>One 256-value Q8_K block: float d, 256 int8 quants, 16 int16 sums of 16 (the reference's layout).</summary>
    public static void Q8K(ReadOnlySpan<float> x, Span<byte> b)
    {
        if (x.Length < KQuants.QK_K || b.Length < 292) throw new ArgumentException("a Q8_K block needs 256 values and 292 bytes");
        fixed (float* xp = x)
        fixed (byte* bp = b)
        {
            var amaxV = Vector512<float>.Zero;
            for (int j = 0; j < KQuants.QK_K; j += 16) amaxV = Vector512.Max(amaxV, Vector512.Abs(Vector512.Load(xp + j)));
            float amax = MaxOf(Vector256.Max(amaxV.GetLower(), amaxV.GetUpper()));
            if (amax == 0)
            {
                b.Slice(0, 292).Clear();
                return;
            }
            // the signed value of the first element of largest magnitude, as the reference picks it
            float max = 0;
            for (int j = 0; j < KQuants.QK_K; j += 16)
            {
                ulong hit = Vector512.Equals(Vector512.Abs(Vector512.Load(xp + j)), Vector512.Create(amax)).ExtractMostSignificantBits();
                if (hit != 0)
                {
                    max = xp[j + BitOperations.TrailingZeroCount(hit)];
                    break;
                }
            }
            float iscale = -127f / max;
            if (float.IsInfinity(iscale))
            {
                // amax under 127/FLT_MAX: the reference's nearest_int maps every ±inf / NaN product to 0
                b.Slice(0, 292).Clear();
                *(float*)bp = 1 / iscale;
                return;
            }
            var scale = Vector512.Create(iscale);
            short* sums = (short*)(bp + KQuants.Q8KBsumsOffset);
            for (int j = 0; j < KQuants.QK_K; j += 16)
            {
                // NearestInt in the reference is round-half-to-even, as Vector512.Round is
                var q = Vector512.Min(Vector512.ConvertToInt32(Vector512.Round(Vector512.Load(xp + j) * scale)), Vector512.Create(127));
                Avx512F.ConvertToVector128SByte(q).Store((sbyte*)(bp + KQuants.Q8KQsOffset + j));
                sums[j / 16] = (short)Vector512.Sum(q);
            }
            *(float*)bp = 1 / iscale;
        }
    }

    /// <summary>One 32-value Q8_0 block (half d + 32 int8) as <see cref="LegacyQuants.QuantQ8_0Activation"/> (x86 ggml-cpu's rounding); returns Σq.</summary>
    public static int Q8_0(float* x, byte* b)
    {
        var v0 = Vector512.Load(x);
        var v1 = Vector512.Load(x + 16);
        var a = Vector512.Max(Vector512.Abs(v0), Vector512.Abs(v1));
        float amax = MaxOf(Vector256.Max(a.GetLower(), a.GetUpper()));
        float id = amax != 0 ? 127f / amax : 0f;
        BinaryPrimitives.WriteUInt16LittleEndian(new Span<byte>(b, 2), FloatConvert.FloatToHalf(amax / 127));
        if (float.IsInfinity(id))
        {
            // as LegacyQuants.QuantQ8_0Activation: x86 ggml-cpu stores -128 for a scale that overflowed (d is 0)
            new Span<byte>(b + 2, 32).Fill(0x80);
            return -32 * 128;
        }
        // Vector512.Round is round-half-to-even, as _mm256_round_ps(_MM_ROUND_NEAREST)
        var q0 = Vector512.ConvertToInt32(Vector512.Round(v0 * Vector512.Create(id)));
        var q1 = Vector512.ConvertToInt32(Vector512.Round(v1 * Vector512.Create(id)));
        Avx512F.ConvertToVector128SByte(q0).Store((sbyte*)(b + 2));
        Avx512F.ConvertToVector128SByte(q1).Store((sbyte*)(b + 18));
        return Vector512.Sum(q0 + q1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float MaxOf(Vector256<float> v)
    {
        var m = Vector128.Max(v.GetLower(), v.GetUpper());
        m = Vector128.Max(m, Vector128.Shuffle(m, Vector128.Create(2, 3, 0, 1)));
        m = Vector128.Max(m, Vector128.Shuffle(m, Vector128.Create(1, 0, 3, 2)));
        return m.ToScalar();
    }
}
