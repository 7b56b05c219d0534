using System.Buffers.Binary;
using static Sputnik.Tensors.Quants.FloatConvert;

namespace Sputnik.Tensors.Quants;

/// <summary>
/// Scalar reference (de)quantizers of the 32-weight block formats, byte layouts as in ggml-common.h:
/// Q4_0 {f16 d; u8 qs[16]}, Q4_1 {f16 d, m; u8 qs[16]}, Q5_0 {f16 d; u32 qh; u8 qs[16]},
/// Q5_1 {f16 d, m; u32 qh; u8 qs[16]}, Q8_0 {f16 d; i8 qs[32]}.
/// Nibble j of a block holds weight j (low) and weight j+16 (high).
/// </summary>
internal static class LegacyQuants
{
    internal const int QK = 32;

    // ---------------- dequantization ----------------

    internal static void DequantQ8_0(ReadOnlySpan<byte> b, Span<float> y)
    {
        float d = ReadHalf(b, 0);
        for (int j = 0; j < QK; j++) y[j] = (sbyte)b[2 + j] * d;
    }

    internal static void DequantQ4_0(ReadOnlySpan<byte> b, Span<float> y)
    {
        float d = ReadHalf(b, 0);
        for (int j = 0; j < QK / 2; j++)
        {
            byte q = b[2 + j];
            y[j] = ((q & 0xF) - 8) * d;
            y[j + QK / 2] = ((q >> 4) - 8) * d;
        }
    }

    internal static void DequantQ4_1(ReadOnlySpan<byte> b, Span<float> y)
    {
        float d = ReadHalf(b, 0), m = ReadHalf(b, 2);
        for (int j = 0; j < QK / 2; j++)
        {
            byte q = b[4 + j];
            y[j] = (q & 0xF) * d + m;
            y[j + QK / 2] = (q >> 4) * d + m;
        }
    }

    internal static void DequantQ5_0(ReadOnlySpan<byte> b, Span<float> y)
    {
        float d = ReadHalf(b, 0);
        uint qh = BinaryPrimitives.ReadUInt32LittleEndian(b.Slice(2));
        for (int j = 0; j < QK / 2; j++)
        {
            byte q = b[6 + j];
            int h0 = (int)((qh >> j) << 4) & 0x10;
            int h1 = (int)(qh >> (j + 12)) & 0x10;
            y[j] = (((q & 0xF) | h0) - 16) * d;
            y[j + QK / 2] = (((q >> 4) | h1) - 16) * d;
        }
    }

    internal static void DequantQ5_1(ReadOnlySpan<byte> b, Span<float> y)
    {
        float d = ReadHalf(b, 0), m = ReadHalf(b, 2);
        uint qh = BinaryPrimitives.ReadUInt32LittleEndian(b.Slice(4));
        for (int j = 0; j < QK / 2; j++)
        {
            byte q = b[8 + j];
            int h0 = (int)((qh >> j) << 4) & 0x10;
            int h1 = (int)(qh >> (j + 12)) & 0x10;
            y[j] = ((q & 0xF) | h0) * d + m;
            y[j + QK / 2] = ((q >> 4) | h1) * d + m;
        }
    }

    // ---------------- quantization (quantize_row_*_ref) ----------------

    internal static void QuantQ8_0(ReadOnlySpan<float> x, Span<byte> b)
    {
        float amax = 0;
        for (int j = 0; j < QK; j++) amax = MathF.Max(amax, MathF.Abs(x[j]));
        float d = amax / 127;
        float id = d != 0 ? 1.0f / d : 0.0f;
        WriteHalf(b, 0, d);
        for (int j = 0; j < QK; j++) b[2 + j] = (byte)(sbyte)MathF.Round(x[j] * id, MidpointRounding.AwayFromZero);
    }

    /// <summary>
    /// A Q8_0 block of activations as ggml-cpu quantizes them on x86 (quantize_row_q8_0 in arch/x86/quants.c, the
    /// from_float of Q8_0 that feeds the Q8_0/Q4_0 dot products, Q8_0 KV-cache rows and flash attention's queries):
    /// the same d = amax/127 as the reference but the inverse taken as 127/amax rather than 1/d, and values rounded
    /// half to even (_mm256_round_ps) rather than away from zero. The two differ in the last bit of x·id often enough
    /// that one in ~10^5 values lands on the other side of a rounding boundary, and one such 8-bit step moves the
    /// logits of a random-weight model by ~0.05; the reference stays <see cref="QuantQ8_0"/> for weights.
    /// </summary>
    internal static void QuantQ8_0Activation(ReadOnlySpan<float> x, Span<byte> b)
    {
        float amax = 0;
        for (int j = 0; j < QK; j++) amax = MathF.Max(amax, MathF.Abs(x[j]));
        float id = amax != 0 ? 127f / amax : 0f;
        WriteHalf(b, 0, amax / 127);
        if (float.IsInfinity(id))
        {
            // amax under 127/FLT_MAX (denormals): every x·id is ±inf or NaN, which _mm256_cvtps_epi32 turns into
            // 0x80000000 and the saturating packs into -128; d is 0 in F16, so the block adds nothing either way.
            b.Slice(2, QK).Fill(0x80);
            return;
        }
        for (int j = 0; j < QK; j++) b[2 + j] = (byte)(sbyte)MathF.Round(x[j] * id, MidpointRounding.ToEven);
    }

    /// <summary>Signed value of largest magnitude (first one wins on ties), as the symmetric ggml quantizers pick it.</summary>
    private static float SignedAbsMax(ReadOnlySpan<float> x)
    {
        float amax = 0, max = 0;
        for (int j = 0; j < x.Length; j++)
        {
            float a = MathF.Abs(x[j]);
            if (amax < a) { amax = a; max = x[j]; }
        }
        return max;
    }

    internal static void QuantQ4_0(ReadOnlySpan<float> x, Span<byte> b)
    {
        float max = SignedAbsMax(x.Slice(0, QK));
        float d = max / -8;
        float id = d != 0 ? 1.0f / d : 0.0f;
        WriteHalf(b, 0, d);
        for (int j = 0; j < QK / 2; j++)
        {
            int q0 = Math.Min(15, (int)(x[j] * id + 8.5f));
            int q1 = Math.Min(15, (int)(x[j + QK / 2] * id + 8.5f));
            b[2 + j] = (byte)(q0 | (q1 << 4));
        }
    }

    private static void MinMax(ReadOnlySpan<float> x, out float min, out float max)
    {
        min = float.MaxValue;
        max = -float.MaxValue;
        for (int j = 0; j < x.Length; j++)
        {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
    }

    internal static void QuantQ4_1(ReadOnlySpan<float> x, Span<byte> b)
    {
        MinMax(x.Slice(0, QK), out float min, out float max);
        float d = (max - min) / 15;
        float id = d != 0 ? 1.0f / d : 0.0f;
        WriteHalf(b, 0, d);
        WriteHalf(b, 2, min);
        for (int j = 0; j < QK / 2; j++)
        {
            int q0 = Math.Min(15, (int)((x[j] - min) * id + 0.5f));
            int q1 = Math.Min(15, (int)((x[j + QK / 2] - min) * id + 0.5f));
            b[4 + j] = (byte)(q0 | (q1 << 4));
        }
    }

    internal static void QuantQ5_0(ReadOnlySpan<float> x, Span<byte> b)
    {
        float max = SignedAbsMax(x.Slice(0, QK));
        float d = max / -16;
        float id = d != 0 ? 1.0f / d : 0.0f;
        WriteHalf(b, 0, d);
        uint qh = 0;
        for (int j = 0; j < QK / 2; j++)
        {
            int q0 = Math.Min(31, (int)(x[j] * id + 16.5f));
            int q1 = Math.Min(31, (int)(x[j + QK / 2] * id + 16.5f));
            b[6 + j] = (byte)((q0 & 0xF) | ((q1 & 0xF) << 4));
            qh |= (uint)((q0 & 0x10) >> 4) << j;
            qh |= (uint)((q1 & 0x10) >> 4) << (j + QK / 2);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(b.Slice(2), qh);
    }

    internal static void QuantQ5_1(ReadOnlySpan<float> x, Span<byte> b)
    {
        MinMax(x.Slice(0, QK), out float min, out float max);
        float d = (max - min) / 31;
        float id = d != 0 ? 1.0f / d : 0.0f;
        WriteHalf(b, 0, d);
        WriteHalf(b, 2, min);
        uint qh = 0;
        for (int j = 0; j < QK / 2; j++)
        {
            int q0 = Math.Min(31, (int)((x[j] - min) * id + 0.5f));
            int q1 = Math.Min(31, (int)((x[j + QK / 2] - min) * id + 0.5f));
            b[8 + j] = (byte)((q0 & 0xF) | ((q1 & 0xF) << 4));
            qh |= (uint)((q0 & 0x10) >> 4) << j;
            qh |= (uint)((q1 & 0x10) >> 4) << (j + QK / 2);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(b.Slice(4), qh);
    }
}
