using System.Runtime.CompilerServices;
using Sputnik.Gguf;
using Sputnik.Inference;
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

    /// <summary>
    /// Element format of the KV cache's keys, and of its values unless <see cref="KvTypeV"/> is set (llama.cpp's
    /// --cache-type-k); F16 halves memory and attention bandwidth at a tiny accuracy cost, Q8_0 and Q4_0 save more.
    /// </summary>
    public KvCacheType KvType { get; init; } = KvCacheType.F16;

    /// <summary>Element format of the KV cache's values (llama.cpp's --cache-type-v); null means <see cref="KvType"/>.</summary>
    public KvCacheType? KvTypeV { get; init; }

    /// <summary>
    /// LoRA adapters (GGUF files as llama.cpp's --lora takes them) applied on top of the model, in order: the first
    /// has id 0. Each scale is the adapter's default (llama.cpp's --lora-scaled); the server can change them per request.
    /// </summary>
    public IReadOnlyList<LoraAdapterOptions> LoraAdapters { get; init; } = [];
}

/// <summary>A LoRA adapter file to apply, and its scale (1 applies it as trained, 0 leaves the base model).</summary>
public sealed class LoraAdapterOptions
{
    /// <param name="path">The adapter GGUF (general.type = adapter, adapter.type = lora) made for the model's architecture and tensors.</param>
    /// <param name="scale">The factor of its delta (with alpha/rank): 1 as trained, 0 off.</param>
    public LoraAdapterOptions(string path, float scale)
    {
        Path = path;
        Scale = float.IsFinite(scale) ? scale : throw new ArgumentException($"LoRA scale must be a finite number, not {scale}");
    }

    /// <summary>The adapter file.</summary>
    public string Path { get; }

    /// <summary>The factor of its delta.</summary>
    public float Scale { get; }
}

/// <summary>
/// A model file loaded and ready to run: the architecture, its tokenizer and its chat template.
/// Loading maps the file; weights are not copied into managed memory.
/// </summary>
/// <remarks>
/// <para><b>Thread safety.</b> One model may be shared by any number of chats (<see cref="CreateChat"/>) and chat
/// clients (<see cref="SputnikChatClient"/>) on any threads. The forward pass runs on the model's own worker pool,
/// which is not re-entrant, so their turns are serialised on a per-model lock: while one turn generates, the
/// others wait (asynchronously) for it to finish. For parallel requests load the model once per worker or use the
/// HTTP server, whose scheduler steps many sequences in turn.</para>
/// <para>The lower-level members (<see cref="Model"/>, <see cref="CreateState"/>, <see cref="Generator"/>) do not
/// take that lock; code that drives them directly must not run them concurrently with a chat on the same model.</para>
/// </remarks>
public sealed class SputnikModel : IDisposable
{
    private SputnikModel(LanguageModel model, Tokenizer tokenizer, int contextLength, KvCacheType kvType, KvCacheType kvTypeV)
    {
        KvType = kvType;
        KvTypeV = kvTypeV;
        Model = model;
        Tokenizer = tokenizer;
        ContextLength = contextLength;
    }

    /// <summary>The transformer (llama, qwen2 or deepseek2) that computes logits.</summary>
    internal LanguageModel Model { get; }

    /// <summary>The model's tokenizer (text ⇄ token ids).</summary>
    internal Tokenizer Tokenizer { get; }

    /// <summary>Context (KV cache) length of each sequence created by <see cref="CreateState"/>.</summary>
    public int ContextLength { get; }

    /// <summary>Element format of the KV cache's keys.</summary>
    public KvCacheType KvType { get; }

    /// <summary>Element format of the KV cache's values.</summary>
    public KvCacheType KvTypeV { get; }

    /// <summary>The mapped GGUF file (metadata and tensors).</summary>
    internal GgufFile File => Model.File;

    /// <summary>The model's Jinja chat template, or null when the file carries none (ChatML is used then).</summary>
    public string? ChatTemplate => File.GetStringOrNull("tokenizer.chat_template");

    /// <summary>
    /// <paramref name="baseline"/> (the library defaults when null) with the sampler settings the model file recommends
    /// (<c>general.sampling.*</c>, as llama.cpp reads them) applied; settings the user chose explicitly belong on top.
    /// </summary>
    public SamplingOptions RecommendedSampling(SamplingOptions? baseline = null) => Inference.RecommendedSampling.Apply(File, baseline ?? new SamplingOptions());

    /// <summary>A name for the model: <c>general.name</c> from the file, else the file name without extension.</summary>
    public string Name { get; private init; } = "model";

    /// <summary>Serialises turns on this model: the worker pool behind <see cref="Model"/> is not re-entrant.</summary>
    internal SemaphoreSlim Gate { get; } = new(1, 1);

    /// <summary>Loads a GGUF model. Throws FileNotFoundException, GgufFormatException or UnsupportedModelException with a clear message.</summary>
    public static SputnikModel Load(string path, ModelOptions? options = null)
    {
        options ??= new ModelOptions();
        if (options.Threads < 1) throw new ArgumentException($"threads must be at least 1 (got {options.Threads})");
        if (options.ContextLength < 0) throw new ArgumentException($"context length must not be negative (got {options.ContextLength})");
        Tools.MemoryTrace.Mark("load start");
        var file = GgufFile.Open(path);
        try
        {
            ModelLoader.EnsureSupported(file);
            Tools.MemoryTrace.Mark("gguf header read");
            var tokenizerData = TokenizerData.FromGguf(file);
            Tools.MemoryTrace.Mark("tokenizer data");
            var tokenizer = Tokenizer.Create(tokenizerData);
            tokenizerData = null;
            Tools.MemoryTrace.Mark("tokenizer built");
            // The tokenizer's inputs (150k token and merge strings: ≈ 20 MB) are garbage now; collected here, before
            // the weights grow the process, their pages are not part of its peak (measured in bench/RESULTS.md).
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            Tools.MemoryTrace.Mark("tokenizer inputs freed");
            var model = ModelLoader.Load(file, options.Threads);
            Tools.MemoryTrace.Mark("weights loaded");
            // A cache type the model's head size cannot take fails here, at load, rather than at the first request.
            model.CreateState(1, options.KvType, options.KvTypeV ?? options.KvType);
            int ctx = options.ContextLength > 0 ? options.ContextLength : Math.Min(model.Config.ContextLength, 4096);
            string name = file.GetStringOrNull(GgufKeys.GeneralName) is { Length: > 0 } n ? n : Path.GetFileNameWithoutExtension(path);
            var scales = new List<(int, float)>();
            foreach (var lora in options.LoraAdapters)
                scales.Add((model.AttachAdapter(LoraAdapter.Load(lora.Path, file)), lora.Scale));
            return new SputnikModel(model, tokenizer, ctx, options.KvType, options.KvTypeV ?? options.KvType)
            {
                Name = name, DefaultAdapters = LoraSet.Of(scales), AdapterScales = [.. scales.Select(s => s.Item2)],
            };
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads a GGUF model on a thread-pool thread; see <see cref="Load"/>. <paramref name="path"/> may also be a
    /// Hugging Face reference (<c>owner/repo</c>, <c>owner/repo:Q4_K_M</c>, <c>hf.co/owner/repo</c>,
    /// <c>owner/repo/file.gguf</c>, with an optional <c>@revision</c>): it is taken from the Hugging Face cache, and
    /// downloaded (resumably, SHA-256 checked) into that cache first when it is not there. HF_ENDPOINT, HF_TOKEN,
    /// HF_HUB_OFFLINE and HF_HUB_CACHE/HF_HOME apply as they do for huggingface_hub.
    /// </summary>
    /// <param name="path">A .gguf file, or a hub reference.</param>
    /// <param name="options">Threads, context length and KV cache type; defaults when null.</param>
    /// <param name="cancellationToken">Cancels a download (its partial file is kept and resumed next time) and loading before it starts (mapping a file is not interruptible).</param>
    /// <exception cref="Hub.HubException">The reference cannot be resolved or downloaded; the message says why.</exception>
    public static async Task<SputnikModel> LoadAsync(string path, ModelOptions? options = null, CancellationToken cancellationToken = default)
    {
        string local = await new Hub.ModelHub(Hub.HubSettings.FromEnvironment()).ResolvePathAsync(path, cancellationToken).ConfigureAwait(false);
        return await Task.Run(() => Load(local, options), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A fresh KV cache and scratch for one sequence.</summary>
    internal InferenceState CreateState()
    {
        var state = Model.CreateState(ContextLength, KvType, KvTypeV);
        state.Adapters = DefaultAdapters;
        return state;
    }

    /// <summary>The adapters (ids of Model.Adapters) and scales new sequences run with: those loaded, at their scales.</summary>
    internal LoraSet DefaultAdapters { get; set; } = LoraSet.None;

    /// <summary>The global scale of each attached adapter, by id (the server's GET/POST /lora-adapters).</summary>
    internal float[] AdapterScales { get; set; } = [];

    /// <summary>
    /// Starts a conversation with this model: it keeps the messages and its own KV cache, so each turn only
    /// computes the new tokens. Use <see cref="ChatSession.SendAsync"/> to stream a reply (reasoning and answer
    /// apart) or <see cref="ChatSession.AskAsync"/> for the whole reply. Many chats may share one model; their
    /// turns run one at a time (see the remarks on <see cref="SputnikModel"/>).
    /// </summary>
    /// <param name="options">Sampling, limits, thinking and template; defaults when null. Can be changed between turns through <see cref="ChatSession.Options"/>.</param>
    public ChatSession CreateChat(ChatOptions? options = null) => new(this, options);

    /// <summary>Wraps this model as a Microsoft.Extensions.AI <c>IChatClient</c>; see <see cref="SputnikChatClient"/>.</summary>
    /// <param name="options">Model id, template, thinking and default sampling; defaults when null.</param>
    public SputnikChatClient AsChatClient(SputnikChatClientOptions? options = null) => new(this, options);

    /// <summary>
    /// Wraps this model as a Microsoft.Extensions.AI <c>IEmbeddingGenerator&lt;string, Embedding&lt;float&gt;&gt;</c>;
    /// see <see cref="SputnikEmbeddingGenerator"/>.
    /// </summary>
    /// <param name="modelId">The model id reported with each embedding; the model's name when null.</param>
    public SputnikEmbeddingGenerator AsEmbeddingGenerator(string? modelId = null) => new(this, modelId);

    /// <summary>Releases the file mapping. Do not dispose while a chat is generating.</summary>
    public void Dispose()
    {
        Model.Dispose();
        Gate.Dispose();
    }

    /// <summary>
    /// Runs a synchronous generation loop under the model lock, one step at a time on the thread pool, so the
    /// caller's thread is never blocked by the forward pass. Cancellation while waiting for the lock throws.
    /// </summary>
    internal async IAsyncEnumerable<T> RunExclusiveAsync<T>(Func<IEnumerable<T>> steps,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            using var e = steps().GetEnumerator(); // an iterator: nothing runs before the first MoveNext
            while (await Task.Run(e.MoveNext, CancellationToken.None).ConfigureAwait(false))
                yield return e.Current;
        }
        finally
        {
            Gate.Release();
        }
    }
}
