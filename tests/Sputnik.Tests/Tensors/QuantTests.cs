using Sputnik.Tensors;
using Sputnik.Tensors.Quants;
using Xunit;

namespace Sputnik.Tests.Tensors;

public class QuantTests
{
    public static readonly TheoryData<GgmlType> AllTypes = new(
        GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_1,
        GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.Q8_K, GgmlType.MXFP4);

    // ---------------- hand-built blocks ----------------

    [Fact]
    public void Q8_0_block_decodes_by_hand()
    {
        var b = new byte[34];
        b[0] = 0x00; b[1] = 0x38; // f16 0.5
        b[2] = 1; b[3] = unchecked((byte)-2); b[4] = 127; b[5] = 0x80; // -128
        var y = new float[32];
        Dequant.Row(GgmlType.Q8_0, b, y);
        Assert.Equal(0.5f, y[0]);
        Assert.Equal(-1f, y[1]);
        Assert.Equal(63.5f, y[2]);
        Assert.Equal(-64f, y[3]);
        Assert.Equal(0f, y[31]);
    }

    [Fact]
    public void Q4_0_block_decodes_by_hand()
    {
        var b = new byte[18];
        b[0] = 0x00; b[1] = 0x40; // f16 2.0
        for (int i = 2; i < 18; i++) b[i] = 0x88; // zero point
        b[2] = 0x3A; // weight 0: 10 -> (10-8)*2 = 4; weight 16: 3 -> (3-8)*2 = -10
        b[17] = 0xF0; // weight 15: 0 -> -16; weight 31: 15 -> 14
        var y = new float[32];
        Dequant.Row(GgmlType.Q4_0, b, y);
        Assert.Equal(4f, y[0]);
        Assert.Equal(-10f, y[16]);
        Assert.Equal(-16f, y[15]);
        Assert.Equal(14f, y[31]);
        Assert.Equal(0f, y[5]);
    }

    [Fact]
    public void Q4_1_and_Q5_0_Q5_1_blocks_decode_by_hand()
    {
        // Q4_1: d = 0.5, m = -1; byte 0x4F -> w0 = 15*0.5-1 = 6.5, w16 = 4*0.5-1 = 1
        var b41 = new byte[20];
        b41[1] = 0x38; b41[2] = 0x00; b41[3] = 0xBC; b41[4] = 0x4F;
        var y = new float[32];
        Dequant.Row(GgmlType.Q4_1, b41, y);
        Assert.Equal(6.5f, y[0]);
        Assert.Equal(1f, y[16]);
        Assert.Equal(-1f, y[1]);

        // Q5_0: d = 1; qh bit 0 (weight 0) and bit 17 (weight 17) set; qs[0] = 0x21, qs[1] = 0x30
        var b50 = new byte[22];
        b50[1] = 0x3C;
        b50[2] = 0x01; b50[4] = 0x02; // qh = 1 | 1<<17
        b50[6] = 0x21; b50[7] = 0x30;
        Dequant.Row(GgmlType.Q5_0, b50, y);
        Assert.Equal((1 + 16) - 16f, y[0]);
        Assert.Equal(2 - 16f, y[16]);
        Assert.Equal(0 - 16f, y[1]);
        Assert.Equal((3 + 16) - 16f, y[17]);

        // Q5_1: d = 1, m = 0.5, qh bit 31 (weight 31) set, qs[15] = 0xF0
        var b51 = new byte[24];
        b51[1] = 0x3C; b51[3] = 0x38;
        b51[7] = 0x80; b51[8 + 15] = 0xF0;
        Dequant.Row(GgmlType.Q5_1, b51, y);
        Assert.Equal(31.5f, y[31]);
        Assert.Equal(0.5f, y[15]);
    }

    [Fact]
    public void Q4_K_block_decodes_by_hand()
    {
        // d = 1, dmin = 0.5; sub-block scales {1,2,3,4,17,5,6,7}, mins {0,1,2,3,33,4,5,6}
        var b = new byte[144];
        b[0] = 0x00; b[1] = 0x3C; b[2] = 0x00; b[3] = 0x38;
        byte[] sc = [65, 2, 3, 4, 128, 1, 2, 3, 0x11, 0x45, 0x56, 0x67];
        sc.CopyTo(b, 4);
        for (int i = 16; i < 144; i++) b[i] = 0x53; // low 3, high 5
        b[16] = 0xF0; // weight 0 -> 0, weight 32 -> 15
        var y = new float[256];
        Dequant.Row(GgmlType.Q4_K, b, y);
        Assert.Equal(0f, y[0]);                  // 1*1*0 - 0.5*0
        Assert.Equal(3f, y[1]);                  // 1*1*3 - 0
        Assert.Equal(29.5f, y[32]);              // 2*15 - 0.5*1
        Assert.Equal(9.5f, y[33]);               // 2*5 - 0.5*1
        Assert.Equal(34.5f, y[128 + 5]);         // 17*3 - 0.5*33
        Assert.Equal(23f, y[160 + 5]);           // 5*5 - 0.5*4
        Assert.Equal(32f, y[255]);               // 7*5 - 0.5*6
    }

    [Fact]
    public void Q5_K_block_decodes_by_hand()
    {
        // d = 1, dmin = 1; scales {2,1,1,1,1,1,1,1}, mins {1,0,...}
        var b = new byte[176];
        b[1] = 0x3C; b[3] = 0x3C;
        byte[] sc = [2, 1, 1, 1, 1, 0, 0, 0, 0x01, 0x01, 0x01, 0x01];
        sc.CopyTo(b, 4);
        b[16] = 0x07;           // qh[0]: weight 0, 32, 64 get +16
        b[48] = 0x21;           // ql[0]: weight 0 low 1, weight 32 high 2
        var y = new float[256];
        Dequant.Row(GgmlType.Q5_K, b, y);
        Assert.Equal(33f, y[0]);   // 2*(1+16) - 1
        Assert.Equal(-1f, y[1]);   // 2*0 - 1
        Assert.Equal(18f, y[32]);  // 1*(2+16) - 0
        Assert.Equal(16f, y[64]);  // 1*(0+16)
        Assert.Equal(0f, y[96]);
    }

    [Fact]
    public void Q6_K_block_decodes_by_hand()
    {
        var b = new byte[210];
        b[208] = 0x00; b[209] = 0x34; // d = 0.25
        sbyte[] scales = [2, 1, -3, 0, 4, 0, 5, 0, -1, 0, 0, 0, 0, 0, 0, 0];
        for (int i = 0; i < 16; i++) b[192 + i] = unchecked((byte)scales[i]);
        b[0] = 0x21; b[32] = 0x43; b[128] = 0xE4;
        b[64] = 0xFF; b[128 + 32] = 0xFF;
        var y = new float[256];
        Dequant.Row(GgmlType.Q6_K, b, y);
        Assert.Equal(-15.5f, y[0]);   // 0.25*2*(1-32)
        Assert.Equal(9.75f, y[32]);   // 0.25*-3*((3|1<<4)-32)
        Assert.Equal(2f, y[64]);      // 0.25*4*((2|2<<4)-32)
        Assert.Equal(25f, y[96]);     // 0.25*5*((4|3<<4)-32)
        Assert.Equal(-8f, y[16]);     // 0.25*1*(-32)
        Assert.Equal(-7.75f, y[128]); // 0.25*-1*(63-32)
    }

    [Fact]
    public void F16_and_BF16_decode_by_hand()
    {
        byte[] h = [0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B, 0x01, 0x00];
        var y = new float[4];
        Dequant.Row(GgmlType.F16, h, y);
        Assert.Equal([1f, -2f, 65504f, MathF.Pow(2, -24)], y);

        byte[] bf = new byte[2 * 20];
        for (int i = 0; i < 20; i++) { bf[2 * i] = 0x80; bf[2 * i + 1] = 0x3F; } // 1.0
        bf[2] = 0x00; bf[3] = 0xC0; bf[38] = 0x49; bf[39] = 0x40;
        var z = new float[20];
        Dequant.Row(GgmlType.BF16, bf, z);
        Assert.Equal(1f, z[0]);
        Assert.Equal(-2f, z[1]);
        Assert.Equal(3.140625f, z[19]);
        Assert.Equal(1f, z[17]);
    }

    [Fact]
    public void BF16_rounds_to_nearest_even_and_keeps_nan()
    {
        Assert.Equal(0x3F80, FloatConvert.FloatToBF16(BitConverter.Int32BitsToSingle(0x3F808000))); // tie, even stays
        Assert.Equal(0x3F82, FloatConvert.FloatToBF16(BitConverter.Int32BitsToSingle(0x3F818000))); // tie, odd rounds up
        Assert.Equal(0x3F81, FloatConvert.FloatToBF16(BitConverter.Int32BitsToSingle(0x3F808001)));
        Assert.True(float.IsNaN(FloatConvert.BF16ToFloat(FloatConvert.FloatToBF16(float.NaN))));
        Assert.Equal(float.PositiveInfinity, FloatConvert.BF16ToFloat(FloatConvert.FloatToBF16(float.PositiveInfinity)));
        Assert.Equal(0x3C00, FloatConvert.FloatToHalf(1f));
        Assert.Equal(0x3C00, FloatConvert.FloatToHalf(1f + MathF.Pow(2, -11))); // tie to even
        Assert.Equal(0x3C01, FloatConvert.FloatToHalf(1f + 3 * MathF.Pow(2, -11) / 2));
    }

    [Fact]
    public void Unsupported_types_throw_naming_the_type()
    {
        var ex = Assert.Throws<NotSupportedException>(() => Dequant.Row(GgmlType.Q2_K, new byte[84], new float[256]));
        Assert.Contains("Q2_K", ex.Message);
        var ex2 = Assert.Throws<NotSupportedException>(() => Quant.Row(GgmlType.Q3_K, new float[256], new byte[110]));
        Assert.Contains("Q3_K", ex2.Message);
        Assert.Throws<ArgumentException>(() => Dequant.Row(GgmlType.Q8_0, new byte[33], new float[32]));
    }

    // ---------------- hand-checked quantization ----------------

    [Fact]
    public void Q8_0_quantizes_like_reference()
    {
        var x = new float[32];
        x[0] = 127f; x[1] = -63.5f; x[2] = 0.5f; x[3] = -0.5f; x[4] = 1.49f;
        var b = new byte[34];
        Quant.Row(GgmlType.Q8_0, x, b);
        Assert.Equal(0x3C00, b[0] | (b[1] << 8)); // d = 1
        Assert.Equal(127, (sbyte)b[2]);
        Assert.Equal(-64, (sbyte)b[3]); // roundf: half away from zero
        Assert.Equal(1, (sbyte)b[4]);
        Assert.Equal(-1, (sbyte)b[5]);
        Assert.Equal(1, (sbyte)b[6]);
    }

    [Fact]
    public void Q4_0_quantizes_like_reference()
    {
        var x = new float[32];
        x[0] = -16f; x[1] = 8f; x[2] = 2.9f; x[16] = 14f;
        var b = new byte[18];
        Quant.Row(GgmlType.Q4_0, x, b);
        Assert.Equal(0x4000, b[0] | (b[1] << 8)); // d = -16/-8 = 2
        Assert.Equal(0, b[2] & 0xF);              // -16/2 + 8.5 -> 0
        Assert.Equal(15, b[2] >> 4);              // 14/2 + 8.5 = 15.5 -> 15
        Assert.Equal(12, b[3] & 0xF);             // 8/2 + 8.5 = 12.5 -> 12
        Assert.Equal(9, b[4] & 0xF);              // 1.45 + 8.5 = 9.95 -> 9
    }

    [Fact]
    public void Mxfp4_block_decodes_by_hand()
    {
        var b = new byte[17];
        b[0] = 127; // scale 2^0; ggml's doubled values times half of it
        b[1] = 0xD7; // weight 0: nibble 7 -> 6, weight 16: nibble 13 -> -3
        b[2] = 0x91; // weight 1: 0.5, weight 17: -0.5
        b[16] = 0x8F; // weight 15: nibble 15 -> -6, weight 31: nibble 8 (negative zero) -> 0
        var y = new float[32];
        Dequant.Row(GgmlType.MXFP4, b, y);
        Assert.Equal(6f, y[0]);
        Assert.Equal(-3f, y[16]);
        Assert.Equal(0.5f, y[1]);
        Assert.Equal(-0.5f, y[17]);
        Assert.Equal(-6f, y[15]);
        Assert.Equal(0f, y[31]);
        Assert.Equal(0f, y[5]);
        // The E8M0 extremes: 2^-127 (a float denormal) and 2^127, exact.
        b[0] = 0;
        Dequant.Row(GgmlType.MXFP4, b, y);
        Assert.Equal(BitConverter.Int32BitsToSingle((2 << 23) | 0x400000), y[0]); // 12 · 2^-128 = 1.5 · 2^-125
        b[0] = 254;
        Dequant.Row(GgmlType.MXFP4, b, y);
        Assert.Equal(BitConverter.Int32BitsToSingle(253 << 23), y[1]); // 1 · 2^126
    }

    [Fact]
    public void Mxfp4_quantizes_like_reference()
    {
        var x = new float[32];
        x[0] = 6f; x[1] = -3f; x[2] = 0.75f; x[3] = 5f; x[16] = -0.2f; x[17] = 2.6f;
        var b = new byte[17];
        Quant.Row(GgmlType.MXFP4, x, b);
        Assert.Equal(127, b[0]);                // ⌊log2 6⌋ − 2 + 127
        Assert.Equal(7, b[1] & 0xF);            // 6
        Assert.Equal(13, b[2] & 0xF);           // -3
        Assert.Equal(1, b[3] & 0xF);            // 0.75: 0.5 and 1 tie, the first (smaller index) wins
        Assert.Equal(6, b[4] & 0xF);            // 5: 4 and 6 tie -> 4
        Assert.Equal(0, b[1] >> 4);             // -0.2 -> +0 (index 0 before -0)
        Assert.Equal(5, b[2] >> 4);             // 2.6 -> 3
    }

    // ---------------- round trips ----------------

    private static float[] Gaussian(int n, int seed, float sigma = 1f)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            x[i] = sigma * (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return x;
    }

    private static float[] RoundTrip(GgmlType type, float[] x)
    {
        var q = new byte[GgmlTypeInfo.RowBytes(type, x.Length)];
        Quant.Row(type, x, q);
        var y = new float[x.Length];
        Dequant.Row(type, q, y);
        return y;
    }

    private static double RelRms(float[] x, float[] y)
    {
        double e = 0, s = 0;
        for (int i = 0; i < x.Length; i++) { e += (x[i] - y[i]) * (double)(x[i] - y[i]); s += x[i] * (double)x[i]; }
        return Math.Sqrt(e / s);
    }

    // Measured relative RMS error on N(0,1), 4096 weights, seeds 1..3 (llama.cpp's reference quantizers give the same ordering):
    // F16 0.00021, BF16 0.0017, Q8_0 0.0054, Q8_K 0.0071, Q6_K 0.018, Q5_K 0.037, Q5_1 0.038, Q5_0 0.044,
    // Q4_K 0.073, Q4_1 0.080, Q4_0 0.088. Bounds are those plus ~15%.
    public static readonly TheoryData<GgmlType, double> ErrorBounds = new()
    {
        { GgmlType.F32, 0 },
        { GgmlType.F16, 0.00025 },
        { GgmlType.BF16, 0.002 },
        { GgmlType.Q8_0, 0.0065 },
        { GgmlType.Q8_K, 0.0085 },
        { GgmlType.Q6_K, 0.021 },
        { GgmlType.Q5_0, 0.05 },
        { GgmlType.Q5_1, 0.045 },
        { GgmlType.Q5_K, 0.043 },
        { GgmlType.Q4_0, 0.1 },
        { GgmlType.Q4_1, 0.093 },
        { GgmlType.Q4_K, 0.085 },
        { GgmlType.MXFP4, 0.2 },
    };

    [Theory]
    [MemberData(nameof(ErrorBounds))]
    public void Random_round_trip_error_is_bounded(GgmlType type, double bound)
    {
        var msg = new List<string>();
        foreach (int seed in new[] { 1, 2, 3 })
        {
            float[] x = Gaussian(4096, seed);
            double err = RelRms(x, RoundTrip(type, x));
            msg.Add($"{err:F5}");
            Assert.True(err <= bound, $"{type}: relative RMS error {err:F5} > {bound} (seeds so far: {string.Join(", ", msg)})");
        }
        TestContext.Current.SendDiagnosticMessage($"{type}: {string.Join(", ", msg)}");
    }

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void Zero_row_round_trips_to_zero(GgmlType type)
    {
        var x = new float[512];
        float[] y = RoundTrip(type, x);
        Assert.All(y, v => Assert.Equal(0f, v));
    }

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void Constant_rows_round_trip_closely(GgmlType type)
    {
        foreach (float c in new[] { 0.7f, -3.25f, 1e-3f })
        {
            var x = new float[512];
            Array.Fill(x, c);
            float[] y = RoundTrip(type, x);
            foreach (float v in y)
            {
                Assert.False(float.IsNaN(v));
                // 1e-3 pushes Q6_K's f16 super-scale (c/4096) into f16 subnormals, as in ggml: allow 5% there
                float tol = MathF.Abs(c) < 0.01f ? 0.05f : 0.02f;
                // MXFP4's E2M1 has one mantissa bit: between 4·s and 6·s the nearest value is up to 20% off
                if (type == GgmlType.MXFP4) tol = 0.2f;
                Assert.True(MathF.Abs(v - c) <= tol * MathF.Abs(c), $"{type}: constant {c} came back as {v}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void Large_and_small_magnitudes_keep_relative_error(GgmlType type)
    {
        // d is stored as f16 in most formats, so scales must stay within f16 range: 1e3 and 1e-2 sigmas are safe.
        foreach (float sigma in new[] { 1000f, 0.01f })
        {
            float[] x = Gaussian(1024, 7, sigma);
            double err = RelRms(x, RoundTrip(type, x));
            Assert.True(err < 0.2, $"{type} sigma {sigma}: relative RMS {err}");
        }
        // tiny values: must not blow up to NaN/inf, and come back at least as small as they went in
        float[] tiny = Gaussian(512, 8, 1e-9f);
        float[] t = RoundTrip(type, tiny);
        Assert.All(t, v => Assert.True(float.IsFinite(v) && MathF.Abs(v) < 1e-7f));
    }

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void Multi_block_row_equals_blockwise(GgmlType type)
    {
        int bs = GgmlTypeInfo.BlockSize(type) == 1 ? 32 : GgmlTypeInfo.BlockSize(type);
        float[] x = Gaussian(bs * 5, 11);
        x[bs + 3] = 40f; // an outlier in block 1 only must not affect other blocks
        var whole = new byte[GgmlTypeInfo.RowBytes(type, x.Length)];
        Quant.Row(type, x, whole);
        long blockBytes = GgmlTypeInfo.RowBytes(type, bs);
        for (int i = 0; i < 5; i++)
        {
            var part = new byte[blockBytes];
            Quant.Row(type, x.AsSpan(i * bs, bs), part);
            Assert.Equal(part, whole.AsSpan((int)(i * blockBytes), (int)blockBytes).ToArray());
        }
        float[] y = RoundTrip(type, x);
        // MXFP4's nearest values to 40 in a block scaled for it are 32 and 48 (E2M1's one mantissa bit)
        Assert.True(MathF.Abs(y[bs + 3] - 40f) <= (type == GgmlType.MXFP4 ? 8f : 2f));
    }

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void Quantization_is_idempotent_on_dequantized_values(GgmlType type)
    {
        // re-quantizing decoded weights should reproduce them (nearly) exactly: grid points stay grid points
        float[] x = Gaussian(1024, 5);
        float[] y = RoundTrip(type, x);
        float[] z = RoundTrip(type, y);
        double err = RelRms(y, z);
        Assert.True(err < 0.02, $"{type}: second round trip moved values by {err}");
    }
}
