using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// A model whose file carries a Multi-Token Prediction head (DeepSeek-V3's MTP, llama.cpp's "nextn" blocks): from
/// the trunk's final hidden state at position i and the token at i+1 it predicts the token at i+2, and fed its own
/// output state it goes on predicting further (self-speculation).
/// </summary>
internal interface IMtpModel
{
    /// <summary>Whether the file has an MTP head (when false the other members throw).</summary>
    bool HasMtpHead { get; }

    /// <summary>
    /// The trunk's final hidden state (after output_norm) at <paramref name="position"/> of a trunk state, kept for
    /// every cached position while the model has an MTP head.
    /// </summary>
    ReadOnlySpan<float> TrunkHidden(InferenceState trunk, int position);

    /// <summary>A state for the MTP head alone: its block's own attention cache over the positions it was fed.</summary>
    InferenceState CreateMtpState(int contextLength, KvCacheType cacheType = KvCacheType.F16);

    /// <summary>
    /// Runs the head at the MTP state's next position on hidden state <paramref name="hidden"/> and the embedding of
    /// <paramref name="token"/>; with <paramref name="computeLogits"/> its logits go to the state's Logits.
    /// </summary>
    void MtpForward(InferenceState mtp, ReadOnlySpan<float> hidden, int token, bool computeLogits);

    /// <summary>The head's own output state of its last forward (after shared_head_norm): the hidden state that drafts the token after next.</summary>
    ReadOnlySpan<float> MtpHidden(InferenceState mtp);
}

// The MTP head: blk.{Layers} holds an ordinary block plus nextn.eh_proj / enorm / hnorm / shared_head_norm. The
// main forward never runs it; it has its own one-block latent cache (an MTP state).
internal sealed partial class DeepSeek2 : IMtpModel
{
    private sealed class MtpHead
    {
        public required Layer Block;
        public required WeightMatrix EhProj, Embedding, Head;
        public required float[] Enorm, Hnorm, HeadNorm;
    }

    private readonly MtpHead? _mtp;

    public bool HasMtpHead => _mtp != null;

    /// <summary>The first nextn block, when the file has one (a trunk-only file may declare nextn layers it left out).</summary>
    private MtpHead? LoadMtp()
    {
        var c = DsConfig;
        int l = c.Layers;
        if (c.NextnLayers == 0 || File.FindTensor(TensorNames.Weight(l, TensorNames.NextnEhProj)) == null) return null;
        // The embedding and the output head are shared unless the block carries its own (nextn.embed_tokens /
        // nextn.shared_head_head in llama.cpp's layout).
        string ownEmbedding = TensorNames.Weight(l, "nextn.embed_tokens"), ownHead = TensorNames.Weight(l, "nextn.shared_head_head");
        string headNorm = TensorNames.Weight(l, TensorNames.NextnSharedHeadNorm);
        return new MtpHead
        {
            Block = LoadLayer(l),
            EhProj = Matrix(TensorNames.Weight(l, TensorNames.NextnEhProj), 2 * c.Dim, c.Dim),
            Embedding = File.FindTensor(ownEmbedding) != null ? Matrix(ownEmbedding, c.Dim, c.VocabSize, mayInterleave: false) : _tokenEmbedding,
            Head = File.FindTensor(ownHead) != null ? Matrix(ownHead, c.Dim, c.VocabSize) : _output,
            Enorm = Vector(TensorNames.Weight(l, TensorNames.NextnEnorm), c.Dim),
            Hnorm = Vector(TensorNames.Weight(l, TensorNames.NextnHnorm), c.Dim),
            HeadNorm = File.FindTensor(headNorm) != null ? Vector(headNorm, c.Dim) : _outputNorm,
        };
    }

    private MtpHead Mtp => _mtp ?? throw new InvalidOperationException($"{File.Path} has no MTP head ({DeepSeek2Config.Arch}.{GgufKeys.NextnPredictLayers})");

    public ReadOnlySpan<float> TrunkHidden(InferenceState trunk, int position)
    {
        var s = trunk as State ?? throw new ArgumentException("state was not created by this model");
        _ = Mtp;
        if (s.Hidden == null) throw new ArgumentException("not a trunk state");
        if ((uint)position >= (uint)s.Position) throw new ArgumentOutOfRangeException(nameof(position), $"position {position} is not in the cache ({s.Position})");
        return s.Hidden.AsSpan(position * DsConfig.Dim, DsConfig.Dim);
    }

    public InferenceState CreateMtpState(int contextLength, KvCacheType cacheType = KvCacheType.F16)
    {
        _ = Mtp;
        if (contextLength < 1) throw new ArgumentOutOfRangeException(nameof(contextLength), "context must hold at least one token");
        return new State(this, contextLength, naive: false, cacheType, mtpHead: true);
    }

    public void MtpForward(InferenceState mtp, ReadOnlySpan<float> hidden, int token, bool computeLogits)
    {
        var head = Mtp;
        var s = mtp as State ?? throw new ArgumentException("state was not created by this model");
        if (s.Cat.Length == 0) throw new ArgumentException("not an MTP state");
        var c = DsConfig;
        int d = c.Dim, pos = s.Position;
        if ((uint)token >= (uint)c.VocabSize) throw new ArgumentOutOfRangeException(nameof(token), $"token id {token} is outside the vocabulary ({c.VocabSize})");
        if (pos >= s.Capacity) throw new InvalidOperationException($"context full: the MTP state holds {s.Capacity} positions");
        // x0 = eh_proj · [enorm(embedding) ; hnorm(hidden)], llama.cpp's concat order; hidden may be this state's H.
        head.Embedding.GetRow(token, s.X);
        Ops.RmsNorm(s.X.AsSpan(0, d), head.Enorm, c.RmsEps, s.Cat.AsSpan(0, d));
        Ops.RmsNorm(hidden[..d], head.Hnorm, c.RmsEps, s.Cat.AsSpan(d, d));
        MatVec(s, head.EhProj, s.Cat, s.X);
        Yarn.Angles(pos, c.QkRopeDim, c.RopeBase, c.Yarn ? c.RopeScalingFactor : 1f, _yarnLow, _yarnHigh, s.Cos, s.Sin);
        RunBlock(s, head.Block, cacheLayer: 0, statsLayer: -1, pos);
        s.Cache.Length = pos + 1;
        Ops.RmsNorm(s.X.AsSpan(0, d), head.HeadNorm, c.RmsEps, s.H);
        if (computeLogits) MatVec(s, head.Head, s.H, s.Logits);
    }

    public ReadOnlySpan<float> MtpHidden(InferenceState mtp) =>
        (mtp as State)?.H is { Length: > 0 } h ? h : throw new ArgumentException("not an MTP state");
}
