using System.Numerics.Tensors;

namespace Sputnik.Tensors;

/// <summary>The small per-token operations of a transformer block, vectorised through TensorPrimitives.</summary>
internal static class Ops
{
    /// <summary>out = x / sqrt(mean(x²) + eps) * weight.</summary>
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> output)
    {
        float ss = TensorPrimitives.SumOfSquares(x);
        float scale = 1f / MathF.Sqrt(ss / x.Length + eps);
        TensorPrimitives.Multiply(x, scale, output);
        TensorPrimitives.Multiply(output, weight, output);
    }

    /// <summary>In-place numerically stable softmax.</summary>
    public static void Softmax(Span<float> x)
    {
        float max = TensorPrimitives.Max(x);
        TensorPrimitives.Subtract(x, max, x);
        TensorPrimitives.Exp(x, x);
        float sum = TensorPrimitives.Sum(x);
        TensorPrimitives.Multiply(x, 1f / sum, x);
    }

    /// <summary>gate = silu(gate) * up, the SwiGLU non-linearity.</summary>
    public static void SwiGlu(Span<float> gate, ReadOnlySpan<float> up)
    {
        // silu(g) = g * sigmoid(g), vectorized through an L1-sized chunk (a scalar MathF.Exp per value costs
        // milliseconds per token at prefill sizes)
        const int Chunk = 256;
        Span<float> sig = stackalloc float[Chunk];
        for (int i = 0; i < gate.Length; i += Chunk)
        {
            int len = Math.Min(Chunk, gate.Length - i);
            var g = gate.Slice(i, len);
            var s = sig[..len];
            TensorPrimitives.Sigmoid(g, s);
            TensorPrimitives.Multiply(g, s, g);
            TensorPrimitives.Multiply(g, up.Slice(i, len), g);
        }
    }

    /// <summary>
    /// gpt-oss's clamped SwiGLU (ggml_swiglu_oai): g = min(gate, limit), u = clamp(up, −limit, limit),
    /// gate = g·σ(alpha·g)·(u + 1).
    /// </summary>
    public static void SwiGluOai(Span<float> gate, ReadOnlySpan<float> up, float alpha, float limit)
    {
        const int Chunk = 256;
        Span<float> sig = stackalloc float[Chunk];
        Span<float> lin = stackalloc float[Chunk];
        for (int i = 0; i < gate.Length; i += Chunk)
        {
            int len = Math.Min(Chunk, gate.Length - i);
            var g = gate.Slice(i, len);
            var s = sig[..len];
            var u = lin[..len];
            TensorPrimitives.Min(g, limit, g);
            TensorPrimitives.Multiply(g, alpha, s);
            TensorPrimitives.Sigmoid(s, s);
            TensorPrimitives.Multiply(g, s, g);
            TensorPrimitives.Max(up.Slice(i, len), -limit, u);
            TensorPrimitives.Min(u, limit, u);
            TensorPrimitives.Add(u, 1f, u);
            TensorPrimitives.Multiply(g, u, g);
        }
    }

    /// <summary>
    /// gate = GELU(gate) · up with GELU's tanh approximation, as ggml's CPU GeGLU computes it: the input rounded to
    /// half precision and looked up in a table of GELU values (themselves rounded to half), 0 below −10 and the
    /// identity above 10. Matching its rounding keeps greedy decoding token-equal with llama.cpp.
    /// </summary>
    public static void GeGlu(Span<float> gate, ReadOnlySpan<float> up)
    {
        Gelu(gate);
        TensorPrimitives.Multiply(gate, up, gate);
    }

    /// <summary>x = GELU(x) in place, as ggml's CPU ggml_gelu computes it (the half-precision table of <see cref="GeGlu"/>).</summary>
    public static void Gelu(Span<float> x)
    {
        const int Chunk = 256;
        var table = GeluTable.Value;
        Span<Half> half = stackalloc Half[Chunk];
        for (int i = 0; i < x.Length; i += Chunk)
        {
            int len = Math.Min(Chunk, x.Length - i);
            var g = x.Slice(i, len);
            var h = half[..len];
            TensorPrimitives.ConvertToHalf(g, h);
            for (int j = 0; j < len; j++)
            {
                float v = g[j];
                g[j] = v <= -10f ? 0f : v >= 10f ? v : table[BitConverter.HalfToUInt16Bits(h[j])];
            }
        }
    }

    /// <summary>out = (x − mean) / sqrt(var + eps) · weight + bias (ggml_norm, then the affine part: bert's LayerNorm).</summary>
    public static void LayerNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, float eps, Span<float> output)
    {
        float mean = TensorPrimitives.Sum(x) / x.Length;
        TensorPrimitives.Subtract(x, mean, output);
        float variance = TensorPrimitives.SumOfSquares(output) / x.Length;
        TensorPrimitives.Multiply(output, 1f / MathF.Sqrt(variance + eps), output);
        TensorPrimitives.MultiplyAdd(output, weight, bias, output);
    }

    /// <summary>GELU (tanh approximation, in float as ggml_gelu_f32) of every half value, rounded to half and widened back.</summary>
    private static readonly Lazy<float[]> GeluTable = new(() =>
    {
        const float Coef = 0.044715f, Sqrt2OverPi = 0.79788456080286535587989211986876f;
        var t = new float[1 << 16];
        for (int i = 0; i < t.Length; i++)
        {
            float x = (float)BitConverter.UInt16BitsToHalf((ushort)i);
            float gelu = 0.5f * x * (1.0f + MathF.Tanh(Sqrt2OverPi * x * (1.0f + Coef * x * x)));
            t[i] = (float)(Half)gelu;
        }
        return t;
    });

    /// <summary>
    /// Rotates one head in place. <paramref name="cos"/>/<paramref name="sin"/> hold one angle per rotated pair.
    /// Normal pairing rotates (x[2i], x[2i+1]) as llama.cpp does for `llama` (whose Q/K rows the converter
    /// permuted); NeoX pairing rotates (x[i], x[i + n/2]) as Qwen2 and the HF layout expect.
    /// </summary>
    public static void Rope(Span<float> head, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, bool neox)
    {
        int pairs = cos.Length;
        if (neox)
        {
            for (int i = 0; i < pairs; i++)
            {
                float a = head[i], b = head[i + pairs];
                head[i] = a * cos[i] - b * sin[i];
                head[i + pairs] = a * sin[i] + b * cos[i];
            }
        }
        else
        {
            for (int i = 0; i < pairs; i++)
            {
                float a = head[2 * i], b = head[2 * i + 1];
                head[2 * i] = a * cos[i] - b * sin[i];
                head[2 * i + 1] = a * sin[i] + b * cos[i];
            }
        }
    }
}
