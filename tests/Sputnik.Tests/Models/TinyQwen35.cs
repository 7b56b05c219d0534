using Sputnik.Gguf;
using Sputnik.Models;

namespace Sputnik.Tests.Models;

/// <summary>
/// A textbook double-precision forward pass of a dense `qwen35` file, written from llama.cpp's qwen35.cpp and the
/// delta rule as its reference recurrence states it (one token at a time, the state as S[key][value]), with the
/// weights read back from the file. Per layer: x += mixer(rmsnorm(x)); x += SwiGLU(rmsnorm_post(x)). DeltaNet mixer:
/// causal depthwise conv over the last taps inputs of [q|k|v] → SiLU; q, k L2-normalised per key head; value head h
/// reads key head h mod key heads; g = softplus(α + dt_bias)·A, β = sigmoid(b); S ← e^g S; S += k (β(v − Sᵀk))ᵀ;
/// o = Sᵀq/√d; RMSNorm(o)·SiLU(z); ssm_out. Attention: attn_q gives [q | gate] per head; per-head RMSNorm of q and k;
/// NeoX RoPE over the first rope dims, each pair at position p unless its M-RoPE sector is the fourth (position 0);
/// causal softmax over q·k/√head; output ⊙ sigmoid(gate); attn_output.
/// </summary>
internal sealed class TinyQwen35
{
    private readonly GgufFile _f;
    private readonly ModelConfig _c;
    private readonly Qwen35.Params _p;

    public TinyQwen35(GgufFile file)
    {
        _f = file;
        _c = Qwen35.Config(file);
        _p = (Qwen35.Params)_c.ArchParams!;
    }

    private float[] T(string name)
    {
        var info = _f.GetTensor(name);
        var m = new WeightMatrix(_f, info, mayInterleave: false);
        var all = new float[(long)m.Rows * m.Cols];
        for (int r = 0; r < m.Rows; r++) m.GetRow(r, all.AsSpan(r * m.Cols, m.Cols));
        return all;
    }

    private static double[] MatVec(float[] w, int cols, double[] x)
    {
        int rows = w.Length / cols;
        var y = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double s = 0;
            for (int c = 0; c < cols; c++) s += w[r * cols + c] * x[c];
            y[r] = s;
        }
        return y;
    }

    private double[] RmsNorm(double[] x, float[] g)
    {
        double k = 1 / Math.Sqrt(x.Sum(v => v * v) / x.Length + _c.RmsEps);
        return x.Select((v, i) => v * k * g[i]).ToArray();
    }

    private static double Silu(double x) => x / (1 + Math.Exp(-x));

    private static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    /// <summary>Logits after each token of <paramref name="tokens"/>.</summary>
    public List<double[]> Logits(int[] tokens)
    {
        var c = _c;
        var p = _p;
        int dim = c.Dim, hd = c.HeadDim, dk = p.HeadSize, kt = p.ConvKernel;
        var emb = T("token_embd.weight");
        var result = new List<double[]>();
        // Per layer history: the mixer inputs of the DeltaNet layers, the keys/values of the attention layers.
        var convIn = new List<double[]>[c.Layers];
        var states = new double[c.Layers][][,];
        var keys = new List<double[]>[c.Layers];
        var values = new List<double[]>[c.Layers];
        for (int l = 0; l < c.Layers; l++)
        {
            convIn[l] = [];
            keys[l] = [];
            values[l] = [];
            states[l] = Enumerable.Range(0, p.ValueHeads).Select(_ => new double[dk, dk]).ToArray();
        }
        for (int pos = 0; pos < tokens.Length; pos++)
        {
            var x = emb.AsSpan(tokens[pos] * dim, dim).ToArray().Select(v => (double)v).ToArray();
            for (int l = 0; l < c.Layers; l++)
            {
                string b = $"blk.{l}.";
                var h = RmsNorm(x, T(b + "attn_norm.weight"));
                double[] mixed;
                if (p.Recurrent[l])
                {
                    var qkv = MatVec(T(b + "attn_qkv.weight"), dim, h);
                    var z = MatVec(T(b + "attn_gate.weight"), dim, h);
                    var beta = MatVec(T(b + "ssm_beta.weight"), dim, h);
                    var alpha = MatVec(T(b + "ssm_alpha.weight"), dim, h);
                    var conv = T(b + "ssm_conv1d.weight"); // channel-major: [channel][tap]
                    var dt = T(b + "ssm_dt.bias");
                    var a = T(b + "ssm_a");
                    var norm = T(b + "ssm_norm.weight");
                    convIn[l].Add(qkv);
                    var co = new double[p.ConvDim];
                    for (int ch = 0; ch < p.ConvDim; ch++)
                    {
                        double s = 0;
                        for (int k = 0; k < kt; k++)
                        {
                            int t = convIn[l].Count - kt + k;
                            if (t >= 0) s += convIn[l][t][ch] * conv[ch * kt + k];
                        }
                        co[ch] = Silu(s);
                    }
                    for (int head = 0; head < 2 * p.KeyHeads; head++)
                    {
                        double n2 = 0;
                        for (int i = 0; i < dk; i++) n2 += co[head * dk + i] * co[head * dk + i];
                        double inv = 1 / Math.Sqrt(n2 + c.RmsEps);
                        for (int i = 0; i < dk; i++) co[head * dk + i] *= inv;
                    }
                    var o = new double[p.ValueDim];
                    for (int vh = 0; vh < p.ValueHeads; vh++)
                    {
                        int kh = vh % p.KeyHeads;
                        double ai = alpha[vh] + dt[vh];
                        double g = (ai > 20 ? ai : Math.Log(1 + Math.Exp(ai))) * a[vh];
                        double bt = Sigmoid(beta[vh]);
                        var S = states[l][vh];
                        for (int i = 0; i < dk; i++)
                            for (int j = 0; j < dk; j++) S[i, j] *= Math.Exp(g);
                        for (int j = 0; j < dk; j++)
                        {
                            double sk = 0;
                            for (int i = 0; i < dk; i++) sk += S[i, j] * co[p.KeyDim + kh * dk + i];
                            double delta = (co[2 * p.KeyDim + vh * dk + j] - sk) * bt;
                            for (int i = 0; i < dk; i++) S[i, j] += co[p.KeyDim + kh * dk + i] * delta;
                        }
                        var oh = new double[dk];
                        for (int j = 0; j < dk; j++)
                        {
                            double sq = 0;
                            for (int i = 0; i < dk; i++) sq += S[i, j] * co[kh * dk + i];
                            oh[j] = sq / Math.Sqrt(dk);
                        }
                        oh = RmsNorm(oh, norm);
                        for (int j = 0; j < dk; j++) o[vh * dk + j] = oh[j] * Silu(z[vh * dk + j]);
                    }
                    mixed = MatVec(T(b + "ssm_out.weight"), p.ValueDim, o);
                }
                else
                {
                    var qg = MatVec(T(b + "attn_q.weight"), dim, h);
                    var kk = MatVec(T(b + "attn_k.weight"), dim, h);
                    var vv = MatVec(T(b + "attn_v.weight"), dim, h);
                    var qn = T(b + "attn_q_norm.weight");
                    var kn = T(b + "attn_k_norm.weight");
                    var q = new double[c.QDim];
                    var gate = new double[c.QDim];
                    for (int head = 0; head < c.Heads; head++)
                    {
                        var qh = RmsNorm(qg.AsSpan(head * 2 * hd, hd).ToArray(), qn);
                        Rope(qh, pos);
                        qh.CopyTo(q, head * hd);
                        Array.Copy(qg, head * 2 * hd + hd, gate, head * hd, hd);
                    }
                    for (int head = 0; head < c.KvHeads; head++)
                    {
                        var kh = RmsNorm(kk.AsSpan(head * hd, hd).ToArray(), kn);
                        Rope(kh, pos);
                        kh.CopyTo(kk, head * hd);
                    }
                    keys[l].Add(kk);
                    values[l].Add(vv);
                    var att = new double[c.QDim];
                    int group = c.Heads / c.KvHeads;
                    for (int head = 0; head < c.Heads; head++)
                    {
                        int g = head / group;
                        var scores = new double[pos + 1];
                        for (int t = 0; t <= pos; t++)
                        {
                            double s = 0;
                            for (int i = 0; i < hd; i++) s += q[head * hd + i] * keys[l][t][g * hd + i];
                            scores[t] = s / Math.Sqrt(hd);
                        }
                        double max = scores.Max(), sum = scores.Sum(s => Math.Exp(s - max));
                        for (int t = 0; t <= pos; t++)
                        {
                            double wgt = Math.Exp(scores[t] - max) / sum;
                            for (int i = 0; i < hd; i++) att[head * hd + i] += wgt * values[l][t][g * hd + i];
                        }
                        for (int i = 0; i < hd; i++) att[head * hd + i] *= Sigmoid(gate[head * hd + i]);
                    }
                    mixed = MatVec(T(b + "attn_output.weight"), c.QDim, att);
                }
                for (int i = 0; i < dim; i++) x[i] += mixed[i];
                var h2 = RmsNorm(x, T(b + "post_attention_norm.weight"));
                var up = MatVec(T(b + "ffn_up.weight"), dim, h2);
                var gt = MatVec(T(b + "ffn_gate.weight"), dim, h2);
                var act = gt.Select((v, i) => Silu(v) * up[i]).ToArray();
                var down = MatVec(T(b + "ffn_down.weight"), c.FfnDim, act);
                for (int i = 0; i < dim; i++) x[i] += down[i];
            }
            var xn = RmsNorm(x, T("output_norm.weight"));
            result.Add(MatVec(_f.FindTensor("output.weight") != null ? T("output.weight") : emb, dim, xn));
        }
        return result;
    }

    /// <summary>NeoX RoPE over the first rope dims; pairs in M-RoPE's fourth section stay at position 0.</summary>
    private void Rope(double[] x, int pos)
    {
        var s = _p.RopeSections;
        int n = _c.RopeDims, half = n / 2, sectors = s.Sum();
        for (int i = 0; i < half; i++)
        {
            int sector = i % sectors;
            bool text = (sector % 3 == 1 && sector < 3 * s[1]) || (sector % 3 == 2 && sector < 3 * s[2]) || (sector % 3 == 0 && sector < 3 * s[0]);
            double theta = text ? pos * Math.Pow(_c.RopeBase, -2.0 * i / n) : 0;
            double x0 = x[i], x1 = x[i + half];
            x[i] = x0 * Math.Cos(theta) - x1 * Math.Sin(theta);
            x[i + half] = x0 * Math.Sin(theta) + x1 * Math.Cos(theta);
        }
    }
}
