using System.Numerics.Tensors;

namespace Sputnik.Training;

/// <summary>
/// AdamW (Loshchilov &amp; Hutter): Adam moments with bias correction, and weight decay applied to the weight directly
/// (decoupled), not added to the gradient. Vectors (norm gains) can be excluded from decay with a mask.
/// </summary>
internal sealed class AdamW(int count, float beta1 = 0.9f, float beta2 = 0.95f, float eps = 1e-8f, float weightDecay = 0.1f)
{
    public float[] M { get; } = new float[count];
    public float[] V { get; } = new float[count];
    public int Step { get; set; }
    public float Beta1 { get; } = beta1;
    public float Beta2 { get; } = beta2;
    public float Eps { get; } = eps;
    public float WeightDecay { get; } = weightDecay;

    /// <summary>θ ← θ − lr·(m̂/(√v̂+ε) + wd·θ) for one step; decayMask[i] = false skips decay (null: decay all).</summary>
    public void Update(float[] param, float[] grad, float lr, bool[]? decayMask = null)
    {
        Step++;
        float bc1 = 1f - MathF.Pow(Beta1, Step), bc2 = 1f - MathF.Pow(Beta2, Step);
        float b1 = Beta1, b2 = Beta2, e = Eps, wd = WeightDecay;
        Par.For(param.Length, (s, end) =>
        {
            for (int i = s; i < end; i++)
            {
                float g = grad[i];
                float m = M[i] = b1 * M[i] + (1 - b1) * g;
                float v = V[i] = b2 * V[i] + (1 - b2) * g * g;
                float mhat = m / bc1, vhat = v / bc2;
                float decay = decayMask == null || decayMask[i] ? wd * param[i] : 0f;
                param[i] -= lr * (mhat / (MathF.Sqrt(vhat) + e) + decay);
            }
        }, minPerChunk: 65536);
    }
}

/// <summary>Learning-rate schedule and gradient clipping.</summary>
internal static class Schedule
{
    /// <summary>Linear warmup to maxLr over warmup steps, then cosine decay to minLr at totalSteps.</summary>
    public static float WarmupCosine(int step, int warmup, int totalSteps, float maxLr, float minLr)
    {
        if (step < warmup) return maxLr * (step + 1) / warmup;
        if (step >= totalSteps) return minLr;
        double progress = (double)(step - warmup) / Math.Max(1, totalSteps - warmup);
        return (float)(minLr + 0.5 * (maxLr - minLr) * (1 + Math.Cos(Math.PI * progress)));
    }

    /// <summary>Scales grad so its global L2 norm is at most maxNorm; returns the norm before clipping.</summary>
    public static float ClipGlobalNorm(float[] grad, float maxNorm)
    {
        double ss = 0;
        const int block = 1 << 16;
        for (int i = 0; i < grad.Length; i += block)
            ss += TensorPrimitives.SumOfSquares(grad.AsSpan(i, Math.Min(block, grad.Length - i)));
        float norm = (float)Math.Sqrt(ss);
        if (maxNorm > 0 && norm > maxNorm) TensorPrimitives.Multiply(grad, maxNorm / norm, grad);
        return norm;
    }
}
