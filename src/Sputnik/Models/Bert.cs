using System.Numerics.Tensors;
using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// `bert` (all-MiniLM, BGE, E5, GTE… sentence encoders), as llama.cpp's bert graph: the input is the token embedding
/// plus the learned position embedding plus token type 0's row, LayerNormed (with bias); every layer is attention
/// with Q/K/V/output biases over the whole input both ways (no RoPE), then residual and LayerNorm, then a GELU
/// feed-forward with biases, residual and LayerNorm (post-norm). There is no output head: the last layer's rows are
/// the hidden states embeddings are pooled from (CLS or mean, as the file's pooling_type says).
/// </summary>
internal static class Bert
{
    public const string Name = "bert";

    /// <summary>bert's own keys: LayerNorm epsilon, the token type count, the pooling, and (always false) causal attention.</summary>
    internal sealed record Keys(float LayerNormEps, int TokenTypes, uint Pooling) : IArchKeys
    {
        public void WriteKeys(GgufWriter w, string arch)
        {
            w.Set(GgufKeys.Of(arch, GgufKeys.LayerNormEps), LayerNormEps);
            w.Set(GgufKeys.Of(arch, GgufKeys.AttentionCausal), false);
            w.Set(GgufKeys.Of(arch, GgufKeys.PoolingType), Pooling);
            w.Set(GgufKeys.TokenTypeCount, (uint)TokenTypes);
        }
    }

    public static ModelConfig Config(GgufFile file)
    {
        var c = ModelConfig.FromGguf(file, Name, ropeNeox: false);
        string epsKey = GgufKeys.Of(Name, GgufKeys.LayerNormEps);
        if (!file.TryGetFloat(epsKey, out _)) throw new GgufFormatException($"{file.Path}: metadata '{epsKey}' is missing");
        float eps = ModelConfig.Epsilon(file, epsKey, 1e-12f);
        int types = file.TryGetUInt32(GgufKeys.TokenTypeCount, out uint t) ? (int)Math.Min(t, 1024u) : 0;
        uint pooling = file.TryGetUInt32(GgufKeys.Of(Name, GgufKeys.PoolingType), out uint p) ? p : 0;
        if (c.KvHeads != c.Heads) throw new GgufFormatException($"{file.Path}: bert has as many key/value heads as heads ({c.KvHeads} ≠ {c.Heads})");
        return c with { RmsEps = eps, ArchParams = new Keys(eps, types, pooling) };
    }

    public static LanguageModel Load(GgufFile file, WorkerPool pool) => new BertEncoder(file, Config(file), pool);

    /// <summary>A bert shape: heads of dim / heads, as many key/value heads, post-LayerNorm epsilon 1e-12, two token types.</summary>
    internal static ModelConfig Shape(int dim, int layers, int ffn, int heads, int vocab, int context, uint pooling) =>
        ModelConfig.Create(Name, dim, layers, ffn, heads, heads, vocab, context, ropeBase: 10000f, rmsEps: 1e-12f, ropeNeox: false)
            with { ArchParams = new Keys(1e-12f, 2, pooling) };

    private static IEnumerable<TensorDecl> DeclareTensors(SynthPreset p)
    {
        var c = p.Config;
        long dim = c.Dim, ffn = c.FfnDim;
        int types = (c.ArchParams as Keys)?.TokenTypes ?? 2;
        yield return new(TensorNames.Weight(TensorNames.TokenEmbd), [dim, c.VocabSize], TensorFill.Matrix);
        yield return new(TensorNames.Weight(TensorNames.TokenTypes), [dim, types], TensorFill.Matrix);
        yield return new(TensorNames.Weight(TensorNames.PositionEmbd), [dim, c.ContextLength], TensorFill.Matrix);
        yield return new(TensorNames.Weight(TensorNames.TokenEmbdNorm), [dim], TensorFill.NormJitter);
        yield return new(TensorNames.Bias(TensorNames.TokenEmbdNorm), [dim], TensorFill.Bias);
        for (int l = 0; l < c.Layers; l++)
        {
            foreach (var (name, cols, rows) in new[] { (TensorNames.AttnQ, dim, dim), (TensorNames.AttnK, dim, dim), (TensorNames.AttnV, dim, dim),
                         (TensorNames.AttnOutput, dim, dim), (TensorNames.FfnUp, dim, ffn), (TensorNames.FfnDown, ffn, dim) })
            {
                yield return new(TensorNames.Weight(l, name), [cols, rows], TensorFill.Matrix);
                yield return new(TensorNames.Bias(l, name), [rows], TensorFill.Bias);
            }
            foreach (var norm in new[] { TensorNames.AttnOutputNorm, TensorNames.LayerOutputNorm })
            {
                yield return new(TensorNames.Weight(l, norm), [dim], TensorFill.NormJitter);
                yield return new(TensorNames.Bias(l, norm), [dim], TensorFill.Bias);
            }
        }
    }

    public static readonly ArchitectureInfo Info = new(Name, Load)
    {
        HfArchitectures = [],
        Synth = new SynthStyle("default", AddBos: true, ChatTemplate: "") { CreateVocab = Tools.SyntheticVocab.CreateWordPiece },
        Tensors = DeclareTensors,
        SynthPresets =
        [
            // bert-tiny is CLS-pooled (BGE's choice); the llama.cpp check also rewrites it to mean pooling.
            new("bert-tiny", Shape(128, 2, 512, 4, 1000, 512, pooling: 2), TiedEmbeddings: true),
            // sentence-transformers/all-MiniLM-L6-v2 (mean pooling) and BAAI/bge-small-en-v1.5 (CLS pooling).
            new("all-minilm-l6", Shape(384, 6, 1536, 12, 30522, 512, pooling: 1), TiedEmbeddings: true),
            new("bge-small", Shape(384, 12, 1536, 12, 30522, 512, pooling: 2), TiedEmbeddings: true),
        ],
    };
}

/// <summary>The bert forward: <see cref="DecoderModel"/>'s blocks with bidirectional attention and post-LayerNorms.</summary>
internal sealed class BertEncoder : DecoderModel
{
    private readonly WeightMatrix _positions;
    private readonly float[]? _tokenType0;
    private readonly float[] _inputNorm, _inputNormBias;
    private readonly Layer[] _layers;

    private sealed record Layer(AttentionWeights Attention, float[] AttnNorm, float[] AttnNormBias, DenseFfnWeights Ffn, float[] OutNorm, float[] OutNormBias);

    public BertEncoder(GgufFile file, ModelConfig config, WorkerPool pool) : base(file, config, pool, encoder: true)
    {
        int dim = config.Dim;
        _positions = Matrix(TensorNames.Weight(TensorNames.PositionEmbd), dim, config.ContextLength, mayInterleave: false);
        if (file.FindTensor(TensorNames.Weight(TensorNames.TokenTypes)) is { } types)
        {
            // Token types are always 0 ("sentence A"), as llama.cpp feeds them: only the first row is ever added.
            var m = Matrix(types.Name, dim, (int)types.Rows, mayInterleave: false);
            _tokenType0 = new float[dim];
            m.GetRow(0, _tokenType0);
        }
        _inputNorm = Vector(TensorNames.Weight(TensorNames.TokenEmbdNorm), dim);
        _inputNormBias = Vector(TensorNames.Bias(TensorNames.TokenEmbdNorm), dim);
        _layers = new Layer[config.Layers];
        for (int l = 0; l < config.Layers; l++)
        {
            var attention = LoadAttention(l, qkNorm: false);
            attention.Bo = OptionalVector(TensorNames.Bias(l, TensorNames.AttnOutput), dim);
            var ffn = new DenseFfnWeights
            {
                Up = Matrix(TensorNames.Weight(l, TensorNames.FfnUp), dim, config.FfnDim),
                Down = Matrix(TensorNames.Weight(l, TensorNames.FfnDown), config.FfnDim, dim),
                UpBias = OptionalVector(TensorNames.Bias(l, TensorNames.FfnUp), config.FfnDim),
                DownBias = OptionalVector(TensorNames.Bias(l, TensorNames.FfnDown), dim),
            };
            _layers[l] = new Layer(attention,
                Vector(TensorNames.Weight(l, TensorNames.AttnOutputNorm), dim), Vector(TensorNames.Bias(l, TensorNames.AttnOutputNorm), dim),
                ffn,
                Vector(TensorNames.Weight(l, TensorNames.LayerOutputNorm), dim), Vector(TensorNames.Bias(l, TensorNames.LayerOutputNorm), dim));
        }
    }

    protected override bool Causal => false;

    /// <summary>Token row + position row + token type 0, LayerNormed: the input of the first layer.</summary>
    protected override void Embed(DecoderState w, ReadOnlySpan<int> tokens)
    {
        base.Embed(w, tokens);
        int dim = Config.Dim;
        for (int i = 0; i < tokens.Length; i++)
        {
            int pos = w.PackedCount > 0 ? w.PackedPos[i] : w.Position + i;
            if (pos >= Config.ContextLength)
                throw new ArgumentException($"an input of more than {Config.ContextLength} tokens is longer than {Config.Architecture}'s position embeddings");
            var x = w.X.AsSpan(i * dim, dim);
            var row = w.Xb.AsSpan(i * dim, dim);
            _positions.GetRow(pos, row);
            TensorPrimitives.Add(x, row, x);
            if (_tokenType0 != null) TensorPrimitives.Add(x, _tokenType0, x);
            Ops.LayerNorm(x, _inputNorm, _inputNormBias, Config.RmsEps, x);
        }
        w.ActSource = null;
    }

    protected override void ForwardLayer(DecoderState w, int l, int n)
    {
        var layer = _layers[l];
        int dim = Config.Dim;
        CopyResidual(w, n, dim);
        SelfAttention(w, l, n, layer.Attention, rope: false);
        AddResidual(w, n, dim);
        LayerNormRows(w, n, layer.AttnNorm, layer.AttnNormBias);
        CopyResidual(w, n, dim);
        GeluFfn(w, n, layer.Ffn);
        AddResidual(w, n, dim);
        LayerNormRows(w, n, layer.OutNorm, layer.OutNormBias);
    }

    // The blocks read their input from Xb; bert's layers take the residual rows themselves (no pre-norm).
    private static void CopyResidual(DecoderState w, int n, int dim)
    {
        w.X.AsSpan(0, n * dim).CopyTo(w.Xb);
        w.ActSource = null;
    }

    private void LayerNormRows(DecoderState w, int n, float[] weight, float[] bias)
    {
        int dim = Config.Dim;
        for (int i = 0; i < n; i++)
        {
            var x = w.X.AsSpan(i * dim, dim);
            Ops.LayerNorm(x, weight, bias, Config.RmsEps, x);
        }
    }
}
