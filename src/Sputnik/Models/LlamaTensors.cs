namespace Sputnik.Models;

/// <summary>
/// The tensors of a llama-layer file (<see cref="LlamaDecoder"/>: llama, qwen2, qwen3, qwen3moe), as llama.cpp's
/// load_arch_tensors declares them: what the config implies (per-head Q/K norms, routed experts, untied output,
/// rope_freqs) plus what the architecture always carries (qwen2's Q/K/V biases).
/// </summary>
internal static class LlamaTensors
{
    public static IEnumerable<TensorDecl> Declare(SynthPreset p, bool qkvBias)
    {
        var c = p.Config;
        long dim = c.Dim, q = c.QDim, kv = c.KvDim, vocab = c.VocabSize;
        if (p.Llama3RopeFactor is { } factor)
            yield return new(TensorNames.Weight(TensorNames.RopeFreqs), [c.HeadDim / 2], TensorFill.Computed, v => Llama3RopeFactors(c, factor, v));
        yield return new(TensorNames.Weight(TensorNames.TokenEmbd), [dim, vocab], TensorFill.Matrix);
        for (int l = 0; l < c.Layers; l++)
        {
            yield return new(TensorNames.Weight(l, TensorNames.AttnNorm), [dim], TensorFill.Ones);
            foreach (var (name, rows) in new[] { (TensorNames.AttnQ, q), (TensorNames.AttnK, kv), (TensorNames.AttnV, kv) })
            {
                yield return new(TensorNames.Weight(l, name), [dim, rows], TensorFill.Matrix);
                if (qkvBias) yield return new(TensorNames.Bias(l, name), [rows], TensorFill.Bias);
            }
            if (c.QkNorm)
            {
                yield return new(TensorNames.Weight(l, TensorNames.AttnQNorm), [c.HeadDim], TensorFill.NormJitter);
                yield return new(TensorNames.Weight(l, TensorNames.AttnKNorm), [c.HeadDim], TensorFill.NormJitter);
            }
            yield return new(TensorNames.Weight(l, TensorNames.AttnOutput), [q, dim], TensorFill.Matrix);
            yield return new(TensorNames.Weight(l, TensorNames.FfnNorm), [dim], TensorFill.Ones);
            if (c.Moe is { } moe)
            {
                long experts = moe.ExpertCount, ffn = c.ExpertFfnDim;
                yield return new(TensorNames.Weight(l, TensorNames.FfnGateInp), [dim, experts], TensorFill.Matrix);
                yield return new(TensorNames.Weight(l, TensorNames.FfnGateExps), [dim, ffn, experts], TensorFill.Matrix);
                yield return new(TensorNames.Weight(l, TensorNames.FfnUpExps), [dim, ffn, experts], TensorFill.Matrix);
                yield return new(TensorNames.Weight(l, TensorNames.FfnDownExps), [ffn, dim, experts], TensorFill.Matrix);
                continue;
            }
            yield return new(TensorNames.Weight(l, TensorNames.FfnGate), [dim, c.FfnDim], TensorFill.Matrix);
            yield return new(TensorNames.Weight(l, TensorNames.FfnUp), [dim, c.FfnDim], TensorFill.Matrix);
            yield return new(TensorNames.Weight(l, TensorNames.FfnDown), [c.FfnDim, dim], TensorFill.Matrix);
        }
        yield return new(TensorNames.Weight(TensorNames.OutputNorm), [dim], TensorFill.Ones);
        if (!p.TiedEmbeddings) yield return new(TensorNames.Weight(TensorNames.Output), [dim, vocab], TensorFill.Matrix);
    }

    /// <summary>Llama 3.1-style RoPE frequency factors (original context 8192, low/high frequency factors 1 and 4).</summary>
    private static void Llama3RopeFactors(ModelConfig c, double factor, Span<float> dst)
    {
        double oldCtx = 8192, lowFreqWavelen = oldCtx / 1.0, highFreqWavelen = oldCtx / 4.0;
        for (int i = 0; i < dst.Length; i++)
        {
            double freq = 1.0 / Math.Pow(c.RopeBase, 2.0 * i / c.HeadDim);
            double wavelen = 2 * Math.PI / freq;
            if (wavelen < highFreqWavelen) dst[i] = 1f;
            else if (wavelen > lowFreqWavelen) dst[i] = (float)factor;
            else
            {
                double smooth = (oldCtx / wavelen - 1.0) / (4.0 - 1.0);
                dst[i] = (float)(1.0 / ((1 - smooth) / factor + smooth));
            }
        }
    }
}
