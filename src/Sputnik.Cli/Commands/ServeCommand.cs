using System.CommandLine;
using Sputnik.Server;

namespace Sputnik.Cli.Commands;

/// <summary>`sputnik serve -m MODEL …` — the OpenAI/DeepSeek-compatible API server and chat web app.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var d = new ServerOptions();
        var model = CliOptions.ModelOrDefault();
        var threads = CliOptions.Threads();
        var host = new Option<string>("--host") { Description = "Address to listen on", DefaultValueFactory = _ => d.Host };
        var port = new Option<int>("--port") { Description = "TCP port (0 picks a free one)", DefaultValueFactory = _ => d.Port };
        var parallel = new Option<int>("--parallel", "-np") { Description = "Sequences generated at once (slots)", DefaultValueFactory = _ => d.Parallel };
        var ctx = new Option<int>("--ctx", "-c") { Description = "Context length per slot (0 = model's, capped at 4096)" };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on the API" };
        var maxQueue = new Option<int>("--max-queue") { Description = "Requests allowed to wait for a slot (more get 429)", DefaultValueFactory = _ => d.MaxQueue };
        var cacheRam = new Option<int>("--cache-ram") { Description = "Prompt-cache RAM in MB beyond the slots' KV (LRU)", DefaultValueFactory = _ => d.CacheRamMb };
        var prefillChunk = new Option<int>("--prefill-chunk") { Description = "Prompt tokens prefilled per step, so other slots keep streaming (0 = whole prompt)", DefaultValueFactory = _ => d.PrefillChunk };
        var cacheDir = new Option<string?>("--cache-dir") { Description = "Persist prompt-cache KV here; reused after a restart of the same model file" };
        var cacheDisk = new Option<int>("--cache-disk-mb") { Description = "Disk for --cache-dir snapshots in MB; least recently used files are deleted above it", DefaultValueFactory = _ => d.CacheDiskMb };
        var maxBody = new Option<int>("--max-body") { Description = "Largest request body in MB (completions also stop at what the context can hold)", DefaultValueFactory = _ => (int)(d.MaxBodyBytes >> 20) };
        var allowedHosts = new Option<string?>("--allowed-hosts") { Description = "Host names the server answers to, comma-separated, or * (default: loopback names when bound to loopback, any otherwise)" };
        var cors = new Option<string?>("--cors-origin") { Description = "Web origins allowed to call the API from a browser (CORS), comma-separated, or * (default: none)" };
        var dataDir = new Option<string?>("--data-dir") { Description = "Chat history folder (default ~/.sputnik)" };
        var alias = new Option<string?>("--alias") { Description = "Model name in the API (default: file name without .gguf)" };
        var watts = new Option<double>("--watts") { Description = "Watts per busy core for the energy estimate", DefaultValueFactory = _ => d.WattsPerCore };
        var priceHit = new Option<double>("--price-cache-hit") { Description = "USD per 1M cached input tokens", DefaultValueFactory = _ => d.Prices.CacheHitInput };
        var priceMiss = new Option<double>("--price-cache-miss") { Description = "USD per 1M uncached input tokens", DefaultValueFactory = _ => d.Prices.CacheMissInput };
        var priceOut = new Option<double>("--price-output") { Description = "USD per 1M output tokens", DefaultValueFactory = _ => d.Prices.Output };
        var template = new Option<string?>("--chat-template-file") { Description = "Jinja chat template to use instead of the model's" };
        var noWeb = new Option<bool>("--no-webui") { Description = "Serve the API only (no chat app, no history store)" };
        var ctk = CliOptions.CacheTypeK();
        var ctv = CliOptions.CacheTypeV();
        var shift = CliOptions.ContextShift();
        var cmd = new Command("serve", "Serve the model over an OpenAI/DeepSeek-compatible HTTP API with a chat web app")
        {
            model, threads, host, port, parallel, ctx, apiKey, maxQueue, prefillChunk, cacheRam, cacheDir, cacheDisk, maxBody, allowedHosts, cors, dataDir, alias,
            watts, priceHit, priceMiss, priceOut, template, noWeb, ctk, ctv, shift,
        };
        cmd.SetAction(async (r, ct) =>
        {
            var options = new ServerOptions
            {
                ModelPath = CliOptions.ResolveModel(r.GetValue(model)), Threads = r.GetValue(threads), Host = r.GetValue(host)!, Port = r.GetValue(port),
                Parallel = r.GetValue(parallel), ContextLength = r.GetValue(ctx), ApiKey = r.GetValue(apiKey), MaxQueue = r.GetValue(maxQueue), PrefillChunk = r.GetValue(prefillChunk),
                CacheRamMb = r.GetValue(cacheRam), CacheDir = r.GetValue(cacheDir), CacheDiskMb = r.GetValue(cacheDisk),
                MaxBodyBytes = (long)r.GetValue(maxBody) << 20, AllowedHosts = List(r.GetValue(allowedHosts)), CorsOrigins = List(r.GetValue(cors)) ?? [],
                DataDir = r.GetValue(dataDir), ModelAlias = r.GetValue(alias),
                WattsPerCore = r.GetValue(watts), Prices = new PriceTable(r.GetValue(priceHit), r.GetValue(priceMiss), r.GetValue(priceOut)),
                EnableWebApp = !r.GetValue(noWeb),
                KvType = r.GetValue(ctk), KvTypeV = r.GetValue(ctv), ContextShift = r.GetValue(shift),
                ChatTemplate = r.GetValue(template) is { } tf ? File.ReadAllText(tf) : null,
            };
            await using var server = await ServerHost.StartAsync(options,
                log: (level, msg) => Console.Error.WriteLine($"{level.ToString().ToLowerInvariant()}: {msg}"), cancellationToken: ct);
            var m = server.Model;
            Console.Error.WriteLine($"sputnik: serving '{m.Id}' ({m.Model.Model.Config.Architecture}, ctx {m.Model.ContextLength}, {options.Parallel} slot(s)) " +
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

    private static string[]? List(string? commaSeparated) =>
        commaSeparated?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
