namespace Sputnik.Tests.Models;

/// <summary>Double-precision causal grouped-query attention for the reference forwards the model tests compare against.</summary>
internal static class ReferenceAttention
{
    /// <summary>Softmax(q·k / √d)·v per head over every cached position; query head h reads KV head h / (heads / kvHeads).</summary>
    public static double[] Grouped(double[] q, List<double[]> keys, List<double[]> values, int heads, int kvHeads, int headDim)
    {
        var att = new double[heads * headDim];
        int positions = keys.Count;
        for (int hh = 0; hh < heads; hh++)
        {
            int kv = hh / (heads / kvHeads);
            var scores = new double[positions];
            for (int t = 0; t < positions; t++)
            {
                double s = 0;
                for (int i = 0; i < headDim; i++) s += q[hh * headDim + i] * keys[t][kv * headDim + i];
                scores[t] = s / Math.Sqrt(headDim);
            }
            double max = scores.Max();
            var e = scores.Select(s => Math.Exp(s - max)).ToArray();
            double sum = e.Sum();
            for (int t = 0; t < positions; t++)
                for (int i = 0; i < headDim; i++) att[hh * headDim + i] += e[t] / sum * values[t][kv * headDim + i];
        }
        return att;
    }
}
