using System.Numerics.Tensors;

namespace Sputnik.Training;

/// <summary>
/// Causal multi-head attention with grouped KV heads (GQA; MQA when kvHeads = 1) and separate key/value widths, so
/// the same kernel serves the llama block (dk = dv = headDim) and MLA (dk = nope + rope, dv = v_head_dim).
/// Layout: q [B·T, H, dk], k [B·T, Hk, dk], v [B·T, Hk, dv], out [B·T, H, dv], att (saved probabilities) [B, H, T, T].
/// Each head is three or five small GEMMs (scores, softmax, values; backward: dP, dQ, dK, dV) through
/// <see cref="Gemm.MulRows"/>, with the causal triangle skipped block-wise; work is split over (batch, kv head), so
/// the heads sharing a K/V never race on dk/dv in the backward pass.
/// </summary>
internal static unsafe class Attention
{
    public static void Forward(Span<float> output, Span<float> att, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
        int b, int t, int heads, int kvHeads, int dk, int dv, float scale)
    {
        fixed (float* po = output, pa = att, pq = q, pk = k, pv = v)
        {
            float* o = po, a = pa, qq = pq, kk = pk, vv = pv;
            int group = heads / kvHeads;
            Par.For(b * kvHeads, (i0, i1) =>
            {
                var ktBuf = Gemm.Rent(dk * t);
                try
                {
                    fixed (float* kt = ktBuf)
                        for (int i = i0; i < i1; i++)
                        {
                            int bi = i / kvHeads, kh = i % kvHeads;
                            float* kHead = kk + ((long)bi * t * kvHeads + kh) * dk, vHead = vv + ((long)bi * t * kvHeads + kh) * dv;
                            Gemm.Transpose(kt, t, kHead, kvHeads * dk, t, dk);               // Kᵀ [dk, T]
                            for (int h = kh * group; h < (kh + 1) * group; h++)
                            {
                                float* s = a + ((long)bi * heads + h) * t * t;
                                float* qHead = qq + ((long)bi * t * heads + h) * dk;
                                Gemm.MulRows(s, t, qHead, heads * dk, 1, kt, t, t, t, dk, false, Causal.Columns, 0, t);
                                for (int ti = 0; ti < t; ti++) SoftmaxRow(new Span<float>(s + (long)ti * t, t), ti + 1, scale);
                                Gemm.MulRows(o + ((long)bi * t * heads + h) * dv, heads * dv, s, t, 1, vHead, kvHeads * dv, t, dv, t, false, Causal.Depth, 0, t);
                            }
                        }
                }
                finally { Gemm.Return(ktBuf); }
            });
        }
    }

    /// <summary>row[..live] = softmax(scale·row[..live]); the masked future row[live..] becomes exactly 0.</summary>
    private static void SoftmaxRow(Span<float> row, int live, float scale)
    {
        var l = row[..live];
        TensorPrimitives.Multiply(l, scale, l);
        float max = TensorPrimitives.Max(l);
        TensorPrimitives.Subtract(l, max, l);
        TensorPrimitives.Exp(l, l);
        TensorPrimitives.Multiply(l, 1f / TensorPrimitives.Sum(l), l);
        row[live..].Clear();
    }

    /// <summary>
    /// in the forward pass this was: out = P·V, P = softmax(scale·Q·Kᵀ) row-wise; so dP = dout·Vᵀ,
    /// dS = P ⊙ (dP − rowsum(P ⊙ dP))·scale, dQ += dS·K, dK += dSᵀ·Q, dV += Pᵀ·dout.
    /// </summary>
    public static void Backward(Span<float> dq, Span<float> dk, Span<float> dv, ReadOnlySpan<float> dout,
        ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, ReadOnlySpan<float> att,
        int b, int t, int heads, int kvHeads, int dkDim, int dvDim, float scale)
    {
        fixed (float* pdq = dq, pdk = dk, pdv = dv, pdo = dout, pq = q, pk = k, pv = v, pa = att)
        {
            float* dQ = pdq, dK = pdk, dV = pdv, dO = pdo, qq = pq, kk = pk, vv = pv, a = pa;
            int group = heads / kvHeads, dkd = dkDim, dvd = dvDim;
            Par.For(b * kvHeads, (i0, i1) =>
            {
                var vtBuf = Gemm.Rent(dvd * t); var dsBuf = Gemm.Rent(t * t);
                try
                {
                    fixed (float* vt = vtBuf, ds = dsBuf)
                        for (int i = i0; i < i1; i++)
                        {
                            int bi = i / kvHeads, kh = i % kvHeads;
                            long kvOff = (long)bi * t * kvHeads + kh;
                            Gemm.Transpose(vt, t, vv + kvOff * dvd, kvHeads * dvd, t, dvd);   // Vᵀ [dv, T]
                            for (int h = kh * group; h < (kh + 1) * group; h++)
                            {
                                float* p = a + ((long)bi * heads + h) * t * t;
                                long qOff = (long)bi * t * heads + h;
                                float* dOut = dO + qOff * dvd;
                                Gemm.MulRows(ds, t, dOut, heads * dvd, 1, vt, t, t, t, dvd, false, Causal.Columns, 0, t);  // dP
                                for (int ti = 0; ti < t; ti++)
                                {
                                    var pr = new ReadOnlySpan<float>(p + (long)ti * t, ti + 1);
                                    var dr = new Span<float>(ds + (long)ti * t, t);
                                    float sum = TensorPrimitives.Dot(pr, dr[..(ti + 1)]);
                                    TensorPrimitives.Subtract(dr[..(ti + 1)], sum, dr[..(ti + 1)]);
                                    TensorPrimitives.Multiply(dr[..(ti + 1)], pr, dr[..(ti + 1)]);
                                    TensorPrimitives.Multiply(dr[..(ti + 1)], scale, dr[..(ti + 1)]);
                                    dr[(ti + 1)..].Clear();
                                }
                                Gemm.MulRows(dQ + qOff * dkd, heads * dkd, ds, t, 1, kk + kvOff * dkd, kvHeads * dkd, t, dkd, t, true, Causal.Depth, 0, t);
                                Gemm.MulRows(dK + kvOff * dkd, kvHeads * dkd, ds, 1, t, qq + qOff * dkd, heads * dkd, t, dkd, t, true, Causal.DepthFrom, 0, t);
                                Gemm.MulRows(dV + kvOff * dvd, kvHeads * dvd, p, 1, t, dOut, heads * dvd, t, dvd, t, true, Causal.DepthFrom, 0, t);
                            }
                        }
                }
                finally { Gemm.Return(vtBuf); Gemm.Return(dsBuf); }
            });
        }
    }
}
