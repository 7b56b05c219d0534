using Sputnik.Tensors;

namespace Sputnik.Models;

// Context shift (llama.cpp's --context-shift): drop a run of cached positions and re-rotate the keys behind it.
internal abstract partial class DecoderModel
{
    public override bool CanShiftContext => true;

    /// <summary>
    /// Keys are stored roped at their position p; moved to p − discard they are rotated by the angle of −discard
    /// (RoPE angles are linear in the position), as llama.cpp's K shift does, and values need nothing. The RoPE
    /// magnitude of YaRN is already in the stored keys, so the rotation itself has magnitude 1.
    /// </summary>
    public override void ShiftContext(InferenceState state, int keep, int discard)
    {
        var s = (DecoderState)state;
        var c = Config;
        // The same tables the state was built with (phi3 picks its factors by context); sliding-window layers rotate
        // with their own (gemma3's local base), as SelfAttention does.
        var global = Rotation(RopeFrequencies(s.Capacity), discard);
        var sliding = SlidingRopeFrequencies() is { } f ? Rotation(f, discard) : global;
        s.Cache.Shift(keep, discard, (layer, key) =>
        {
            if (!LayerRotates(layer)) return;
            var (cos, sin) = WindowOf(layer) > 0 ? sliding : global;
            for (int h = 0; h < c.KvHeads; h++) Ops.Rope(key.Slice(h * c.HeadDim, c.RopeDims), cos, sin, c.RopeNeox);
        });
    }

    /// <summary>Whether layer l's keys carry RoPE (false for smollm3's NoPE layers, which a shift must leave alone).</summary>
    protected virtual bool LayerRotates(int layer) => true;

    /// <summary>cos/sin of the angle −discard·f per rotated pair.</summary>
    private static (float[] Cos, float[] Sin) Rotation(double[] freqs, int discard)
    {
        var cos = new float[freqs.Length];
        var sin = new float[freqs.Length];
        for (int i = 0; i < freqs.Length; i++)
        {
            double theta = -(double)discard * freqs[i];
            cos[i] = (float)Math.Cos(theta);
            sin[i] = (float)Math.Sin(theta);
        }
        return (cos, sin);
    }
}
