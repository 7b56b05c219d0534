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
/// `nomic-bert` (nomic-embed-text) is the same graph in llama.cpp with three changes: NeoX RoPE on Q and K in place of
/// the position embedding, one fused attn_qkv, and a SwiGLU feed-forward (ffn_gate, ffn_up) without biases.
/// </summary>
internal static class Bert
{
    public const string Name = "bert";
    public const string NomicName = "nomic-bert";

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

    /// <summary>The config of a bert or nomic-bert file (<paramref name="arch"/>: its general.architecture).</summary>
    public static ModelConfig Config(GgufFile file, string arch)
    {
        var c = ModelConfig.FromGguf(file, arch, ropeNeox: arch == NomicName);
        string epsKey = GgufKeys.Of(arch, GgufKeys.LayerNormEps);
        if (!file.TryGetFloat(epsKey, out _)) throw new GgufFormatException($"{file.Path}: metadata '{epsKey}' is missing");
        float eps = ModelConfig.Epsilon(file, epsKey, 1e-12f);
        int types = file.TryGetUInt32(GgufKeys.TokenTypeCount, out uint t) ? (int)Math.Min(t, 1024u) : 0;
        uint pooling = file.TryGetUInt32(GgufKeys.Of(arch, GgufKeys.PoolingType), out uint p) ? p : 0;
        if (c.KvHeads != c.Heads) throw new GgufFormatException($"{file.Path}: {arch} has as many key/value heads as heads ({c.KvHeads} ≠ {c.Heads})");
        return c with { RmsEps = eps, ArchParams = new Keys(eps, types, pooling) };
    }

    private static LanguageModel Load(GgufFile file, WorkerPool pool) => new BertEncoder(file, Config(file, file.Architecture!), pool);

    /// <summary>
    /// A bert (or nomic-bert: NeoX RoPE at <paramref name="ropeBase"/>) shape: heads of dim / heads, as many key/value
    /// heads, post-LayerNorm epsilon 1e-12, two token types.
    /// </summary>
    internal static ModelConfig Shape(int dim, int layers, int ffn, int heads, int vocab, int context, uint pooling, string arch = Name, float ropeBase = 10000f) =>
        ModelConfig.Create(arch, dim, layers, ffn, heads, heads, vocab, context, ropeBase, rmsEps: 1e-12f, ropeNeox: arch == NomicName)
            with { ArchParams = new Keys(1e-12f, 2, pooling) };

    private static IEnumerable<TensorDecl> DeclareTensors(SynthPreset p)
    {
        var c = p.Config;
        long dim = c.Dim, ffn = c.FfnDim;
        int types = (c.ArchParams as Keys)?.TokenTypes ?? 2;
        bool nomic = c.Architecture == NomicName;
        yield return new(TensorNames.Weight(TensorNames.TokenEmbd), [dim, c.VocabSize], TensorFill.Matrix);
        yield return new(TensorNames.Weight(TensorNames.TokenTypes), [dim, types], TensorFill.Matrix);
        if (!nomic) yield return new(TensorNames.Weight(TensorNames.PositionEmbd), [dim, c.ContextLength], TensorFill.Matrix);
        yield return new(TensorNames.Weight(TensorNames.TokenEmbdNorm), [dim], TensorFill.NormJitter);
        yield return new(TensorNames.Bias(TensorNames.TokenEmbdNorm), [dim], TensorFill.Bias);
        for (int l = 0; l < c.Layers; l++)
        {
            // nomic-bert: weights only, Q/K/V fused, and a gate next to up (nomic-embed-text's layout).
            var matrices = nomic
                ? new[] { (TensorNames.AttnQkv, dim, 3 * dim), (TensorNames.AttnOutput, dim, dim), (TensorNames.FfnGate, dim, ffn), (TensorNames.FfnUp, dim, ffn), (TensorNames.FfnDown, ffn, dim) }
                : new[] { (TensorNames.AttnQ, dim, dim), (TensorNames.AttnK, dim, dim), (TensorNames.AttnV, dim, dim),
                          (TensorNames.AttnOutput, dim, dim), (TensorNames.FfnUp, dim, ffn), (TensorNames.FfnDown, ffn, dim) };
            foreach (var (name, cols, rows) in matrices)
            {
                yield return new(TensorNames.Weight(l, name), [cols, rows], TensorFill.Matrix);
                if (!nomic) yield return new(TensorNames.Bias(l, name), [rows], TensorFill.Bias);
            }
            foreach (var norm in new[] { TensorNames.AttnOutputNorm, TensorNames.LayerOutputNorm })
            {
                yield return new(TensorNames.Weight(l, norm), [dim], TensorFill.NormJitter);
                yield return new(TensorNames.Bias(l, norm), [dim], TensorFill.Bias);
            }
        }
    }

    private static readonly SynthStyle WordPieceStyle = new("default", AddBos: true, ChatTemplate: "") { CreateVocab = Tools.SyntheticVocab.CreateWordPiece };

    public static readonly ArchitectureInfo Info = new(Name, Load)
    {
        HfArchitectures = [],
        Synth = WordPieceStyle,
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

    public static readonly ArchitectureInfo NomicInfo = new(NomicName, Load)
    {
        RopeNeox = true,
        HfArchitectures = [],
        Synth = WordPieceStyle,
        Tensors = DeclareTensors,
        SynthPresets =
        [
            new("nomic-bert-tiny", Shape(128, 2, 384, 4, 1000, 512, pooling: 1, NomicName, ropeBase: 1000f), TiedEmbeddings: true),
            // nomic-ai/nomic-embed-text-v1.5: mean pooling, rotary base 1000, 2048 trained positions (llama.cpp's converter's n_positions).
            new("nomic-embed-text-v1.5", Shape(768, 12, 3072, 12, 30528, 2048, pooling: 1, NomicName, ropeBase: 1000f), TiedEmbeddings: true),
        ],
    };
}

/// <summary>The bert / nomic-bert forward: <see cref="DecoderModel"/>'s blocks with bidirectional attention and post-LayerNorms.</summary>
internal sealed class BertEncoder : DecoderModel
{
    /// <summary>bert's learned positions; null for nomic-bert, which rotates Q and K instead.</summary>
    private readonly WeightMatrix? _positions;
    private readonly float[]? _tokenType0;
    private readonly float[] _inputNorm, _inputNormBias;
    private readonly Layer[] _layers;

    /// <summary>One layer: bert's GELU feed-forward (<paramref name="Gelu"/>) or nomic-bert's SwiGLU one (<paramref name="SwiGlu"/>).</summary>
    private sealed record Layer(AttentionWeights Attention, float[] AttnNorm, float[] AttnNormBias, DenseFfnWeights? Gelu, FfnWeights? SwiGlu, float[] OutNorm, float[] OutNormBias);

    public BertEncoder(GgufFile file, ModelConfig config, WorkerPool pool) : base(file, config, pool, encoder: true)
    {
        int dim = config.Dim;
        bool nomic = config.Architecture == Bert.NomicName;
        if (!nomic) _positions = Matrix(TensorNames.Weight(TensorNames.PositionEmbd), dim, config.ContextLength, mayInterleave: false);
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
            // Fused attn_qkv or separate Q/K/V, whichever the file has, as llama.cpp's create_tensor_qkv takes either.
            var attention = LoadFusedAttention(l);
            // nomic-bert's graph ignores FFN biases even where a file carries them (llama.cpp passes none).
            var gelu = nomic ? null : new DenseFfnWeights
            {
                Up = Matrix(TensorNames.Weight(l, TensorNames.FfnUp), dim, config.FfnDim),
                Down = Matrix(TensorNames.Weight(l, TensorNames.FfnDown), config.FfnDim, dim),
                UpBias = OptionalVector(TensorNames.Bias(l, TensorNames.FfnUp), config.FfnDim),
                DownBias = OptionalVector(TensorNames.Bias(l, TensorNames.FfnDown), dim),
            };
            _layers[l] = new Layer(attention,
                Vector(TensorNames.Weight(l, TensorNames.AttnOutputNorm), dim), Vector(TensorNames.Bias(l, TensorNames.AttnOutputNorm), dim),
                gelu, nomic ? LoadFfn(l) : null,
                Vector(TensorNames.Weight(l, TensorNames.LayerOutputNorm), dim), Vector(TensorNames.Bias(l, TensorNames.LayerOutputNorm), dim));
        }
    }

    protected override bool Causal => false;

    /// <summary>Token row + position row (bert) + token type 0, LayerNormed: the input of the first layer.</summary>
    protected override void Embed(DecoderState w, ReadOnlySpan<int> tokens)
    {
        base.Embed(w, tokens);
        int dim = Config.Dim;
        for (int i = 0; i < tokens.Length; i++)
        {
            int pos = w.PackedCount > 0 ? w.PackedPos[i] : w.Position + i;
            if (pos >= Config.ContextLength)
                throw new ArgumentException($"an input of more than {Config.ContextLength} tokens is longer than {Config.Architecture}'s {(_positions is null ? "context" : "position embeddings")}");
            var x = w.X.AsSpan(i * dim, dim);
            if (_positions is not null)
            {
                var row = w.Xb.AsSpan(i * dim, dim);
                _positions.GetRow(pos, row);
                TensorPrimitives.Add(x, row, x);
            }
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
        SelfAttention(w, l, n, layer.Attention, rope: _positions is null);
        AddResidual(w, n, dim);
        LayerNormRows(w, n, layer.AttnNorm, layer.AttnNormBias);
        CopyResidual(w, n, dim);
        if (layer.SwiGlu is { } swiGlu) SwiGluFfn(w, n, swiGlu);
        else GeluFfn(w, n, layer.Gelu!);
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
