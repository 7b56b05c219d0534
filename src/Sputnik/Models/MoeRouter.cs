using System.Numerics.Tensors;

namespace Sputnik.Models;

/// <summary>
/// DeepSeekMoE routing as llama.cpp's build_moe_ffn does it: gate probabilities (softmax or sigmoid), an optional
/// selection bias (exp_probs_b, V3) that changes which experts are picked but never their weights, group-limited
/// selection (score of a group = sum of its top-2 biased scores; keep the best groups), top-k, optional
/// renormalisation of the k weights, then the routed scaling factor.
/// </summary>
internal sealed class MoeRouter
{
    private readonly float[] _probs, _selection, _groupScores;
    private readonly bool[] _groupKept;

    public MoeRouter(RouterConfig c)
    {
        Config = c;
        _probs = new float[c.ExpertCount];
        _selection = new float[c.ExpertCount];
        _groupScores = new float[c.ExpertGroups];
        _groupKept = new bool[c.ExpertGroups];
    }

    public RouterConfig Config { get; }

    /// <summary>
    /// Picks <see cref="RouterConfig.ExpertsUsed"/> experts from the router <paramref name="logits"/>; writes
    /// their ids (best first) and final weights. Allocation-free.
    /// </summary>
    public void Route(ReadOnlySpan<float> logits, ReadOnlySpan<float> bias, Span<int> experts, Span<float> weights)
    {
        var c = Config;
        int n = c.ExpertCount, k = c.ExpertsUsed;
        var probs = _probs.AsSpan(0, n);
        if (c.Gating == ExpertGating.Softmax)
        {
            logits.CopyTo(probs);
            Tensors.Ops.Softmax(probs);
        }
        else if (c.Gating == ExpertGating.SoftmaxWeight)
        {
            logits.CopyTo(probs); // selection on the logits; the weights are a softmax over the chosen ones (below)
        }
        else
        {
            TensorPrimitives.Sigmoid(logits, probs);
        }
        var sel = _selection.AsSpan(0, n);
        if (bias.IsEmpty) probs.CopyTo(sel);
        else TensorPrimitives.Add(probs, bias, sel);

        if (c.ExpertGroups > 1)
        {
            int per = n / c.ExpertGroups;
            for (int g = 0; g < c.ExpertGroups; g++)
            {
                // Sum of the two best scores in the group (one when a group has a single expert).
                float best = float.NegativeInfinity, second = float.NegativeInfinity;
                for (int e = g * per; e < (g + 1) * per; e++)
                {
                    float s = sel[e];
                    if (s > best) { second = best; best = s; }
                    else if (s > second) second = s;
                }
                _groupScores[g] = per >= 2 ? best + second : best;
                _groupKept[g] = false;
            }
            for (int j = 0; j < c.ExpertGroupsUsed; j++)
            {
                int bestG = -1;
                for (int g = 0; g < c.ExpertGroups; g++)
                    if (!_groupKept[g] && (bestG < 0 || _groupScores[g] > _groupScores[bestG])) bestG = g;
                _groupKept[bestG] = true;
            }
            for (int g = 0; g < c.ExpertGroups; g++)
                if (!_groupKept[g]) sel.Slice(g * per, per).Fill(float.NegativeInfinity);
        }

        // Top-k by repeated arg-max: k is small (6–8) and this keeps the routine allocation-free.
        for (int j = 0; j < k; j++)
        {
            int best = -1;
            for (int e = 0; e < n; e++)
                if (sel[e] != float.MinValue && (best < 0 || sel[e] > sel[best])) best = e;
            experts[j] = best;
            weights[j] = probs[best];
            sel[best] = float.MinValue;
        }
        if (c.Gating == ExpertGating.SoftmaxWeight) Tensors.Ops.Softmax(weights[..k]);
        if (c.ExpertWeightsNorm)
        {
            float sum = Math.Max(TensorPrimitives.Sum(weights[..k]), 6.103515625e-5f);
            TensorPrimitives.Multiply(weights[..k], 1f / sum, weights[..k]);
        }
        if (c.ExpertWeightsScale != 1f) TensorPrimitives.Multiply(weights[..k], c.ExpertWeightsScale, weights[..k]);
    }
}

/// <summary>
/// How a MoE layer picks its experts: llama.cpp's build_moe_ffn arguments (n_expert, n_expert_used, gating function,
/// norm_w, w_scale, expert groups). DeepSeek2 fills every field from its file; qwen3moe is softmax, top-k, normalised.
/// </summary>
internal sealed record RouterConfig(int ExpertCount, int ExpertsUsed, ExpertGating Gating = ExpertGating.Softmax,
    bool ExpertWeightsNorm = false, float ExpertWeightsScale = 1f, int ExpertGroups = 1, int ExpertGroupsUsed = 1);

/// <summary>Counts how often each routed expert of each MoE layer is selected (`sputnik run --moe-stats`).</summary>
internal sealed class MoeStats
{
    private readonly long[][] _counts;

    public MoeStats(int layers, int experts)
    {
        _counts = new long[layers][];
        for (int l = 0; l < layers; l++) _counts[l] = new long[experts];
    }

    public int Layers => _counts.Length;
    public long Tokens { get; private set; }

    public void Record(int layer, ReadOnlySpan<int> experts)
    {
        var row = _counts[layer];
        foreach (int e in experts) row[e]++;
    }

    internal void CountToken() => Tokens++;

    public ReadOnlySpan<long> Counts(int layer) => _counts[layer];

    /// <summary>Expert-load histogram over all layers plus the per-layer imbalance (max load / mean load).</summary>
    public void Print(TextWriter w, int firstMoeLayer)
    {
        int experts = _counts.Length == 0 ? 0 : _counts[0].Length;
        var total = new long[experts];
        for (int l = firstMoeLayer; l < _counts.Length; l++)
            for (int e = 0; e < experts; e++) total[e] += _counts[l][e];
        long sum = total.Sum(), max = total.Length == 0 ? 0 : total.Max();
        w.WriteLine($"moe: {Tokens} tokens, {_counts.Length - firstMoeLayer} MoE layers, {experts} experts, {sum} expert activations");
        for (int e = 0; e < experts; e++)
        {
            int bar = max == 0 ? 0 : (int)Math.Round(40.0 * total[e] / max);
            w.WriteLine($"  expert {e,4} {total[e],10} {(sum == 0 ? 0 : 100.0 * total[e] / sum),6:F2}% {new string('#', bar)}");
        }
        for (int l = firstMoeLayer; l < _counts.Length; l++)
        {
            long lsum = _counts[l].Sum();
            double mean = experts == 0 ? 0 : (double)lsum / experts;
            w.WriteLine($"  layer {l,3}: max/mean load {(mean == 0 ? 0 : _counts[l].Max() / mean):F2}, unused experts {_counts[l].Count(x => x == 0)}");
        }
    }
}

/// <summary>A model with routed experts that can count expert selections.</summary>
internal interface IMoeModel
{
    /// <summary>Set to a fresh <see cref="MoeStats"/> to start counting; null stops it.</summary>
    MoeStats? MoeStats { get; set; }

    MoeStats CreateMoeStats();

    int FirstMoeLayer { get; }
}
