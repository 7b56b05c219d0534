using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;
using Sputnik.Tokenizers;

namespace Sputnik.Tools;

/// <summary>Options for <see cref="SyntheticModel.Write"/>.</summary>
internal sealed record SynthOptions
{
    public required SynthPreset Preset { get; init; }
    public FileType FileType { get; init; } = FileType.F16;
    public ulong Seed { get; init; }

    /// <summary>A real vocabulary (e.g. from tokenizer.json); null builds a <see cref="SyntheticVocab"/> of the preset's size.</summary>
    public TokenizerData? Tokenizer { get; init; }

    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>Standard deviation of the random weights.</summary>
    public float Sigma { get; init; } = 0.02f;
}

/// <summary>
/// Writes a GGUF with random weights in a real model's shapes, real metadata and a usable tokenizer, so real sizes can
/// be benchmarked without downloads. Weight matrices are filled by sampling blocks from a pool of up to 4M N(0, σ) weights
/// (quantized once per type): each row picks its blocks with a seeded generator, so output is deterministic, rows are
/// independent (filled in parallel) and a 7B file streams to disk at write speed. Norm weights are 1, biases N(0, σ).
/// Tensor types follow llama.cpp's quantization mix for the requested file type (<see cref="QuantMix"/>).
/// </summary>
internal static class SyntheticModel
{
    /// <summary>Every llama-family preset (<see cref="ModelConfig"/> shapes, written by <see cref="Write"/>), from each registered architecture's file.</summary>
    public static IReadOnlyList<SynthPreset> Presets { get; } = ModelLoader.All.SelectMany(a => a.SynthPresets).ToArray();

    /// <summary>The presets of architectures that write their own synth files (<see cref="ArchitectureInfo.OwnSynth"/>: deepseek2), with their writer.</summary>
    public static IReadOnlyList<(OwnSynthPreset Preset, OwnSynthWriter Write)> OwnPresets { get; } =
        ModelLoader.All.Where(a => a.OwnSynth != null).SelectMany(a => a.OwnSynth!.Presets.Select(p => (p, a.OwnSynth.Write))).ToArray();

    /// <summary>Every preset name `sputnik synth --preset` takes, in registration order.</summary>
    public static IEnumerable<string> PresetNames =>
        ModelLoader.All.SelectMany(a => a.SynthPresets.Select(p => p.Name).Concat(a.OwnSynth?.Presets.Select(p => p.Name) ?? []));

    public static SynthPreset FindPreset(string name) =>
        Presets.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"unknown preset '{name}' (available: {string.Join(", ", PresetNames)})");

    /// <summary>The preset <paramref name="name"/> when its architecture writes synth files its own way; null otherwise.</summary>
    public static (OwnSynthPreset Preset, OwnSynthWriter Write)? FindOwnPreset(string name) =>
        OwnPresets.Where(p => string.Equals(p.Preset.Name, name, StringComparison.OrdinalIgnoreCase))
            .Select(p => ((OwnSynthPreset, OwnSynthWriter)?)p).FirstOrDefault();

    public static void Write(string path, SynthOptions o, Action<ToolProgress>? progress = null)
    {
        var p = o.Preset;
        var arch = ModelLoader.Find(p.Arch);
        if (arch is not { Synth: { } style, Tensors: { } declare })
            throw new ArgumentException($"preset '{p.Name}': architecture '{p.Arch}' cannot be synthesized");
        if (Directory.Exists(path)) throw new ArgumentException($"output '{path}' is a directory");
        var tok = o.Tokenizer is { } real ? SyntheticVocab.PadTo(real, p.Config.VocabSize)
            : style.CreateVocab?.Invoke(p.Config.VocabSize) ?? SyntheticVocab.Create(p.Config.VocabSize, style.TokenizerPre);
        p = p with { Config = p.Config with { VocabSize = tok.Tokens.Length } };
        int threads = Math.Max(1, o.Threads);

        var specs = declare(p).ToList();
        var mix = QuantMix.For(o.FileType, p.Config.Layers, specs.Select(s => (s.Name, s.Dims)));
        var w = new GgufWriter();
        WriteMetadata(w, p, style, o, tok);

        var pools = new Dictionary<GgmlType, WeightPool>();
        // Pool size: a quarter of the largest matrix (power of two), 64K..4M weights — small models stay quick to write.
        long largest = specs.Where(s => s.Fill == TensorFill.Matrix).Max(s => s.Dims[0] * s.Dims[1]);
        int poolWeights = (int)Math.Clamp(1L << (int)Math.Ceiling(Math.Log2(Math.Max(1, largest / 4))), 1 << 16, 1 << 22);
        GgmlType TypeOf(TensorDecl s) => s.Type ?? mix.Choose(s.Name, s.Dims, GgmlType.F32);
        long total = specs.Sum(s => GgufWriter.ByteSize(TypeOf(s), s.Dims));
        long done = 0;
        for (int i = 0; i < specs.Count; i++)
        {
            var s = specs[i];
            var type = TypeOf(s);
            int index = i;
            ulong tensorSeed = Mix(o.Seed ^ Mix((ulong)index + 0x9E37));
            w.AddTensor(s.Name, type, s.Dims, output =>
            {
                progress?.Invoke(new ToolProgress(s.Name, index, specs.Count, done, total));
                void Written(long n)
                {
                    done += n;
                    progress?.Invoke(new ToolProgress(s.Name, index, specs.Count, done, total));
                }
                long rows = s.Dims.Skip(1).Aggregate(1L, (a, b) => a * b); // 3-D expert stacks: all experts' rows
                long cols = s.Dims[0];
                if (s.Fill == TensorFill.Matrix)
                {
                    if (!pools.TryGetValue(type, out var pool)) pools[type] = pool = new WeightPool(type, o.Seed, o.Sigma, poolWeights, threads);
                    TensorStreams.WriteRows(output, rows, GgmlTypeInfo.RowBytes(type, cols), threads,
                        (row, dst) => pool.FillRow(dst, cols, Mix(tensorSeed ^ Mix((ulong)row))), Written);
                    return;
                }
                var v = new float[cols * rows]; // 1-D, or a 2-D bias (gpt-oss's per-expert biases)
                switch (s.Fill)
                {
                    case TensorFill.Ones: Array.Fill(v, 1f); break;
                    case TensorFill.Bias: Gaussian(tensorSeed, o.Sigma, v); break;
                    case TensorFill.NormJitter:
                        Gaussian(tensorSeed, 0.1f, v);
                        for (int j = 0; j < v.Length; j++) v[j] += 1f;
                        break;
                    case TensorFill.Computed: s.Values!(v); break;
                }
                var bytes = new byte[GgmlTypeInfo.RowBytes(type, v.Length)];
                Quant.Row(type, v, bytes);
                output.Write(bytes);
                Written(bytes.Length);
            });
        }
        w.Write(path);
    }

    private static void WriteMetadata(GgufWriter w, SynthPreset p, SynthStyle style, SynthOptions o, TokenizerData tok)
    {
        w.Set(GgufKeys.GeneralArchitecture, p.Arch);
        w.Set(GgufKeys.GeneralType, "model");
        w.Set(GgufKeys.GeneralName, $"Sputnik synthetic {p.Name}");
        w.Set(GgufKeys.GeneralDescription, $"random weights, not a trained model (sputnik synth --preset {p.Name} --seed {o.Seed})");
        p.Config.WriteKeys(w);
        w.Set(GgufKeys.GeneralFileType, (uint)o.FileType);
        if (QuantMix.IsQuantized(QuantMix.DefaultType(o.FileType))) w.Set(GgufKeys.GeneralQuantizationVersion, GgufQuantizer.QuantizationVersion);

        WriteTokenizer(w, tok, string.IsNullOrEmpty(tok.Pre) || tok.Pre == "default" ? style.TokenizerPre : tok.Pre,
            tok.AddBos ?? style.AddBos, p.ChatTemplate ?? style.ChatTemplate);
    }

    private static void WriteTokenizer(GgufWriter w, TokenizerData tok, string pre, bool addBos, string chatTemplate)
    {
        (tok with { Pre = pre, AddBos = addBos }).WriteTo(w);
        if (chatTemplate.Length > 0) w.Set(GgufKeys.ChatTemplate, chatTemplate); // an encoder has none
    }

    /// <summary>
    /// A `deepseek2` file (MLA + MoE) in the shapes of <paramref name="config"/>, with a synthetic byte-level vocabulary.
    /// Expert matrices take the file type's base quant type (K-quant mixes are a llama/qwen2 notion here).
    /// </summary>
    public static void WriteDeepSeek2(string path, string name, DeepSeek2Config config, FileType fileType, ulong seed, int threads = 0)
    {
        if (Directory.Exists(path)) throw new ArgumentException($"output '{path}' is a directory");
        var tok = SyntheticVocab.Create(Math.Max(config.VocabSize, 512), "deepseek-v3"); // byte tokens + specials need room
        var w = new GgufWriter();
        DeepSeek2Synth.Write(w, config with { VocabSize = tok.Tokens.Length }, QuantMix.DefaultType(fileType), (int)(seed & 0x7fffffff), $"Sputnik synthetic {name}", threads);
        w.Set(GgufKeys.GeneralFileType, (uint)fileType);
        WriteTokenizer(w, tok, "deepseek-v3", addBos: true, Qwen2.ChatMl);
        w.Write(path);
    }

    /// <summary>SplitMix64's finalizer: a good 64-bit mixer for deriving independent seeds.</summary>
    internal static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    internal static void Gaussian(ulong seed, float sigma, Span<float> dst)
    {
        ulong s = seed;
        for (int i = 0; i < dst.Length; i += 2)
        {
            s = Mix(s);
            double u1 = ((s >> 11) + 1) * (1.0 / 9007199254740993.0); // (0, 1]
            s = Mix(s);
            double u2 = (s >> 11) * (1.0 / 9007199254740992.0);
            double r = Math.Sqrt(-2 * Math.Log(u1)) * sigma;
            dst[i] = (float)(r * Math.Cos(2 * Math.PI * u2));
            if (i + 1 < dst.Length) dst[i + 1] = (float)(r * Math.Sin(2 * Math.PI * u2));
        }
    }

    /// <summary>Up to 4M N(0, σ) weights encoded in one ggml type, sampled block by block to fill rows.</summary>
    private sealed class WeightPool
    {
        private const int PoolRow = 256;
        private readonly int _poolWeights;
        private readonly byte[] _bytes;
        private readonly GgmlType _type;
        private readonly int _unitWeights, _unitBytes, _unitMask;
        private readonly float[] _floats;

        public WeightPool(GgmlType type, ulong seed, float sigma, int poolWeights, int threads)
        {
            _poolWeights = poolWeights;
            _type = type;
            _floats = new float[_poolWeights];
            Gaussian(Mix(seed ^ 0x5EED), sigma, _floats);
            _unitWeights = GgmlTypeInfo.BlockSize(type) == 256 ? 256 : 32;
            _unitBytes = (int)GgmlTypeInfo.RowBytes(type, _unitWeights);
            _unitMask = _poolWeights / _unitWeights - 1;
            int rowBytes = (int)GgmlTypeInfo.RowBytes(type, PoolRow);
            _bytes = new byte[_poolWeights / PoolRow * rowBytes];
            Parallel.For(0, _poolWeights / PoolRow, new ParallelOptions { MaxDegreeOfParallelism = threads }, r =>
                Quant.Row(type, _floats.AsSpan(r * PoolRow, PoolRow), _bytes.AsSpan(r * rowBytes, rowBytes)));
        }

        public void FillRow(Span<byte> dst, long cols, ulong seed)
        {
            ulong s = seed;
            if (cols % _unitWeights == 0)
            {
                int units = (int)(cols / _unitWeights);
                for (int u = 0; u < units; u++)
                {
                    s = Mix(s);
                    int k = (int)(s >> 32) & _unitMask;
                    _bytes.AsSpan(k * _unitBytes, _unitBytes).CopyTo(dst.Slice(u * _unitBytes, _unitBytes));
                }
                return;
            }
            // Float types with an odd row length: sample single weights.
            var row = new float[cols];
            for (long i = 0; i < cols; i++)
            {
                s = Mix(s);
                row[i] = _floats[(int)(s >> 32) & (_poolWeights - 1)];
            }
            Quant.Row(_type, row, dst);
        }
    }
}
