namespace Sputnik.Models;

// Routed-expert feed-forward (qwen3moe): the MoE blocks deepseek2 uses (MoeRouter, ExpertBatch) over the layer's rows.
internal sealed partial class DecoderModel
{
    /// <summary>
    /// The n normalised rows in Xb go through the router (one product for the batch), each picks its experts, and
    /// <see cref="ExpertBatch"/> runs every selected expert once over the rows sent to it; the weighted sum
    /// replaces Xb. Decode (n = 1), prefill chunks and multi-sequence steps all take this path.
    /// </summary>
    private void ExpertsFfn(DecoderState w, Layer layer, int n)
    {
        var moe = Config.Moe!;
        int e = moe.ExpertCount, k = moe.ExpertsUsed;
        var m = w.Moe ??= new DecoderState.MoeScratch(Pool, Config);
        m.Reserve(n);
        Project(w, layer.Router!, w.Xb, n, m.Logits);
        for (int i = 0; i < n; i++)
            m.Router.Route(m.Logits.AsSpan(i * e, e), default, m.Experts.AsSpan(i * k, k), m.Weights.AsSpan(i * k, k));
        // Reads Xb (gathered per expert first), then overwrites it with the weighted expert outputs.
        m.Batch.RunMoe(layer.GateExps!, layer.UpExps!, layer.DownExps!, m.Experts.AsSpan(0, n * k), m.Weights.AsSpan(0, n * k), k,
            null, null, null, w.Xb, n, w.Xb);
        w.ActSource = null;
    }
}
