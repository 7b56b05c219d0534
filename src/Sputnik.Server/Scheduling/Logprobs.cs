using Sputnik.Server.Api;
using Sputnik.Tokenizers;

namespace Sputnik.Server.Scheduling;

/// <summary>OpenAI logprobs of a sampled token: log-softmax of the raw logits (before sampling transforms).</summary>
public static class Logprobs
{
    public static TokenLogprob For(Tokenizer tokenizer, float[] logits, int token, int top)
    {
        float max = float.NegativeInfinity;
        foreach (float l in logits) if (l > max) max = l;
        double sum = 0;
        foreach (float l in logits) sum += Math.Exp(l - max);
        double logZ = max + Math.Log(sum);

        var tops = new List<TopLogprob>(top);
        if (top > 0)
        {
            // Partial selection: keep the best `top` ids in a small sorted list.
            var best = new List<int>(top + 1);
            for (int i = 0; i < logits.Length; i++)
            {
                if (best.Count == top && logits[i] <= logits[best[^1]]) continue;
                int at = best.FindIndex(b => logits[i] > logits[b]);
                best.Insert(at < 0 ? best.Count : at, i);
                if (best.Count > top) best.RemoveAt(best.Count - 1);
            }
            foreach (int id in best) tops.Add(new TopLogprob(Piece(tokenizer, id), logits[id] - logZ, Bytes(tokenizer, id)));
        }
        return new TokenLogprob(Piece(tokenizer, token), logits[token] - logZ, Bytes(tokenizer, token), tops);
    }

    private static string Piece(Tokenizer t, int id) => System.Text.Encoding.UTF8.GetString(t.PieceBytes(id));

    private static int[] Bytes(Tokenizer t, int id)
    {
        var b = t.PieceBytes(id);
        var r = new int[b.Length];
        for (int i = 0; i < b.Length; i++) r[i] = b[i];
        return r;
    }
}
