using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// The registry of architectures: `general.architecture` → its <see cref="ArchitectureInfo"/> (how it loads, which
/// Hugging Face names `convert` maps to it, its `synth` presets). Adding an architecture is its own file plus one line here.
/// </summary>
internal static class ModelLoader
{
    private static readonly ArchitectureInfo[] Registered =
    [
        Llama.Info,
        Qwen2.Info,
        DeepSeek2.Info,
        Qwen3.Info,
        Qwen3Moe.Info,
        SmolLm3.Info,
        Mistral3.Info,
        Phi3.Info,
        Gemma3.Info,
        GptOss.Info,
        Qwen35.Info,
        Qwen35Moe.Info,
        Bert.Info,
        Bert.NomicInfo,
    ];

    private static readonly Dictionary<string, ArchitectureInfo> Architectures = Registered.ToDictionary(a => a.Name);

    public static IReadOnlyCollection<string> SupportedArchitectures => Architectures.Keys;

    /// <summary>Every registered architecture, in registration order.</summary>
    public static IReadOnlyList<ArchitectureInfo> All => Registered;

    /// <summary>The architecture named <paramref name="name"/>, or null.</summary>
    public static ArchitectureInfo? Find(string name) => Architectures.GetValueOrDefault(name);

    /// <summary>Throws a clear error when the file's architecture is missing or not one Sputnik runs.</summary>
    public static void EnsureSupported(GgufFile file)
    {
        string arch = file.Architecture ?? throw new GgufFormatException($"{file.Path}: metadata '{GgufKeys.GeneralArchitecture}' is missing");
        if (!Architectures.ContainsKey(arch))
            throw new UnsupportedModelException($"{file.Path}: unknown architecture '{arch}' (supported: {string.Join(", ", Architectures.Keys)})");
    }

    /// <summary>The share of the memory available now that a first load may fill with re-laid weights.</summary>
    internal const double RelayMemoryShare = 0.75;

    /// <summary>
    /// Whether the weights re-laid at load fit in memory: a first load copies each re-laid matrix into memory of its
    /// own until the cache file is written, while a mapped file's pages can always be dropped and read again. When the
    /// matrices re-laid at load come to more than <see cref="RelayMemoryShare"/> of the memory available now
    /// and no valid cache file can be mapped, the file keeps its layout (slower kernels, but it loads as it would
    /// without re-laying, mapped, even beyond RAM) instead of being killed for memory halfway through its load.
    /// </summary>
    internal static bool RelayFits(GgufFile file)
    {
        var memory = GC.GetGCMemoryInfo();
        return RelayFits(file, memory.TotalAvailableMemoryBytes - memory.MemoryLoadBytes);
    }

    /// <summary><see cref="RelayFits(GgufFile)"/> with the available memory given (tests).</summary>
    internal static bool RelayFits(GgufFile file, long availableBytes)
    {
        double budget = availableBytes * RelayMemoryShare;
        if (file.TotalFileSize <= budget || RelaidCache.Of(file).IsMapped) return true;
        // MoE routed experts ("_exps") are re-laid at first use, under ExpertWeights' own limit: count the rest.
        long eager = file.Tensors.Where(t => !t.Name.Contains("_exps", StringComparison.Ordinal) && t.Dims.Length <= 2
            && t.Rows <= int.MaxValue && t.Columns <= int.MaxValue && WeightMatrix.MayRelay(t.Type, (int)t.Rows, (int)t.Columns)).Sum(t => t.ByteSize);
        return eager <= budget;
    }

    /// <summary>Builds the model over an open file. The model owns the file and the pool from here on.</summary>
    public static LanguageModel Load(GgufFile file, int threads)
    {
        EnsureSupported(file);
        var load = Architectures[file.Architecture!].Load;
        KernelStatics.EnsureInitialized(); // before the load or a forward compiles its first kernel
        if (file.RepackWeights && !RelayFits(file)) file.RepackWeights = false;
        var pool = new WorkerPool(threads);
        try
        {
            var model = load(file, pool);
            file.Relaid?.Save(); // the re-laid weights, for the next load to map
            file.ReleaseMappedPages(); // what the load read of the file; what decode reads maps back on use
            return model;
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
