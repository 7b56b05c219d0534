using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Sputnik.Server.Api;
using Sputnik.Server.Storage;

namespace Sputnik.Server;

/// <summary>
/// The HTTP server: Kestrel on --host:--port with the OpenAI-compatible API, the metrics and the web app.
/// Start it in-process with port 0 for tests; <see cref="BaseAddress"/> says where it listens.
/// </summary>
public sealed class ServerHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly IModelProvider _models;
    private readonly ModelHost? _host;
    private readonly ConversationStore? _store;

    private ServerHost(WebApplication app, IModelProvider models, ModelHost? host, ConversationStore? store, Uri baseAddress, ServerOptions options)
    {
        _app = app;
        _models = models;
        _host = host;
        _store = store;
        BaseAddress = baseAddress;
        Options = options;
    }

    public Uri BaseAddress { get; }

    /// <summary>A single-model server's one model.</summary>
    internal ModelHost Model => _host ?? throw new InvalidOperationException("a multi-model server has no single model; see Models");

    /// <summary>Where requests get their models (the one model, or the multi-model registry).</summary>
    internal IModelProvider Models => _models;

    public ServerOptions Options { get; }

    /// <summary>
    /// Loads the model (unless given one) and starts listening; with <see cref="ServerOptions.MultiModel"/>, lists
    /// the models it may serve and loads none until a request names one.
    /// </summary>
    /// <summary>
    /// Kestrel for `serve` and `route`: the body limit, no Server header, header limits above RequestGuards' (which answer
    /// with an error body; Kestrel's own answers have none), and one listening address.
    /// </summary>
    internal static void ConfigureListener(Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions k, string host, int port, long maxBodyBytes)
    {
        k.Limits.MaxRequestBodySize = maxBodyBytes;
        k.AddServerHeader = false;
        k.Limits.MaxRequestLineSize = RequestGuards.KestrelRequestLineLimit;
        k.Limits.MaxRequestHeadersTotalSize = RequestGuards.KestrelHeadersLimit;
        k.Limits.MaxRequestHeaderCount = RequestGuards.KestrelHeaderCountLimit;
        var ip = host == "localhost" ? IPAddress.Loopback
            : IPAddress.TryParse(host, out var parsed) ? parsed
            : throw new ArgumentException($"--host '{host}' is not an IP address: use localhost, 127.0.0.1, 0.0.0.0 (every interface) or one of this machine's addresses");
        k.Listen(ip, port);
    }

    public static async Task<ServerHost> StartAsync(ServerOptions options, SputnikModel? model = null, Action<LogLevel, string>? log = null,
        CancellationToken cancellationToken = default)
    {
        options.Validate();
        var metrics = new ServerMetrics();
        Action<string>? warn = log == null ? null : message => log(LogLevel.Warning, message);
        IModelProvider? models = null;
        ModelHost? host = null;
        ConversationStore? store = null;
        bool owns = model == null;
        try
        {
            if (options.MultiModel)
            {
                if (model != null) throw new ArgumentException("a multi-model server loads its own models");
                models = new ModelRegistry(options, metrics, warn);
            }
            else
            {
                model ??= await SputnikModel.LoadAsync(options.ModelPath, new ModelOptions { Threads = options.Threads, ContextLength = options.ContextLength, KvType = options.KvType, KvTypeV = options.KvTypeV, LoraAdapters = options.LoraAdapters }, cancellationToken);
                host = new ModelHost(model, options, metrics, owns, warn);
                models = new SingleModelProvider(host);
            }
            if (options.EnableWebApp) store = ConversationStore.Open(options.DataDir ?? DefaultDataDir());
            var app = Build(options, models, host, metrics, store, log);
            await app.StartAsync(cancellationToken);
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            return new ServerHost(app, models, host, store, new Uri(address.Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal) + "/"), options);
        }
        catch
        {
            store?.Dispose();
            models?.Dispose();
            if (host != null) host.Dispose();
            else if (owns) model?.Dispose();
            throw;
        }
    }

    public static string DefaultDataDir() =>
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".sputnik");

    private static WebApplication Build(ServerOptions options, IModelProvider models, ModelHost? host, ServerMetrics metrics, ConversationStore? store,
        Action<LogLevel, string>? log)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => ConfigureListener(k, options.Host, options.Port, options.MaxBodyBytes));
        var app = builder.Build();
        app.Use(StaticFiles.NoSniff);
        app.Use(async (ctx, next) => await ErrorHandling.InvokeAsync(ctx, next, metrics, log));
        var guards = new RequestGuards(options);
        app.Use(guards.InvokeAsync);
        if (options.ApiKey != null) app.Use((ctx, next) => ApiKeyCheck.InvokeAsync(ctx, next, options.ApiKey));

        // On a multi-model server the body's "model" picks the model; on a single-model server any name gets the one.
        app.MapPost("/v1/chat/completions", ModelRouting.Route(models, host, ChatEndpoint.Handle));
        app.MapPost("/chat/completions", ModelRouting.Route(models, host, ChatEndpoint.Handle));
        app.MapPost("/v1/completions", ModelRouting.Route(models, host, CompletionEndpoint.Handle));
        app.MapPost("/completions", ModelRouting.Route(models, host, CompletionEndpoint.Handle));
        app.MapPost("/v1/embeddings", ModelRouting.Route(models, host, EmbeddingEndpoints.OpenAi));
        app.MapPost("/embeddings", ModelRouting.Route(models, host, EmbeddingEndpoints.OpenAi));
        InfoEndpoints.Map(app, models, host, metrics, options.Parallel);
        if (host != null) LoraEndpoints.Map(app, host);
        Api.Ollama.OllamaEndpoints.Map(app, models, webApp: store != null);
        Api.Ollama.OllamaModelStore.Map(app, models as ModelRegistry);
        if (store != null)
        {
            StaticFiles.Map(app);
            ConversationEndpoints.Map(app, store);
        }
        // No fallback route: an unknown path is routing's 404, a known one with another method its 405 with Allow,
        // and ErrorHandling gives both an error body.
        return app;
    }

    /// <summary>Completes when the server stops (Ctrl+C in the CLI cancels the token).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken) => _app.WaitForShutdownAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
            await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
        _models.Dispose();
        _host?.Dispose();
        _store?.Dispose();
    }
}
