namespace Sputnik.Server;

/// <summary>Everything `sputnik serve` can be told. Defaults match the CLI's.</summary>
public sealed record ServerOptions
{
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0 picks a free port (tests).</summary>
    public int Port { get; init; } = 8080;
    public string ModelPath { get; init; } = "";
    /// <summary>Name the model is served under; defaults to the file name without .gguf.</summary>
    public string? ModelAlias { get; init; }
    /// <summary>A Jinja chat template to use instead of the model's own (llama.cpp's --chat-template-file).</summary>
    public string? ChatTemplate { get; init; }
    /// <summary>Sequences generated at once (slots, each with its own KV cache).</summary>
    public int Parallel { get; init; } = 1;
    /// <summary>Context per slot; 0 = the model's, capped at 4096.</summary>
    public int ContextLength { get; init; }
    /// <summary>Element type of the cached keys, and of the values unless <see cref="KvTypeV"/> is set (--cache-type-k).</summary>
    public Sputnik.Models.KvCacheType KvType { get; init; } = Sputnik.Models.KvCacheType.F16;
    /// <summary>Element type of the cached values (--cache-type-v); null = <see cref="KvType"/>.</summary>
    public Sputnik.Models.KvCacheType? KvTypeV { get; init; }
    /// <summary>
    /// llama.cpp's --context-shift: a generation that fills its slot's context drops the older half of the tokens after
    /// the system prompt and goes on (max_tokens is then not clamped to the room the prompt leaves); off, it ends
    /// with finish_reason "length".
    /// </summary>
    public bool ContextShift { get; init; }
    public int Threads { get; init; } = Environment.ProcessorCount;
    /// <summary>LoRA adapters applied to the (single) model, ids in order, at these global scales (--lora, --lora-scaled).</summary>
    public IReadOnlyList<LoraAdapterOptions> LoraAdapters { get; init; } = [];
    /// <summary>When set, every API route needs "Authorization: Bearer KEY".</summary>
    public string? ApiKey { get; init; }
    /// <summary>Requests allowed to wait for a slot; more get 429.</summary>
    public int MaxQueue { get; init; } = 64;
    /// <summary>
    /// RAM in MiB for prompt-cache snapshots beyond the slots' own KV (0 with no --cache-dir turns them off). Fractions
    /// are allowed: a small model's snapshots are small (the bundled model's are 640 bytes a token), so giving it the
    /// capacity in tokens that 512 MiB gives a 7B model takes a few MiB, to the byte.
    /// </summary>
    public double CacheRamMb { get; init; } = 512;
    /// <summary><see cref="CacheRamMb"/> in bytes (what the prompt cache is bounded by).</summary>
    internal long CacheRamBytes => (long)(CacheRamMb * 1024 * 1024);
    /// <summary>
    /// Prompt tokens a slot prefills per scheduler iteration; the other slots decode a token between chunks, so a long
    /// prompt does not stall their streams. 0 prefills a whole prompt at once.
    /// </summary>
    public int PrefillChunk { get; init; } = 256;
    /// <summary>Where prompt-cache snapshots persist across restarts.</summary>
    public string? CacheDir { get; init; }
    /// <summary>Disk for --cache-dir snapshots; the least recently used files are deleted above it.</summary>
    public int CacheDiskMb { get; init; } = 2048;
    /// <summary>Where chat history (SQLite) lives; null = ~/.sputnik.</summary>
    public string? DataDir { get; init; }
    /// <summary>Largest request body accepted (413 above); completion bodies are also bounded by what the context can hold.</summary>
    public long MaxBodyBytes { get; init; } = 8 * 1024 * 1024;
    /// <summary>
    /// Host header names the server answers (DNS-rebinding defence; the port is not compared). Null: the loopback
    /// names (localhost, 127.0.0.1, [::1]) when bound to a loopback address, any name otherwise. "*" allows any.
    /// </summary>
    public IReadOnlyList<string>? AllowedHosts { get; init; }
    /// <summary>Origins whose browser pages may call the API cross-site (CORS); empty: none, "*": any.</summary>
    public IReadOnlyList<string> CorsOrigins { get; init; } = [];
    /// <summary>How often a queued streaming request gets a ": keep-alive" comment.</summary>
    public TimeSpan KeepAliveInterval { get; init; } = TimeSpan.FromSeconds(5);
    public PriceTable Prices { get; init; } = PriceTable.DeepSeekDefault;
    /// <summary>Power drawn per busy CPU core, for the energy estimate (joules = CPU seconds × watts).</summary>
    public double WattsPerCore { get; init; } = 15;
    /// <summary>Test hook: a pause after every scheduler step, to make timing-dependent tests deterministic.</summary>
    public TimeSpan StepDelay { get; init; }
    /// <summary>
    /// Speculative decoding in every slot (--spec-type, --draft-max …); null for none. Its <see cref="Inference.SpeculationOptions.DraftModel"/>
    /// is left unset: the server loads <see cref="DraftModelPath"/> itself.
    /// </summary>
    public Inference.SpeculationOptions? Speculation { get; init; }
    /// <summary>The draft model of draft-simple speculation (-md), loaded with the served model's context and threads.</summary>
    public string? DraftModelPath { get; init; }
    /// <summary>
    /// Speculation backs off when more slots than this are generating at once (--spec-max-slots): the batched forward
    /// already reads the weights once for all of them, and a verification forward per slot would read them again.
    /// </summary>
    public int SpeculativeSlots { get; init; } = 1;
    /// <summary>Serve the chat web app and its /api/conversations store.</summary>
    public bool EnableWebApp { get; init; } = true;

    /// <summary>
    /// Serve many models from one process: <see cref="ModelPath"/> (when set), <see cref="ModelPaths"/>, every model in
    /// the hub cache (<see cref="Hub"/>) and <see cref="Aliases"/>, each loaded when a request first names it.
    /// Off, the one <see cref="ModelPath"/> answers every model name.
    /// </summary>
    public bool MultiModel { get; init; }

    /// <summary>More model files a multi-model server offers, each named by its file name without .gguf.</summary>
    public IReadOnlyList<string> ModelPaths { get; init; } = [];

    /// <summary>More names for served models (--alias NAME=REF): NAME → a served name, or a model file.</summary>
    public IReadOnlyDictionary<string, string> Aliases { get; init; } = new Dictionary<string, string>();

    /// <summary>How long a multi-model server keeps a model loaded after its last request (--keep-alive; negative: forever, zero: unload at once).</summary>
    public TimeSpan KeepAlive { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Bytes the loaded models of a multi-model server may take together (--max-memory): each counts its file and its
    /// slots' full KV cache; the least recently used idle model is unloaded to make room. 0: <see cref="DefaultMaxMemory"/>.
    /// </summary>
    public long MaxMemoryBytes { get; init; }

    /// <summary>Where a multi-model server finds cached models and pulls new ones (/api/pull); null: the environment's (HF_HUB_CACHE, HF_ENDPOINT…).</summary>
    internal Sputnik.Hub.HubSettings? Hub { get; init; }

    /// <summary>
    /// The default memory budget: the machine's RAM (or the container's limit) less a quarter, at least 1 GiB, for the
    /// OS, this process's own memory and other programs. Model weights are memory-mapped, so they live in the OS page
    /// cache: counting them here is what keeps them resident instead of re-read from disk.
    /// </summary>
    public static long DefaultMaxMemory()
    {
        long total = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        return Math.Max(total - Math.Max(total / 4, 1L << 30), 256L << 20);
    }

    /// <summary>A size such as 8G, 512M, 16GiB, 1.5T or a number of bytes (--max-memory); null when it is not one.</summary>
    public static long? ParseSize(string text)
    {
        string t = text.Trim();
        int end = t.Length;
        while (end > 0 && char.IsAsciiLetter(t[end - 1])) end--;
        string unit = t[end..].ToUpperInvariant();
        long scale = unit switch
        {
            "" or "B" => 1,
            "K" or "KB" or "KIB" => 1L << 10,
            "M" or "MB" or "MIB" => 1L << 20,
            "G" or "GB" or "GIB" => 1L << 30,
            "T" or "TB" or "TIB" => 1L << 40,
            _ => 0,
        };
        if (scale == 0 || !double.TryParse(t[..end].Trim(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double value)
            || !double.IsFinite(value) || value < 0 || value * scale > long.MaxValue / 2)
            return null;
        return (long)(value * scale);
    }

    public void Validate()
    {
        if (!MultiModel && string.IsNullOrWhiteSpace(ModelPath)) throw new ArgumentException("a model is required (-m MODEL)");
        if (MultiModel && DraftModelPath != null) throw new ArgumentException("a draft model (-md) applies to one model: serve that model alone (-m MODEL)");
        if (SpeculativeSlots < 0) throw new ArgumentException($"--spec-max-slots {SpeculativeSlots} must not be negative");
        if (DraftModelPath != null && Speculation is { Type: not (Inference.SpeculationType.None or Inference.SpeculationType.DraftSimple) } s)
            throw new ArgumentException($"-md (a draft model) and --spec-type {Inference.SpeculationOptions.Name(s.Type)}: choose one");
        if (DraftModelPath == null && Speculation is { Type: Inference.SpeculationType.DraftSimple })
            throw new ArgumentException("--spec-type draft-simple needs a draft model: -md FILE");
        if (Speculation != null) (Speculation with { Type = Inference.SpeculationType.None, DraftModel = null }).Validate(); // the limits; the draft is loaded later
        if (MultiModel && ChatTemplate != null) throw new ArgumentException("--chat-template-file applies to one model: serve that model alone (-m MODEL)");
        if (MaxMemoryBytes < 0) throw new ArgumentException($"--max-memory {MaxMemoryBytes} must not be negative");
        foreach (var (name, target) in Aliases)
            if (string.IsNullOrWhiteSpace(name) || string.IsNullOrWhiteSpace(target) || name.Any(char.IsControl))
                throw new ArgumentException($"--alias '{name}={target}' must be NAME=MODEL with both parts given");
        if (Port is < 0 or > 65535) throw new ArgumentException($"--port {Port} is not a TCP port");
        if (Parallel is < 1 or > 256) throw new ArgumentException($"--parallel {Parallel} must be between 1 and 256");
        if (ContextLength < 0) throw new ArgumentException($"--ctx {ContextLength} must not be negative");
        if (Threads < 1) throw new ArgumentException($"-t {Threads} must be at least 1");
        if (MaxQueue < 0) throw new ArgumentException($"--max-queue {MaxQueue} must not be negative");
        if (PrefillChunk < 0) throw new ArgumentException($"--prefill-chunk {PrefillChunk} must not be negative");
        if (!(CacheRamMb >= 0) || !double.IsFinite(CacheRamMb)) throw new ArgumentException($"--cache-ram {CacheRamMb} must be a number of MB, 0 or more");
        if (CacheDiskMb < 0) throw new ArgumentException($"--cache-disk-mb {CacheDiskMb} must not be negative");
        if (MaxBodyBytes <= 0) throw new ArgumentException("--max-body must be at least 1 (MB)");
        if (AllowedHosts is { } hosts && hosts.Any(h => string.IsNullOrWhiteSpace(h) || h.Contains('/')))
            throw new ArgumentException("--allowed-hosts takes host names separated by commas (e.g. localhost,my-box.lan), or *");
        foreach (string origin in CorsOrigins)
            if (origin != "*" && !(Uri.TryCreate(origin, UriKind.Absolute, out var u) && u.Scheme is "http" or "https" && u.PathAndQuery == "/"))
                throw new ArgumentException($"--cors-origin '{origin}' must be an origin like https://example.com (scheme, host and optional port), or *");
        if (WattsPerCore < 0) throw new ArgumentException($"--watts {WattsPerCore} must not be negative");
        if (ApiKey is { Length: 0 }) throw new ArgumentException("--api-key must not be empty");
    }
}

/// <summary>US dollars per million tokens.</summary>
public sealed record PriceTable(double CacheHitInput, double CacheMissInput, double Output)
{
    /// <summary>DeepSeek's published API prices (deepseek-chat / deepseek-reasoner, V3.2, per 1M tokens).</summary>
    public static PriceTable DeepSeekDefault { get; } = new(0.028, 0.28, 0.42);

    public double Cost(int hitTokens, int missTokens, int outputTokens) =>
        (hitTokens * CacheHitInput + missTokens * CacheMissInput + outputTokens * Output) / 1_000_000.0;
}
