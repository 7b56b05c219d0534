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
        var freqs = RopeFrequencies(s.Capacity); // the same table the state was built with (phi3 picks its factors by context)
        var cos = new float[freqs.Length];
        var sin = new float[freqs.Length];
        for (int i = 0; i < freqs.Length; i++)
        {
            double theta = -(double)discard * freqs[i];
            cos[i] = (float)Math.Cos(theta);
            sin[i] = (float)Math.Sin(theta);
        }
        s.Cache.Shift(keep, discard, key =>
        {
            for (int h = 0; h < c.KvHeads; h++) Ops.Rope(key.Slice(h * c.HeadDim, c.RopeDims), cos, sin, c.RopeNeox);
        });
    }
}
