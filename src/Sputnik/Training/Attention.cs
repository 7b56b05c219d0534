using System.Numerics.Tensors;

namespace Sputnik.Training;

/// <summary>
/// Causal multi-head attention with grouped KV heads (GQA; MQA when kvHeads = 1) and separate key/value widths, so
/// the same kernel serves the llama block (dk = dv = headDim) and MLA (dk = nope + rope, dv = v_head_dim).
/// Layout: q [B·T, H, dk], k [B·T, Hk, dk], v [B·T, Hk, dv], out [B·T, H, dv], att (saved probabilities) [B, H, T, T].
/// Work is split over (batch, kv head) so the heads sharing a K/V never race on dk/dv in the backward pass.
/// </summary>
internal static class Attention
{
    public static void Forward(Span<float> output, Span<float> att, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
        int b, int t, int heads, int kvHeads, int dk, int dv, float scale)
    {
        unsafe
        {
            fixed (float* po = output, pa = att, pq = q, pk = k, pv = v)
            {
                float* o = po, a = pa, qq = pq, kk = pk, vv = pv;
                int group = heads / kvHeads;
                Par.For(b * kvHeads, (i0, i1) =>
                {
                    for (int i = i0; i < i1; i++)
                    {
                        int bi = i / kvHeads, kh = i % kvHeads;
                        for (int h = kh * group; h < (kh + 1) * group; h++)
                            for (int ti = 0; ti < t; ti++)
                            {
                                long row = (long)bi * t + ti;
                                var qv = new ReadOnlySpan<float>(qq + (row * heads + h) * dk, dk);
                                var arow = new Span<float>(a + (((long)bi * heads + h) * t + ti) * t, t);
                                for (int t2 = 0; t2 <= ti; t2++)
                                    arow[t2] = TensorPrimitives.Dot(qv, new ReadOnlySpan<float>(kk + (((long)bi * t + t2) * kvHeads + kh) * dk, dk)) * scale;
                                var live = arow[..(ti + 1)];
                                float max = TensorPrimitives.Max(live);
                                TensorPrimitives.Subtract(live, max, live);
                                TensorPrimitives.Exp(live, live);
                                TensorPrimitives.Multiply(live, 1f / TensorPrimitives.Sum(live), live);
                                arow[(ti + 1)..].Clear();
                                var orow = new Span<float>(o + (row * heads + h) * dv, dv);
                                orow.Clear();
                                for (int t2 = 0; t2 <= ti; t2++)
                                    TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(vv + (((long)bi * t + t2) * kvHeads + kh) * dv, dv), arow[t2], orow, orow);
                            }
                    }
                });
            }
        }
    }

    /// <summary>
    /// in the forward pass this was: out = Σ_t2 att[t2]·v[t2], att = softmax(scale·q·k[t2]); so
    /// dv[t2] += att[t2]·dout, datt[t2] = v[t2]·dout, dpre = att·(datt − Σ att·datt), dq += scale·Σ dpre·k, dk[t2] += scale·dpre·q.
    /// </summary>
    public static void Backward(Span<float> dq, Span<float> dk, Span<float> dv, ReadOnlySpan<float> dout,
        ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, ReadOnlySpan<float> att,
        int b, int t, int heads, int kvHeads, int dkDim, int dvDim, float scale)
    {
        unsafe
        {
            fixed (float* pdq = dq, pdk = dk, pdv = dv, pdo = dout, pq = q, pk = k, pv = v, pa = att)
            {
                float* dQ = pdq, dK = pdk, dV = pdv, dO = pdo, qq = pq, kk = pk, vv = pv, a = pa;
                int group = heads / kvHeads, dkd = dkDim, dvd = dvDim;
                Par.For(b * kvHeads, (i0, i1) =>
                {
                    var datt = new float[t];
                    for (int i = i0; i < i1; i++)
                    {
                        int bi = i / kvHeads, kh = i % kvHeads;
                        for (int h = kh * group; h < (kh + 1) * group; h++)
                            for (int ti = 0; ti < t; ti++)
                            {
                                long row = (long)bi * t + ti;
                                var arow = new ReadOnlySpan<float>(a + (((long)bi * heads + h) * t + ti) * t, ti + 1);
                                var dorow = new ReadOnlySpan<float>(dO + (row * heads + h) * dvd, dvd);
                                for (int t2 = 0; t2 <= ti; t2++)
                                {
                                    long kv = ((long)bi * t + t2) * kvHeads + kh;
                                    datt[t2] = TensorPrimitives.Dot(new ReadOnlySpan<float>(vv + kv * dvd, dvd), dorow);
                                    var dvrow = new Span<float>(dV + kv * dvd, dvd);
                                    TensorPrimitives.MultiplyAdd(dorow, arow[t2], dvrow, dvrow);
                                }
                                float sum = TensorPrimitives.Dot(arow, datt.AsSpan(0, ti + 1));
                                var qv = new ReadOnlySpan<float>(qq + (row * heads + h) * dkd, dkd);
                                var dqv = new Span<float>(dQ + (row * heads + h) * dkd, dkd);
                                for (int t2 = 0; t2 <= ti; t2++)
                                {
                                    float dpre = arow[t2] * (datt[t2] - sum) * scale;
                                    if (dpre == 0f) continue;
                                    long kv = ((long)bi * t + t2) * kvHeads + kh;
                                    TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(kk + kv * dkd, dkd), dpre, dqv, dqv);
                                    var dkrow = new Span<float>(dK + kv * dkd, dkd);
                                    TensorPrimitives.MultiplyAdd(qv, dpre, dkrow, dkrow);
                                }
                            }
                    }
                });
            }
        }
    }
}
