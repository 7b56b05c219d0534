using System.Text;
using Sputnik.Inference;
using Sputnik.Server.Api;
using Sputnik.Server.Scheduling;

namespace Sputnik.Server;

/// <summary>The loaded model, its prompt builder and scheduler, and the facts the API reports about it.</summary>
internal sealed class ModelHost : IDisposable
{
    public ModelHost(SputnikModel model, ServerOptions options, ServerMetrics metrics, bool ownsModel)
    {
        Model = model;
        Options = options;
        Metrics = metrics;
        _ownsModel = ownsModel;
        Id = options.ModelAlias ?? Path.GetFileNameWithoutExtension(options.ModelPath);
        Builder = new ChatPromptBuilder(model.Tokenizer, options.ChatTemplate ?? model.ChatTemplate);
        DefaultSampling = model.RecommendedSampling();
        var info = new FileInfo(options.ModelPath);
        Identity = FileIdentity(info);
        Fingerprint = "fp_" + Identity[..10];
        Func<Sputnik.Models.ICacheRows, PromptCache>? cache = options.CacheRamMb > 0 || options.CacheDir != null
            ? shape => new PromptCache(options.CacheRamMb * 1024L * 1024L, options.CacheDir, Identity + "|ctx" + model.ContextLength, shape)
            : null;
        Scheduler = new Scheduler(model, options.Parallel, options.MaxQueue, metrics, options.StepDelay, cache: cache, prefillChunk: options.PrefillChunk);
        FileSize = info.Exists ? info.Length : 0;
        Created = info.Exists ? new DateTimeOffset(info.LastWriteTimeUtc).ToUnixTimeSeconds() : DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    }

    private readonly bool _ownsModel;

    public SputnikModel Model { get; }
    public ServerOptions Options { get; }
    public ServerMetrics Metrics { get; }
    public string Id { get; }
    public string Fingerprint { get; }
    public long Created { get; }
    public long FileSize { get; }
    public ChatPromptBuilder Builder { get; }
    /// <summary>Sampler settings for request fields left out: the model file's general.sampling.* over the library defaults.</summary>
    public Sputnik.Inference.SamplingOptions DefaultSampling { get; }
    public Scheduler Scheduler { get; }

    /// <summary>404 for a model name that is neither the served id nor the file name; absent means the served one.</summary>
    public void CheckModel(string? name)
    {
        if (string.IsNullOrEmpty(name) || name == Id || name == Path.GetFileName(Options.ModelPath)) return;
        throw new ApiException(404, $"The model '{name}' does not exist; this server serves '{Id}'", "model", "model_not_found");
    }

    public ModelCard Card()
    {
        var m = Model.Model;
        int vocab = Model.Tokenizer.VocabSize;
        return new ModelCard(Id, "model", Created, "sputnik", Model.ContextLength,
            new ModelMeta(m.Config.Architecture, m.ParameterCount, Model.ContextLength, vocab,
                Model.ChatTemplate != null, Builder.SupportsThinking, Scheduler.SlotCount,
                vocab, m.Config.ContextLength, Model.ContextLength, m.Config.Dim, m.ParameterCount, FileSize));
    }

    /// <summary>The model file's identity: its size and a hash of its first MiB (header, metadata, first tensors).</summary>
    public string Identity { get; }

    private static string FileIdentity(FileInfo info)
    {
        if (!info.Exists) return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(info.FullName)));
        using var f = info.OpenRead();
        var head = new byte[(int)Math.Min(info.Length, 1 << 20)];
        f.ReadExactly(head);
        var hash = System.Security.Cryptography.SHA256.HashData([.. head, .. BitConverter.GetBytes(info.Length)]);
        return Convert.ToHexStringLower(hash);
    }

    public void Dispose()
    {
        Scheduler.Dispose();
        if (_ownsModel) Model.Dispose();
    }
}
