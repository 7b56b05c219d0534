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
    private readonly ModelHost _host;
    private readonly ConversationStore? _store;

    private ServerHost(WebApplication app, ModelHost host, ConversationStore? store, Uri baseAddress)
    {
        _app = app;
        _host = host;
        _store = store;
        BaseAddress = baseAddress;
    }

    public Uri BaseAddress { get; }
    internal ModelHost Model => _host;
    public ServerOptions Options => _host.Options;

    /// <summary>Loads the model (unless given one) and starts listening.</summary>
    public static async Task<ServerHost> StartAsync(ServerOptions options, SputnikModel? model = null, Action<LogLevel, string>? log = null,
        CancellationToken cancellationToken = default)
    {
        options.Validate();
        bool owns = model == null;
        model ??= await SputnikModel.LoadAsync(options.ModelPath, new ModelOptions { Threads = options.Threads, ContextLength = options.ContextLength, KvType = options.KvType, KvTypeV = options.KvTypeV }, cancellationToken);
        var metrics = new ServerMetrics();
        ModelHost? host = null;
        ConversationStore? store = null;
        try
        {
            host = new ModelHost(model, options, metrics, owns, log == null ? null : message => log(LogLevel.Warning, message));
            if (options.EnableWebApp) store = ConversationStore.Open(options.DataDir ?? DefaultDataDir());
            var app = Build(options, host, store, log);
            await app.StartAsync(cancellationToken);
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            return new ServerHost(app, host, store, new Uri(address.Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal) + "/"));
        }
        catch
        {
            store?.Dispose();
            if (host != null) host.Dispose();
            else if (owns) model.Dispose();
            throw;
        }
    }

    public static string DefaultDataDir() =>
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".sputnik");

    private static WebApplication Build(ServerOptions options, ModelHost host, ConversationStore? store, Action<LogLevel, string>? log)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = options.MaxBodyBytes;
            k.AddServerHeader = false;
            // Above RequestGuards' limits, which answer with an error body; Kestrel's own answers have none.
            k.Limits.MaxRequestLineSize = RequestGuards.KestrelRequestLineLimit;
            k.Limits.MaxRequestHeadersTotalSize = RequestGuards.KestrelHeadersLimit;
            k.Limits.MaxRequestHeaderCount = RequestGuards.KestrelHeaderCountLimit;
            var ip = options.Host == "localhost" ? IPAddress.Loopback : IPAddress.Parse(options.Host);
            k.Listen(ip, options.Port);
        });
        var app = builder.Build();
        app.Use(StaticFiles.NoSniff);
        app.Use(async (ctx, next) => await ErrorHandling.InvokeAsync(ctx, next, host.Metrics, log));
        var guards = new RequestGuards(options);
        app.Use(guards.InvokeAsync);
        if (options.ApiKey != null) app.Use((ctx, next) => ApiKeyCheck.InvokeAsync(ctx, next, options.ApiKey));

        app.MapPost("/v1/chat/completions", (HttpContext ctx) => ChatEndpoint.Handle(ctx, host));
        app.MapPost("/chat/completions", (HttpContext ctx) => ChatEndpoint.Handle(ctx, host));
        app.MapPost("/v1/completions", (HttpContext ctx) => CompletionEndpoint.Handle(ctx, host));
        app.MapPost("/completions", (HttpContext ctx) => CompletionEndpoint.Handle(ctx, host));
        app.MapPost("/v1/embeddings", (HttpContext ctx) => EmbeddingEndpoints.OpenAi(ctx, host));
        app.MapPost("/embeddings", (HttpContext ctx) => EmbeddingEndpoints.OpenAi(ctx, host));
        InfoEndpoints.Map(app, host);
        Api.Ollama.OllamaEndpoints.Map(app, new SingleModelProvider(host), webApp: store != null);
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
        _host.Dispose();
        _store?.Dispose();
    }
}
