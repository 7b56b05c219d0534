using Sputnik.Gguf;
using Sputnik.Tools;

namespace Sputnik.Tests.Embeddings;

/// <summary>Synthetic embedding models: a `sputnik synth` preset with the GGUF keys an embedding model carries.</summary>
internal static class EmbeddingModels
{
    private static readonly Lock Gate = new();

    /// <summary>
    /// The preset's F32 model (random weights, σ 0.1) with <paramref name="extra"/> metadata, written once per process
    /// into the temp dir; same arguments, same file.
    /// </summary>
    public static string Synth(string preset, string tag, params (string Key, GgufValue Value)[] extra)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"sputnik-embed-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, $"{preset}-{tag}.gguf");
        lock (Gate)
        {
            if (File.Exists(path)) return path;
            string bare = Path.Combine(dir, $"{preset}-bare.gguf");
            if (!File.Exists(bare))
                SyntheticModel.Write(bare, new SynthOptions { Preset = SyntheticModel.FindPreset(preset), FileType = FileType.AllF32, Seed = 1, Sigma = 0.1f, Threads = 2 });
            using var source = GgufFile.Open(bare);
            var w = new GgufWriter().CopyMetadata(source);
            foreach (var (key, value) in extra) w.Set(key, value);
            foreach (var t in source.Tensors) w.AddTensor(t.Name, t.Type, t.Dims, source.GetData(t).ToArray());
            w.Write(path + ".tmp");
            File.Move(path + ".tmp", path);
        }
        return path;
    }

    /// <summary>Qwen3-Embedding's layout: last-token pooling over inputs that end with EOS.</summary>
    public static string Qwen3LastToken() => Synth("qwen3-tiny", "last",
        ("qwen3.pooling_type", GgufValue.Of(3u)), ("tokenizer.ggml.add_eos_token", GgufValue.Of(true)));

    /// <summary>A llama decoder with mean pooling written in the file (llama.cpp pools it so only when the key says so).</summary>
    public static string LlamaMean() => Synth("llama-tiny", "mean", ("llama.pooling_type", GgufValue.Of(1u)));

    /// <summary>The tiny bert encoder with the preset's CLS pooling (BGE's).</summary>
    public static string BertCls() => Synth("bert-tiny", "cls");

    /// <summary>The tiny bert encoder mean-pooled (all-MiniLM's).</summary>
    public static string BertMean() => Synth("bert-tiny", "mean", ("bert.pooling_type", GgufValue.Of(1u)));

    /// <summary>The tiny nomic-bert encoder (RoPE, fused QKV, SwiGLU, no biases in the layers), mean-pooled as nomic-embed-text.</summary>
    public static string NomicMean() => Synth("nomic-bert-tiny", "mean");

    /// <summary>gemma3-tiny mean-pooled: sliding-window (16-token) layers between global ones.</summary>
    public static string Gemma3Mean() => Synth("gemma3-tiny", "mean", ("gemma3.pooling_type", GgufValue.Of(1u)));

    /// <summary>The models the batched and llama.cpp checks run: "qwen3-last", "llama-mean", "bert-cls", "bert-mean", "nomic-mean", "gemma3-mean".</summary>
    public static string Named(string which) => which switch
    {
        "qwen3-last" => Qwen3LastToken(),
        "llama-mean" => LlamaMean(),
        "bert-cls" => BertCls(),
        "bert-mean" => BertMean(),
        "nomic-mean" => NomicMean(),
        "gemma3-mean" => Gemma3Mean(),
        _ => throw new ArgumentException($"no embedding model '{which}'", nameof(which)),
    };

    public static double Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            dot += (double)a[i] * b[i];
            na += (double)a[i] * a[i];
            nb += (double)b[i] * b[i];
        }
        return dot / Math.Sqrt(na * nb);
    }
}
