using System.Numerics.Tensors;

namespace Sputnik.Training;

/// <summary>
/// Forward/backward pairs for the dense decoder, llm.c style: each backward sits under its forward, takes the same
/// arguments in the same order (gradients first), and ACCUMULATES (+=) into input and parameter gradients.
/// Sizes: N = rows (batch·time), C = input channels, OC = output channels, V = vocab, T = sequence length.
/// Inner loops are TensorPrimitives (Vector512 on this CPU); outer loops are split over rows with <see cref="Par"/>.
/// </summary>
internal static class TrainOps
{
    // ---------------------------------------------------------------- embedding
    /// <summary>out[n,:] = wte[tokens[n],:]</summary>
    public static void EmbeddingForward(Span<float> output, ReadOnlySpan<int> tokens, ReadOnlySpan<float> wte, int c)
    {
        for (int n = 0; n < tokens.Length; n++) wte.Slice(tokens[n] * c, c).CopyTo(output.Slice(n * c, c));
    }

    /// <summary>in the forward pass this was: out[n,:] = wte[tok,:], so dwte[tok,:] += dout[n,:]</summary>
    public static void EmbeddingBackward(Span<float> dwte, ReadOnlySpan<float> dout, ReadOnlySpan<int> tokens, int c)
    {
        for (int n = 0; n < tokens.Length; n++)
        {
            var d = dwte.Slice(tokens[n] * c, c);
            TensorPrimitives.Add(d, dout.Slice(n * c, c), d);
        }
    }

    // ---------------------------------------------------------------- RMSNorm
    /// <summary>out = x · rstd · w with rstd = 1/sqrt(mean(x²)+eps); rstd[n] is kept for the backward pass.</summary>
    public static void RmsNormForward(Span<float> output, Span<float> rstd, ReadOnlySpan<float> x, ReadOnlySpan<float> w, int n, int c, float eps)
    {
        for (int i = 0; i < n; i++)
        {
            var xi = x.Slice(i * c, c);
            float r = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(xi) / c + eps);
            rstd[i] = r;
            var o = output.Slice(i * c, c);
            TensorPrimitives.Multiply(xi, r, o);
            TensorPrimitives.Multiply(o, w, o);
        }
    }

    /// <summary>dw += Σ dout·x·rstd; dx += rstd·(dout·w) − x·rstd³/C·Σ(dout·w·x).</summary>
    public static void RmsNormBackward(Span<float> dx, Span<float> dw, ReadOnlySpan<float> dout, ReadOnlySpan<float> x,
        ReadOnlySpan<float> w, ReadOnlySpan<float> rstd, int n, int c)
    {
        Span<float> g = c <= 4096 ? stackalloc float[c] : new float[c];
        for (int i = 0; i < n; i++)
        {
            var xi = x.Slice(i * c, c);
            var di = dout.Slice(i * c, c);
            float r = rstd[i];
            TensorPrimitives.Multiply(di, xi, g);                      // dw += dout·x·rstd
            TensorPrimitives.MultiplyAdd(g, r, dw, dw);
            TensorPrimitives.Multiply(di, w, g);                       // g = dout·w
            float dot = TensorPrimitives.Dot(g, xi);
            var dxi = dx.Slice(i * c, c);
            float k = -dot * r * r * r / c;
            TensorPrimitives.MultiplyAdd(g, r, dxi, dxi);
            TensorPrimitives.MultiplyAdd(xi, k, dxi, dxi);
        }
    }

    // ---------------------------------------------------------------- linear (matmul)
    /// <summary>out[N,OC] = inp[N,C] · W[OC,C]ᵀ (W is stored like a GGUF weight: one row per output channel).</summary>
    public static unsafe void MatMulForward(Span<float> output, ReadOnlySpan<float> inp, ReadOnlySpan<float> w, int n, int c, int oc)
    {
        // The kernel wants B row-major along the output; Wᵀ is OC·C floats, tiny next to the N·C·OC product.
        var wt = Gemm.Rent(c * oc);
        try
        {
            fixed (float* po = output, pi = inp, pw = w, pwt = wt)
            {
                Gemm.Transpose(pwt, pw, oc, c);
                Gemm.Mul(po, oc, pi, c, 1, pwt, oc, n, oc, c, accumulate: false);
            }
        }
        finally { Gemm.Return(wt); }
    }

    /// <summary>
    /// in the forward pass this was: out[r,j] = Σ_i inp[r,i]·W[j,i], so dinp[r,:] += Σ_j dout[r,j]·W[j,:] (dout·W, W as
    /// stored) and dW[j,:] += Σ_r dout[r,j]·inp[r,:] (doutᵀ·inp, doutᵀ read in place through strides). An empty dinp
    /// skips the input gradient.
    /// </summary>
    public static unsafe void MatMulBackward(Span<float> dinp, Span<float> dw, ReadOnlySpan<float> dout, ReadOnlySpan<float> inp,
        ReadOnlySpan<float> w, int n, int c, int oc)
    {
        fixed (float* pdi = dinp, pdw = dw, pdo = dout, pi = inp, pw = w)
        {
            if (!dinp.IsEmpty) Gemm.Mul(pdi, c, pdo, oc, 1, pw, c, n, c, oc, accumulate: true);
            Gemm.Mul(pdw, c, pdo, 1, oc, pi, c, oc, c, n, accumulate: true);
        }
    }

    // ---------------------------------------------------------------- RoPE
    /// <summary>Angle table cos/sin[t, i] = pos·base^(−2i/d) for adjacent pairs (llama.cpp "normal" rope, as DecoderModel).</summary>
    public static (float[] Cos, float[] Sin) RopeTable(int maxT, int ropeDims, float ropeBase)
    {
        int half = ropeDims / 2;
        var cos = new float[maxT * half];
        var sin = new float[maxT * half];
        for (int t = 0; t < maxT; t++)
            for (int i = 0; i < half; i++)
            {
                double theta = t * Math.Pow(ropeBase, -2.0 * i / ropeDims);
                cos[t * half + i] = (float)Math.Cos(theta);
                sin[t * half + i] = (float)Math.Sin(theta);
            }
        return (cos, sin);
    }

    /// <summary>
    /// Rotates, in place, dims [off, off+ropeDims) of each of <paramref name="heads"/> heads (stride headDim) of every
    /// row; row r is at position r mod T. sign = −1 rotates backwards, which is exactly the backward pass (a rotation's
    /// transpose is its inverse). Pairs are adjacent dims (2i, 2i+1), or with <paramref name="neox"/> the two halves
    /// (i, i + ropeDims/2) as qwen2/qwen3 rotate them; the angle table is the same.
    /// </summary>
    public static void RopeForward(Span<float> x, int n, int t, int heads, int headDim, int off, int ropeDims,
        ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, float sign = 1f, bool neox = false)
    {
        int half = ropeDims / 2;
        int stride = neox ? 1 : 2, partner = neox ? half : 1;
        for (int r = 0; r < n; r++)
        {
            int pos = r % t;
            var cr = cos.Slice(pos * half, half);
            var sr = sin.Slice(pos * half, half);
            for (int h = 0; h < heads; h++)
            {
                var v = x.Slice(r * heads * headDim + h * headDim + off, ropeDims);
                for (int i = 0; i < half; i++)
                {
                    int j = stride * i;
                    float a = v[j], b = v[j + partner], cs = cr[i], sn = sign * sr[i];
                    v[j] = a * cs - b * sn;
                    v[j + partner] = a * sn + b * cs;
                }
            }
        }
    }

    /// <summary>dx = Rᵀ·dout: the same rotation with the angle negated, in place on the gradient.</summary>
    public static void RopeBackward(Span<float> dx, int n, int t, int heads, int headDim, int off, int ropeDims,
        ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, bool neox = false) => RopeForward(dx, n, t, heads, headDim, off, ropeDims, cos, sin, -1f, neox);

    // ---------------------------------------------------------------- SwiGLU
    /// <summary>out = silu(gate)·up = gate·σ(gate)·up (σ vectorised through TensorPrimitives.Sigmoid).</summary>
    public static void SwiGluForward(Span<float> output, ReadOnlySpan<float> gate, ReadOnlySpan<float> up)
    {
        int n = output.Length;                                         // gate/up may be longer (capacity buffers)
        TensorPrimitives.Sigmoid(gate[..n], output);
        TensorPrimitives.Multiply(output, gate[..n], output);
        TensorPrimitives.Multiply(output, up[..n], output);
    }

    /// <summary>dgate += dout·up·σ(g)(1 + g(1−σ(g))), dup += dout·silu(g); σ is recomputed in stack chunks.</summary>
    public static void SwiGluBackward(Span<float> dgate, Span<float> dup, ReadOnlySpan<float> dout, ReadOnlySpan<float> gate, ReadOnlySpan<float> up)
    {
        const int Chunk = 512;
        Span<float> s = stackalloc float[Chunk];
        Span<float> tmp = stackalloc float[Chunk];
        for (int i0 = 0; i0 < dout.Length; i0 += Chunk)
        {
            int len = Math.Min(Chunk, dout.Length - i0);
            var sg = s[..len]; var tp = tmp[..len];
            var g = gate.Slice(i0, len); var d = dout.Slice(i0, len);
            TensorPrimitives.Sigmoid(g, sg);
            TensorPrimitives.Multiply(g, sg, tp);                       // silu(g)
            TensorPrimitives.MultiplyAdd(d, tp, dup.Slice(i0, len), dup.Slice(i0, len));
            TensorPrimitives.Subtract(g, tp, tp);                       // g(1−σ)
            TensorPrimitives.Add(tp, 1f, tp);
            TensorPrimitives.Multiply(tp, sg, tp);                      // σ(1 + g(1−σ))
            TensorPrimitives.Multiply(tp, up.Slice(i0, len), tp);
            TensorPrimitives.MultiplyAdd(d, tp, dgate.Slice(i0, len), dgate.Slice(i0, len));
        }
    }

    // ---------------------------------------------------------------- residual
    public static void ResidualForward(Span<float> output, ReadOnlySpan<float> a, ReadOnlySpan<float> b) => TensorPrimitives.Add(a, b, output);

    public static void ResidualBackward(Span<float> da, Span<float> db, ReadOnlySpan<float> dout)
    {
        TensorPrimitives.Add(da, dout, da);
        TensorPrimitives.Add(db, dout, db);
    }

    // ---------------------------------------------------------------- cross-entropy
    /// <summary>
    /// losses[n] = −log softmax(logits[n,:])[target[n]]. The probabilities are not kept (a [N, V] array as large as the
    /// logits, 0.3 GB at 512 rows of a 152k vocabulary): stats[2n] and stats[2n + 1] keep the row's max and 1/Σexp, from
    /// which <see cref="CrossEntropyBackward"/> recomputes them bit for bit. Rows whose target is negative are skipped
    /// (loss 0): they are the prompt and padding positions.
    /// </summary>
    public static void CrossEntropyForward(Span<float> losses, Span<float> stats, ReadOnlySpan<float> logits, ReadOnlySpan<int> targets, int n, int v)
    {
        unsafe
        {
            fixed (float* pl = losses, ps = stats, pg = logits)
            fixed (int* pt = targets)
            {
                float* l = pl, st = ps, g = pg;
                int* tg = pt;
                Par.For(n, (r0, r1) =>
                {
                    var scratch = Gemm.Rent(v);
                    try
                    {
                        var pr = scratch.AsSpan(0, v);
                        for (int r = r0; r < r1; r++)
                        {
                            if (tg[r] < 0) { l[r] = 0; continue; }
                            var lr = new ReadOnlySpan<float>(g + (long)r * v, v);
                            float max = TensorPrimitives.Max(lr);
                            TensorPrimitives.Subtract(lr, max, pr);
                            TensorPrimitives.Exp(pr, pr);
                            float sum = TensorPrimitives.Sum(pr);
                            st[2 * r] = max;
                            st[2 * r + 1] = 1f / sum;
                            l[r] = -(lr[tg[r]] - max - MathF.Log(sum));
                        }
                    }
                    finally { Gemm.Return(scratch); }
                });
            }
        }
    }

    /// <summary>
    /// dlogits[n,:] = dloss[n]·(probs[n,:] − onehot(target[n])), probs recomputed from the logits and the forward
    /// pass's stats; dloss[n] carries the mask and the normaliser, and rows without a loss are zeroed (overwrites).
    /// dlogits may be the logits array itself: each row is read before it is written, so the [N, V] gradient needs no
    /// array of its own.
    /// </summary>
    public static void CrossEntropyBackward(Span<float> dlogits, ReadOnlySpan<float> dlosses, ReadOnlySpan<float> logits, ReadOnlySpan<float> stats,
        ReadOnlySpan<int> targets, int n, int v)
    {
        unsafe
        {
            fixed (float* pd = dlogits, pdl = dlosses, pg = logits, ps = stats)
            fixed (int* pt = targets)
            {
                float* dst = pd, dl = pdl, g = pg, st = ps;
                int* tg = pt;
                Par.For(n, (r0, r1) =>
                {
                    for (int r = r0; r < r1; r++)
                    {
                        var dr = new Span<float>(dst + (long)r * v, v);
                        float d = dl[r];
                        if (tg[r] < 0 || d == 0f) { dr.Clear(); continue; }
                        TensorPrimitives.Subtract(new ReadOnlySpan<float>(g + (long)r * v, v), st[2 * r], dr);
                        TensorPrimitives.Exp(dr, dr);
                        TensorPrimitives.Multiply(dr, st[2 * r + 1], dr);   // the forward pass's probabilities, exactly
                        TensorPrimitives.Multiply(dr, d, dr);
                        dr[tg[r]] -= d;
                    }
                });
            }
        }
    }
}
