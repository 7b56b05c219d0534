namespace Sputnik.Models;

/// <summary>
/// YaRN RoPE as ggml computes it (ggml_rope_yarn_corr_dims / rope_yarn_ramp) and the deepseek2 softmax-scale
/// correction from llama.cpp's graph. Kept separate so the formulas are unit-tested on their own.
/// </summary>
public static class Yarn
{
    /// <summary>
    /// The pair-index range [low, high] over which YaRN blends interpolated and extrapolated angles:
    /// corr(β) = d·ln(L0 / (β·2π)) / (2 ln base); low = max(0, ⌊corr(β_fast)⌋), high = min(d−1, ⌈corr(β_slow)⌉).
    /// </summary>
    public static (float Low, float High) CorrectionDims(int ropeDims, int originalContext, float ropeBase, float betaFast, float betaSlow)
    {
        float Corr(float beta) => ropeDims * MathF.Log(originalContext / (beta * 2 * MathF.PI)) / (2 * MathF.Log(ropeBase));
        float start = MathF.Floor(Corr(betaFast)), end = MathF.Ceiling(Corr(betaSlow));
        return (Math.Max(0, start), Math.Min(ropeDims - 1, end));
    }

    /// <summary>1 at pair indices below <paramref name="low"/> (keep the original, extrapolated angle), 0 above <paramref name="high"/> (interpolate).</summary>
    public static float Ramp(float low, float high, int pair)
    {
        float y = (pair - low) / Math.Max(0.001f, high - low);
        return 1 - Math.Min(1, Math.Max(0, y));
    }

    /// <summary>
    /// Angles for one position, one per rotated pair. With <paramref name="factor"/> = 1 this is plain RoPE
    /// θ_i = pos·base^(−2i/d). With YaRN, θ = θ_interp·(1−ramp) + θ_extrap·ramp where θ_interp = θ_extrap / factor.
    /// The cos/sin magnitude stays 1: llama.cpp's deepseek2 graph passes an attn_factor that cancels ggml's internal
    /// mscale and folds the whole correction into the softmax scale instead (<see cref="KqScale"/>).
    /// </summary>
    public static void Angles(int pos, int ropeDims, float ropeBase, float factor, float low, float high, Span<float> cos, Span<float> sin)
    {
        int pairs = ropeDims / 2;
        for (int i = 0; i < pairs; i++)
        {
            double extrap = pos * Math.Pow(ropeBase, -2.0 * i / ropeDims);
            double theta = extrap;
            if (factor != 1f)
            {
                double ramp = Ramp(low, high, i);
                theta = extrap / factor * (1 - ramp) + extrap * ramp;
            }
            cos[i] = (float)Math.Cos(theta);
            sin[i] = (float)Math.Sin(theta);
        }
    }

    /// <summary>YaRN's magnitude correction 0.1·m·ln(s) + 1 (1 when not extending the context).</summary>
    public static float MScale(float factor, float m) => factor <= 1f ? 1f : 0.1f * m * MathF.Log(factor) + 1f;

    /// <summary>
    /// Softmax scale of deepseek2 attention: mscale² / sqrt(qk_head_dim) with mscale = 1 + 0.1·mscale_all_dim·ln(factor)
    /// (llama.cpp deepseek2.cpp; the official inference code squares the same mscale).
    /// </summary>
    public static float KqScale(int qkHeadDim, float factor, float logMultiplier)
    {
        float m = MScale(factor, logMultiplier);
        return m * m / MathF.Sqrt(qkHeadDim);
    }
}
