using System.Text;
using Sputnik.Inference;
using Sputnik.Server.Api;
using Sputnik.Server.Scheduling;

namespace Sputnik.Server;

/// <summary>The loaded model, its prompt builder and scheduler, and the facts the API reports about it.</summary>
internal sealed class ModelHost : IDisposable
{
    public ModelHost(SputnikModel model, ServerOptions options, ServerMetrics metrics, bool ownsModel, Action<string>? log = null)
    {
        Model = model;
        Options = options;
        Metrics = metrics;
        _ownsModel = ownsModel;
        Id = options.ModelAlias ?? DefaultId(options.ModelPath);
        Builder = new ChatPromptBuilder(model.Tokenizer, options.ChatTemplate ?? model.ChatTemplate);
        DefaultSampling = model.RecommendedSampling();
        var info = Sputnik.Hub.HubCache.Target(options.ModelPath); // the file itself when the path is a link (the hub cache's are)
        Digest = QuickIdentity(info);
        Fingerprint = "fp_" + Digest[..10];
        var tok = model.Tokenizer;
        for (int id = 0; id < tok.VocabSize; id++) MaxTokenBytes = Math.Max(MaxTokenBytes, tok.PieceBytes(id, renderSpecial: true).Length);
        Func<Sputnik.Models.ICacheRows, PromptCache>? cache = options.CacheRamMb > 0 || options.CacheDir != null
            ? shape => new PromptCache(options.CacheRamMb * 1024L * 1024L, options.CacheDir, options.CacheDiskMb * 1024L * 1024L,
                CacheIdentity(model, info, options.CacheDir) + "|ctx" + model.ContextLength, shape, log)
            : null;
        Scheduler = new Scheduler(model, options.Parallel, options.MaxQueue, metrics, options.StepDelay, cache: cache, prefillChunk: options.PrefillChunk, log: log);
        _embedder = new Lazy<Embedder>(() => new Embedder(model.Model, model.Tokenizer, model.ContextLength, model.KvType));
        FileSize = info.Exists ? model.File.TotalFileSize : 0; // all shards of a split model
        Created = info.Exists ? new DateTimeOffset(info.LastWriteTimeUtc).ToUnixTimeSeconds() : DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    }

    private readonly bool _ownsModel;
    private readonly Lazy<Embedder> _embedder;

    /// <summary>Embeddings with this model (throws NotSupportedException for a reranker); Embed runs only on the scheduler's thread.</summary>
    public Embedder Embedder => _embedder.Value;

    public SputnikModel Model { get; }
    public ServerOptions Options { get; }
    public ServerMetrics Metrics { get; }
    public string Id { get; }
    public string Fingerprint { get; }
    /// <summary>SHA-256 of the file's first MiB and its size (Ollama's digest field; the whole file is not read).</summary>
    public string Digest { get; }
    public long Created { get; }
    public long FileSize { get; }
    public ChatPromptBuilder Builder { get; }
    /// <summary>Sampler settings for request fields left out: the model file's general.sampling.* over the library defaults.</summary>
    public Sputnik.Inference.SamplingOptions DefaultSampling { get; }
    public Scheduler Scheduler { get; }

    /// <summary>The most UTF-8 bytes one token spells (special tokens included): text of C characters is at least C / this many tokens.</summary>
    public int MaxTokenBytes { get; } = 1;

    /// <summary>
    /// The largest completion request body worth reading: --max-body, or less when the context is small — a prompt
    /// that fits is at most n_ctx × MaxTokenBytes characters, each at most 6 bytes as JSON (\uXXXX), plus 1 MiB
    /// for the other fields (tools, a schema).
    /// </summary>
    public long BodyLimit => Math.Min(Options.MaxBodyBytes, (long)Model.ContextLength * MaxTokenBytes * 6 + (1 << 20));

    public ModelCard Card()
    {
        var m = Model.Model;
        int vocab = Model.Tokenizer.VocabSize;
        return new ModelCard(Id, "model", Created, "sputnik", Model.ContextLength,
            new ModelMeta(m.Config.Architecture, m.ParameterCount, Model.ContextLength, vocab,
                Model.ChatTemplate != null, Builder.SupportsThinking, Scheduler.SlotCount,
                vocab, m.Config.ContextLength, Model.ContextLength, m.Config.Dim, m.ParameterCount, FileSize));
    }

    /// <summary>
    /// What the prompt cache's files are tied to: with --cache-dir the SHA-256 of the whole model file, of every shard of a
    /// split model (remembered there by path, size and time, see <see cref="ModelFileHash"/>); RAM-only entries live and
    /// die with this process.
    /// </summary>
    /// <summary>The served name of a model file: its name without .gguf, and a split set's name without the shard suffix.</summary>
    internal static string DefaultId(string path)
    {
        string name = Path.GetFileName(path);
        return Sputnik.Gguf.GgufSplit.TryParseShardName(name, out string prefix, out _, out _) ? prefix : Path.GetFileNameWithoutExtension(name);
    }

    private static string CacheIdentity(SputnikModel model, FileInfo info, string? cacheDir) =>
        cacheDir != null && info.Exists
            ? string.Join('+', model.File.ShardPaths.Select(p => ModelFileHash.Get(Path.GetFullPath(p), cacheDir))) // every shard of a split model
            : QuickIdentity(info);

    /// <summary>For system_fingerprint: the model file's size and a hash of its first MiB (header, metadata, first tensors).</summary>
    private static string QuickIdentity(FileInfo info)
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
