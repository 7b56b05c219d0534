using Sputnik.Tensors;

namespace Sputnik.Models;

// Context shift for MLA: only the decoupled k_pe part of each latent row carries a position.
internal sealed partial class DeepSeek2
{
    public override bool CanShiftContext => true;

    /// <summary>Drops positions [keep, keep + discard) and rotates the k_pe of every later row back by discard positions.</summary>
    public override void ShiftContext(InferenceState state, int keep, int discard)
    {
        var s = state as State ?? throw new ArgumentException("state was not created by this model");
        if (s.Latent == null) throw new NotSupportedException("the naive MLA reference path does not shift its context");
        var c = DsConfig;
        var cos = new float[c.QkRopeDim / 2];
        var sin = new float[c.QkRopeDim / 2];
        Yarn.Angles(discard, c.QkRopeDim, c.RopeBase, c.Yarn ? c.RopeScalingFactor : 1f, _yarnLow, _yarnHigh, cos, sin);
        for (int i = 0; i < sin.Length; i++) sin[i] = -sin[i]; // the angle of −discard
        int length = s.Position;
        s.Latent.Shift(length, keep, discard, row => Ops.Rope(row[c.KvLoraRank..], cos, sin, neox: false));
        // The trunk's hidden states the MTP head drafts from move with their positions.
        if (s.Hidden != null)
            Array.Copy(s.Hidden, (keep + discard) * c.Dim, s.Hidden, keep * c.Dim, (length - keep - discard) * c.Dim);
        s.Cache.Length = length - discard;
    }
}
