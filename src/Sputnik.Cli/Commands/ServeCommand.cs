using System.CommandLine;
using Sputnik.Server;

namespace Sputnik.Cli.Commands;

/// <summary>`sputnik serve -m MODEL …` — the OpenAI/DeepSeek-compatible API server and chat web app.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var d = new ServerOptions();
        var model = new Option<string[]>("--model", "-m")
        {
            Description = "GGUF model file or hub reference (owner/repo[:QUANT]); once: serve that model under any name; several, or none: " +
                "serve those, the bundled sputnik-r1-tiny and every model in the Hugging Face cache, each loaded on first use",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var threads = CliOptions.Threads();
        var host = new Option<string>("--host") { Description = "Address to listen on", DefaultValueFactory = _ => d.Host };
        var port = new Option<int>("--port") { Description = "TCP port (0 picks a free one)", DefaultValueFactory = _ => d.Port };
        var parallel = new Option<int>("--parallel", "-np") { Description = "Sequences generated at once (slots)", DefaultValueFactory = _ => d.Parallel };
        var ctx = new Option<int>("--ctx", "-c") { Description = "Context length per slot (0 = model's, capped at 4096)" };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on the API" };
        var maxQueue = new Option<int>("--max-queue") { Description = "Requests allowed to wait for a slot (more get 429)", DefaultValueFactory = _ => d.MaxQueue };
        var cacheRam = new Option<double>("--cache-ram") { Description = "Prompt-cache RAM in MB beyond the slots' KV (LRU; fractions allowed, e.g. 7.5)", DefaultValueFactory = _ => d.CacheRamMb }.AtLeast(0);
        var prefillChunk = new Option<int>("--prefill-chunk") { Description = "Prompt tokens prefilled per step, so other slots keep streaming (0 = whole prompt)", DefaultValueFactory = _ => d.PrefillChunk };
        var cacheDir = new Option<string?>("--cache-dir") { Description = "Persist prompt-cache KV here; reused after a restart of the same model file" };
        var cacheDisk = new Option<int>("--cache-disk-mb") { Description = "Disk for --cache-dir snapshots in MB; least recently used files are deleted above it", DefaultValueFactory = _ => d.CacheDiskMb };
        var maxBody = new Option<int>("--max-body") { Description = "Largest request body in MB (completions also stop at what the context can hold)", DefaultValueFactory = _ => (int)(d.MaxBodyBytes >> 20) };
        var allowedHosts = new Option<string?>("--allowed-hosts") { Description = "Host names the server answers to, comma-separated, or * (default: loopback names when bound to loopback, any otherwise)" };
        var cors = new Option<string?>("--cors-origin") { Description = "Web origins allowed to call the API from a browser (CORS), comma-separated, or * (default: none)" };
        var dataDir = new Option<string?>("--data-dir") { Description = "Chat history folder (default ~/.sputnik)" };
        var alias = new Option<string[]>("--alias")
        {
            Description = "NAME: the one model's name in the API (default: file name without .gguf); NAME=MODEL (repeatable): another name for a served model, file or hub reference",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var keepAlive = new Option<string?>("--keep-alive")
        {
            Description = "How long a model stays loaded after its last request when serving several: 5m, 1h, 30s, seconds, 0 (unload at once), -1 (forever) (default 5m)",
        };
        var maxMemory = new Option<string?>("--max-memory")
        {
            Description = "Memory the loaded models may take together (file + KV cache), e.g. 8G; the least recently used idle one is unloaded to make room (default: RAM less a quarter)",
        };
        var watts = new Option<double>("--watts") { Description = "Watts per busy core for the energy estimate", DefaultValueFactory = _ => d.WattsPerCore };
        var priceHit = new Option<double>("--price-cache-hit") { Description = "USD per 1M cached input tokens", DefaultValueFactory = _ => d.Prices.CacheHitInput };
        var priceMiss = new Option<double>("--price-cache-miss") { Description = "USD per 1M uncached input tokens", DefaultValueFactory = _ => d.Prices.CacheMissInput };
        var priceOut = new Option<double>("--price-output") { Description = "USD per 1M output tokens", DefaultValueFactory = _ => d.Prices.Output };
        var template = new Option<string?>("--chat-template-file") { Description = "Jinja chat template to use instead of the model's" };
        var noWeb = new Option<bool>("--no-webui") { Description = "Serve the API only (no chat app, no history store)" };
        var ctk = CliOptions.CacheTypeK();
        var ctv = CliOptions.CacheTypeV();
        var shift = CliOptions.ContextShift();
        var specSlots = new Option<int>("--spec-max-slots")
        {
            Description = "Speculative decoding runs while at most this many slots generate; more decode in one batch (0 = never)",
            DefaultValueFactory = _ => d.SpeculativeSlots,
        }.AtLeast(0);
        var cmd = new Command("serve", "Serve the model over an OpenAI/DeepSeek-compatible HTTP API with a chat web app")
        {
            model, threads, host, port, parallel, ctx, apiKey, maxQueue, prefillChunk, cacheRam, cacheDir, cacheDisk, maxBody, allowedHosts, cors, dataDir, alias,
            keepAlive, maxMemory,
            watts, priceHit, priceMiss, priceOut, template, noWeb, ctk, ctv, shift, specSlots,
        };
        var speculation = new SpeculationFlags();
        speculation.AddTo(cmd);
        var lora = new LoraFlags();
        lora.AddTo(cmd);
        cmd.SetAction(async (r, ct) =>
        {
            var models = Models(r.GetValue(model) ?? [], r.GetValue(alias) ?? [], r.GetValue(keepAlive), r.GetValue(maxMemory));
            var spec = speculation.ReadSettings(r, out string? draftPath);
            var adapters = lora.Read(r);
            if (adapters.Count > 0 && models.MultiModel) throw new ArgumentException("--lora applies to a single model: serve one -m with it");
            var options = models with
            {
                Threads = r.GetValue(threads), Host = r.GetValue(host)!, Port = r.GetValue(port),
                Parallel = r.GetValue(parallel), ContextLength = r.GetValue(ctx), ApiKey = r.GetValue(apiKey), MaxQueue = r.GetValue(maxQueue), PrefillChunk = r.GetValue(prefillChunk),
                CacheRamMb = r.GetValue(cacheRam), CacheDir = r.GetValue(cacheDir), CacheDiskMb = r.GetValue(cacheDisk),
                MaxBodyBytes = (long)r.GetValue(maxBody) << 20, AllowedHosts = List(r.GetValue(allowedHosts)), CorsOrigins = List(r.GetValue(cors)) ?? [],
                DataDir = r.GetValue(dataDir),
                WattsPerCore = r.GetValue(watts), Prices = new PriceTable(r.GetValue(priceHit), r.GetValue(priceMiss), r.GetValue(priceOut)),
                EnableWebApp = !r.GetValue(noWeb),
                KvType = r.GetValue(ctk), KvTypeV = r.GetValue(ctv), ContextShift = r.GetValue(shift), LoraAdapters = adapters,
                ChatTemplate = r.GetValue(template) is { } tf ? File.ReadAllText(tf) : null,
                Speculation = spec, DraftModelPath = draftPath != null ? CliOptions.ResolveModel(draftPath) : null, SpeculativeSlots = r.GetValue(specSlots),
            };
            await using var server = await ServerHost.StartAsync(options,
                log: (level, msg) => Console.Error.WriteLine($"{level.ToString().ToLowerInvariant()}: {msg}"), cancellationToken: ct);
            string what;
            if (options.MultiModel)
            {
                var available = server.Models.Available;
                what = $"{available.Count} model(s) on demand ({string.Join(", ", available.Take(4).Select(m => m.Id))}{(available.Count > 4 ? ", …" : "")}; " +
                    $"keep-alive {(options.KeepAlive < TimeSpan.Zero ? "forever" : options.KeepAlive.ToString())}, max memory {Sputnik.Hub.ModelHub.Size(((ModelRegistry)server.Models).Budget)})";
            }
            else
            {
                var m = server.Model;
                what = $"'{m.Id}' ({m.Model.Model.Config.Architecture}, ctx {m.Model.ContextLength}, {options.Parallel} slot(s))";
            }
            Console.Error.WriteLine($"sputnik: serving {what} " +
                $"at {server.BaseAddress} — API at {server.BaseAddress}v1{(options.EnableWebApp ? ", chat app at " + server.BaseAddress : "")}; Ctrl+C stops");
            try
            {
                await server.WaitForShutdownAsync(ct);
            }
            catch (OperationCanceledException) { }
            return 0;
        });
        return cmd;
    }

    /// <summary>
    /// Which models, from -m, --alias, --keep-alive and --max-memory: one -m (and no NAME=MODEL alias) serves that
    /// model under any name; otherwise the given models, the bundled one and the hub cache, each on demand.
    /// </summary>
    private static ServerOptions Models(string[] given, string[] aliases, string? keepAlive, string? maxMemory)
    {
        var mappings = new Dictionary<string, string>(StringComparer.Ordinal);
        string? name = null;
        foreach (string a in aliases)
        {
            int eq = a.IndexOf('=');
            if (eq < 0)
            {
                if (name != null) throw new ArgumentException($"--alias {a}: the one model already has the name '{name}'; use --alias NAME=MODEL for more names");
                name = a;
                continue;
            }
            string target = a[(eq + 1)..].Trim();
            // A hub reference is pulled now (as -m would be); a served name (sputnik-r1-tiny) or a file is used as it is.
            mappings[a[..eq].Trim()] = Sputnik.Hub.ModelReference.TryParse(target, out _) ? HubCli.Resolve(target) : target;
        }
        TimeSpan? keep = keepAlive == null ? null : Server.Api.Ollama.OllamaReader.ParseDuration(keepAlive)
            ?? throw new ArgumentException($"--keep-alive '{keepAlive}' is not a duration; use 5m, 1h, 30s, a number of seconds, 0 or -1");
        long memory = maxMemory == null ? 0 : ServerOptions.ParseSize(maxMemory) is { } bytes and > 0 ? bytes
            : throw new ArgumentException($"--max-memory '{maxMemory}' is not a size; use e.g. 8G, 512M or a number of bytes");
        bool multi = given.Length != 1 || mappings.Count > 0;
        if (!multi)
        {
            if (keep != null || memory != 0) throw new ArgumentException("--keep-alive and --max-memory apply when serving several models (no -m, or several)");
            return new ServerOptions { ModelPath = CliOptions.ResolveModel(given[0]), ModelAlias = name };
        }
        if (name != null) throw new ArgumentException($"--alias {name}: with several models give each name as --alias NAME=MODEL");
        var paths = given.Select(g => CliOptions.ResolveModel(g)).ToList();
        if (DefaultModel.Path() is { } bundled && !paths.Any(p => Path.GetFullPath(p) == Path.GetFullPath(bundled))) paths.Insert(0, bundled);
        return new ServerOptions
        {
            MultiModel = true, ModelPaths = paths, Aliases = mappings, KeepAlive = keep ?? new ServerOptions().KeepAlive, MaxMemoryBytes = memory,
            Hub = Sputnik.Hub.HubSettings.FromEnvironment(HubCli.Token),
        };
    }

    private static string[]? List(string? commaSeparated) =>
        commaSeparated?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
