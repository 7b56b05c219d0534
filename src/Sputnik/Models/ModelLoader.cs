using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>Maps `general.architecture` to the class that runs it.</summary>
internal static class ModelLoader
{
    private static readonly Dictionary<string, Func<GgufFile, WorkerPool, LanguageModel>> Architectures = new()
    {
        [Llama.Name] = Llama.Load,
        [Qwen2.Name] = Qwen2.Load,
        [DeepSeek2.Name] = DeepSeek2.Load,
        [Qwen3.Name] = Qwen3.Load,
        [Qwen3Moe.Name] = Qwen3Moe.Load,
        [Gemma3.Name] = Gemma3.Load,
    };

    public static IReadOnlyCollection<string> SupportedArchitectures => Architectures.Keys;

    /// <summary>Throws a clear error when the file's architecture is missing or not one Sputnik runs.</summary>
    public static void EnsureSupported(GgufFile file)
    {
        string arch = file.Architecture ?? throw new GgufFormatException($"{file.Path}: metadata 'general.architecture' is missing");
        if (!Architectures.ContainsKey(arch))
            throw new UnsupportedModelException($"{file.Path}: unknown architecture '{arch}' (supported: {string.Join(", ", Architectures.Keys)})");
    }

    /// <summary>Builds the model over an open file. The model owns the file and the pool from here on.</summary>
    public static LanguageModel Load(GgufFile file, int threads)
    {
        EnsureSupported(file);
        var load = Architectures[file.Architecture!];
        var pool = new WorkerPool(threads);
        try
        {
            return load(file, pool);
        }
        catch
        {
            pool.Dispose();
            throw;
        }
    }
}

/// <summary>A well-formed file for an architecture or feature Sputnik does not run.</summary>
/// <remarks>Text from the file in the message is escaped and the whole is capped, as for <see cref="GgufFormatException"/>.</remarks>
public sealed class UnsupportedModelException(string message) : Exception(DisplayText.Safe(message));
