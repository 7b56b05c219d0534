using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tokenizers;

namespace Sputnik;

/// <summary>Options for loading a model.</summary>
public sealed record ModelOptions
{
    /// <summary>Worker threads for matrix products; defaults to the machine's core count.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>Context (KV cache) length per sequence; 0 means the model's trained context, capped at 4096.</summary>
    public int ContextLength { get; init; }

    /// <summary>Element format of the KV cache; F16 halves memory and attention bandwidth at a tiny accuracy cost.</summary>
    public KvCacheType KvType { get; init; } = KvCacheType.F16;
}

/// <summary>
/// A model file loaded and ready to run: the architecture, its tokenizer and its chat template.
/// Loading maps the file; weights are not copied into managed memory.
/// </summary>
public sealed class SputnikModel : IDisposable
{
    private SputnikModel(LanguageModel model, Tokenizer tokenizer, int contextLength, KvCacheType kvType)
    {
        KvType = kvType;
        Model = model;
        Tokenizer = tokenizer;
        ContextLength = contextLength;
    }

    public LanguageModel Model { get; }
    public Tokenizer Tokenizer { get; }
    public int ContextLength { get; }
    public KvCacheType KvType { get; }
    public GgufFile File => Model.File;
    public string? ChatTemplate => File.GetStringOrNull("tokenizer.chat_template");

    /// <summary>Loads a GGUF model. Throws FileNotFoundException, GgufFormatException or UnsupportedModelException with a clear message.</summary>
    public static SputnikModel Load(string path, ModelOptions? options = null)
    {
        options ??= new ModelOptions();
        if (options.Threads < 1) throw new ArgumentException($"threads must be at least 1 (got {options.Threads})");
        if (options.ContextLength < 0) throw new ArgumentException($"context length must not be negative (got {options.ContextLength})");
        var file = GgufFile.Open(path);
        try
        {
            ModelLoader.EnsureSupported(file);
            var tokenizer = Tokenizer.Create(TokenizerData.FromGguf(file));
            var model = ModelLoader.Load(file, options.Threads);
            int ctx = options.ContextLength > 0 ? options.ContextLength : Math.Min(model.Config.ContextLength, 4096);
            return new SputnikModel(model, tokenizer, ctx, options.KvType);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public static Task<SputnikModel> LoadAsync(string path, ModelOptions? options = null, CancellationToken cancellationToken = default) =>
        Task.Run(() => Load(path, options), cancellationToken);

    /// <summary>A fresh KV cache and scratch for one sequence.</summary>
    public InferenceState CreateState() => Model.CreateState(ContextLength, KvType);

    public void Dispose() => Model.Dispose();
}
