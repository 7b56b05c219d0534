using Sputnik.Inference;
using Sputnik.Server.Api;
using Sputnik.Server.Scheduling;

namespace Sputnik.Server;

/// <summary>The loaded model, its prompt builder and scheduler, and the facts the API reports about it.</summary>
internal sealed class ModelHost : IDisposable
{
    /// <param name="servedName">the name it is served under (a multi-model server's); null: --alias, else the file's name</param>
    public ModelHost(SputnikModel model, ServerOptions options, ServerMetrics metrics, bool ownsModel, Action<string>? log = null, string? servedName = null)
    {
        Model = model;
        Options = options;
        Metrics = metrics;
        _ownsModel = ownsModel;
        Id = servedName ?? options.ModelAlias ?? DefaultId(options.ModelPath);
        Builder = new ChatPromptBuilder(model.Tokenizer, options.ChatTemplate ?? model.ChatTemplate);
        DefaultSampling = model.RecommendedSampling();
        var info = Sputnik.Hub.HubCache.Target(options.ModelPath); // the file itself when the path is a link (the hub cache's are)
        var tok = model.Tokenizer;
        var m = model.Model;
        var facts = new ModelFacts(m.Config.Architecture, m.ParameterCount, Api.Ollama.OllamaEndpoints.QuantizationLevel(model.File), model.ContextLength,
            m.Config.ContextLength, tok.VocabSize, model.ChatTemplate != null || options.ChatTemplate != null, Builder.SupportsThinking, m.Config.Dim);
        Servable = ServableModel.Create(Id, model.File, options.ModelPath, facts, options);
        Fingerprint = "fp_" + Digest[..10];
        for (int id = 0; id < tok.VocabSize; id++) MaxTokenBytes = Math.Max(MaxTokenBytes, tok.PieceBytes(id, renderSpecial: true).Length);
        Func<Sputnik.Models.ICacheRows, PromptCache>? cache = options.CacheRamMb > 0 || options.CacheDir != null
            ? shape => new PromptCache(options.CacheRamBytes, options.CacheDir, options.CacheDiskMb * 1024L * 1024L,
                CacheIdentity(model, info, options.CacheDir) + "|ctx" + model.ContextLength, shape, log, metrics.RecordRejectedCacheFile)
            : null;
        var speculation = options.Speculation;
        if (options.DraftModelPath != null)
        {
            _draft = SputnikModel.Load(options.DraftModelPath, new ModelOptions
            {
                Threads = options.Threads, ContextLength = model.ContextLength, KvType = options.KvType, KvTypeV = options.KvTypeV,
            });
            try
            {
                DraftModelSource.CheckCompatible(model.Tokenizer, _draft.Tokenizer);
            }
            catch
            {
                _draft.Dispose();
                throw;
            }
            speculation = (speculation ?? new SpeculationOptions()) with { DraftModel = _draft };
        }
        Scheduler = new Scheduler(model, options.Parallel, options.MaxQueue, metrics, options.StepDelay, cache: cache, prefillChunk: options.PrefillChunk, log: log,
            speculation: speculation, speculativeSlots: options.SpeculativeSlots);
        _embedder = new Lazy<Embedder>(() => new Embedder(model.Model, model.Tokenizer, model.ContextLength, model.KvType));
    }

    /// <summary>This model as /v1/models and /api/tags list it.</summary>
    public ServableModel Servable { get; }

    /// <summary>The bytes a memory budget counts for it: the file and every slot's full KV cache.</summary>
    public long MemorySize => Servable.MemorySize;

    private readonly bool _ownsModel;
    private readonly SputnikModel? _draft;
    private readonly Lazy<Embedder> _embedder;

    /// <summary>Embeddings with this model (throws NotSupportedException for a reranker); Embed runs only on the scheduler's thread.</summary>
    public Embedder Embedder => _embedder.Value;

    public SputnikModel Model { get; }
    public ServerOptions Options { get; }
    public ServerMetrics Metrics { get; }
    public string Id { get; }
    public string Fingerprint { get; }
    /// <summary>SHA-256 of the file's first MiB and its size (Ollama's digest field; the whole file is not read).</summary>
    public string Digest => Servable.Digest;
    public long Created => Servable.Created;
    public long FileSize => Servable.FileSize;
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
    /// <summary>
    /// The LoRA adapters a request runs with: its own "lora" list (adapters not listed at 0) when it has one, else the
    /// global scales. An id the server did not load is a 400.
    /// </summary>
    public Sputnik.Models.LoraSet AdaptersFor(IReadOnlyList<(int Id, float Scale)>? requested)
    {
        if (requested == null) return Model.DefaultAdapters;
        CheckAdapterIds(requested, "lora");
        return Sputnik.Models.LoraSet.Of(requested);
    }

    /// <summary>POST /lora-adapters: the global scales, adapters not listed set to 0 (as llama-server does).</summary>
    public void SetGlobalAdapterScales(IReadOnlyList<(int Id, float Scale)> scales)
    {
        CheckAdapterIds(scales, "body");
        var all = new float[Model.Model.Adapters.Count];
        foreach (var (id, scale) in scales) all[id] = scale;
        Model.AdapterScales = all;
        Model.DefaultAdapters = Sputnik.Models.LoraSet.Of(all.Select((scale, id) => (id, scale)));
    }

    private void CheckAdapterIds(IReadOnlyList<(int Id, float Scale)> scales, string field)
    {
        int count = Model.Model.Adapters.Count;
        foreach (var (id, _) in scales)
            if (id >= count)
                throw ApiException.BadRequest($"'{field}' names LoRA adapter {id}, but the server has {(count == 0 ? "none (start it with --lora)" : $"ids 0..{count - 1}")} (see GET /lora-adapters)", field);
    }

    public long BodyLimit => Math.Min(Options.MaxBodyBytes, (long)Model.ContextLength * MaxTokenBytes * 6 + (1 << 20));

    public ModelCard Card() => Servable.Card(Scheduler.SlotCount);

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
            : ServableModel.QuickIdentity(info);

    public void Dispose()
    {
        Scheduler.Dispose();
        _draft?.Dispose();
        if (_ownsModel) Model.Dispose();
    }
}
