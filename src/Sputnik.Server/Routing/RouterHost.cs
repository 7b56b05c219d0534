using System.Net;
using System.Net.Http;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;

namespace Sputnik.Server.Routing;

/// <summary>
/// `sputnik route`: a reverse proxy in front of several Sputnik servers, built on YARP's forwarder. Each request's
/// body is held (so it can be sent again), a replica is picked by the policy, and the response streams back as the
/// replica writes it (SSE and NDJSON pass through chunk by chunk). A request that fails before anything reached the
/// client — the replica refused the connection, died before answering, or answered 503/429 — goes to another
/// replica; one cut mid-stream cannot be, and the client sees the connection end. Stopping drains: new requests get
/// 503 while those in flight finish.
/// </summary>
public sealed class RouterHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly RouterOptions _options;
    private readonly Replica[] _replicas;
    private readonly ReplicaPicker _picker;
    private readonly ReplicaMonitor _monitor;
    private readonly IHttpForwarder _forwarder;
    private readonly HttpMessageInvoker _client;
    private readonly ForwarderRequestConfig _requestConfig;
    private readonly Action<string>? _log;
    private volatile bool _draining;
    private int _inFlight;
    private long _requests, _retries, _unavailable;
    private readonly long[] _byReason = new long[Enum.GetValues<ReplicaPicker.Reason>().Length];

    private RouterHost(WebApplication app, RouterOptions options, Replica[] replicas, ReplicaMonitor monitor, HttpMessageInvoker client, Action<string>? log)
    {
        _app = app;
        _options = options;
        _replicas = replicas;
        _monitor = monitor;
        _client = client;
        _log = log;
        _picker = new ReplicaPicker(replicas, options.Policy, options.LoadFactor);
        _forwarder = app.Services.GetRequiredService<IHttpForwarder>();
        _requestConfig = new ForwarderRequestConfig { ActivityTimeout = options.ActivityTimeout, Version = HttpVersion.Version11, VersionPolicy = HttpVersionPolicy.RequestVersionOrLower };
    }

    /// <summary>Where the router listens.</summary>
    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>Checks every replica once, then starts listening.</summary>
    public static async Task<RouterHost> StartAsync(RouterOptions options, Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        var replicas = options.Replicas.Select(u => new Replica(u, options.IndexBlocksPerReplica)).ToArray();
        var handler = new SocketsHttpHandler
        {
            UseProxy = false, AllowAutoRedirect = false, AutomaticDecompression = DecompressionMethods.None, UseCookies = false,
            ConnectTimeout = TimeSpan.FromSeconds(5), ActivityHeadersPropagator = null,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
        };
        var client = new HttpMessageInvoker(handler);
        var monitor = new ReplicaMonitor(replicas, options, handler, log);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.Services.AddHttpForwarder();
        builder.WebHost.ConfigureKestrel(k => ServerHost.ConfigureListener(k, options.Host, options.Port, options.MaxBodyBytes));
        var app = builder.Build();
        var router = new RouterHost(app, options, replicas, monitor, client, log);
        app.MapGet("/health", router.HealthAsync);
        app.MapGet("/metrics", router.MetricsAsync);
        app.Map("/{**path}", router.ForwardAsync);
        try
        {
            await monitor.StartAsync(cancellationToken);
            await app.StartAsync(cancellationToken);
        }
        catch
        {
            await monitor.DisposeAsync();
            await app.DisposeAsync();
            client.Dispose();
            throw;
        }
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        router.BaseAddress = new Uri(address.Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal) + "/");
        return router;
    }

    /// <summary>Replicas in rotation now.</summary>
    public int HealthyReplicas => _replicas.Count(r => r.Healthy);

    private async Task ForwardAsync(HttpContext ctx)
    {
        Interlocked.Increment(ref _inFlight);
        Interlocked.Increment(ref _requests);
        try
        {
            if (_draining) throw new ApiException(503, "the router is shutting down; retry", code: "router_draining") { RetryAfterSeconds = 1 };
            byte[] body = await ReadBodyAsync(ctx);
            var prompt = _options.Policy == RoutingPolicy.Prefix
                ? PromptBlocks.From(ctx.Request.Path.Value ?? "/", ctx.Request.Headers[RouterOptions.ConversationHeader].FirstOrDefault(), body, _options.BlockChars, _options.MaxBlocks)
                : PromptBlocks.None;
            var tried = new List<Replica>(_replicas.Length);
            string? lastError = null;
            while (true)
            {
                var picked = _picker.Pick(prompt, tried);
                if (picked == null)
                {
                    Interlocked.Increment(ref _unavailable);
                    throw new ApiException(503, tried.Count == 0 ? "no replica is healthy; retry shortly" : $"every healthy replica failed this request (last: {lastError}); retry shortly",
                        code: "no_replica_available") { RetryAfterSeconds = 1 };
                }
                var (replica, why) = picked.Value;
                tried.Add(replica);
                Interlocked.Increment(ref _byReason[(int)why]);
                if (prompt.Blocks.Length > 0) replica.Index.Add(prompt.Blocks);
                ctx.Request.Body = new MemoryStream(body, writable: false);
                var transformer = new ReplicaTransformer(replica, canRetry: _replicas.Any(r => r.Healthy && !tried.Contains(r)));
                ForwarderError error;
                replica.Begin();
                try
                {
                    error = await _forwarder.SendAsync(ctx, replica.Prefix, _client, _requestConfig, transformer);
                }
                finally
                {
                    replica.End();
                }
                if (error == ForwarderError.None && transformer.RefusedStatus == null) return;
                if (ctx.RequestAborted.IsCancellationRequested || error is ForwarderError.RequestCanceled or ForwarderError.RequestBodyCanceled
                    or ForwarderError.RequestBodyClient or ForwarderError.ResponseBodyClient or ForwarderError.ResponseBodyCanceled)
                    return; // the client went away: nothing to retry for
                if (error != ForwarderError.None)
                {
                    lastError = $"{replica.Name}: {error}";
                    _monitor.ReportFailure(replica, $"{error}: {ctx.Features.Get<IForwarderErrorFeature>()?.Exception?.Message}");
                }
                else lastError = $"{replica.Name} answered {transformer.RefusedStatus}";
                // Cut mid-stream: YARP has already aborted the client's connection, which is all that can be done.
                if (ctx.Response.HasStarted) return;
                ctx.Response.Clear();
                ctx.Features.Set<IForwarderErrorFeature>(null);
                Interlocked.Increment(ref _retries);
            }
        }
        catch (ApiException ex)
        {
            await ErrorHandling.WriteAsync(ctx, ex);
        }
        catch (BadHttpRequestException ex)
        {
            await ErrorHandling.WriteAsync(ctx, ex.StatusCode == 413
                ? new ApiException(413, $"the request body is larger than the router forwards ({_options.MaxBodyBytes} bytes, --max-body)", code: "request_too_large")
                : new ApiException(ex.StatusCode, ex.Message));
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException && ctx.RequestAborted.IsCancellationRequested)
        {
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    /// <summary>The whole body, so a failed attempt can be sent again elsewhere; bounded by --max-body.</summary>
    private async Task<byte[]> ReadBodyAsync(HttpContext ctx)
    {
        if (ctx.Request.ContentLength > _options.MaxBodyBytes)
            throw new ApiException(413, $"the request body is {ctx.Request.ContentLength} bytes; the router forwards at most {_options.MaxBodyBytes} (--max-body)", code: "request_too_large");
        using var buffer = new MemoryStream();
        await ctx.Request.Body.CopyToAsync(buffer, ctx.RequestAborted); // Kestrel stops it at MaxRequestBodySize (413)
        return buffer.ToArray();
    }

    private Task HealthAsync(HttpContext ctx)
    {
        int up = HealthyReplicas;
        var sb = new StringBuilder();
        sb.Append("{\"status\":\"").Append(_draining ? "draining" : up > 0 ? "ok" : "no_replica").Append("\",\"replicas\":[");
        for (int i = 0; i < _replicas.Length; i++)
        {
            var r = _replicas[i];
            if (i > 0) sb.Append(',');
            sb.Append("{\"url\":\"").Append(System.Text.Json.JsonEncodedText.Encode(r.Prefix)).Append('"')
                .Append(",\"healthy\":").Append(r.Healthy ? "true" : "false")
                .Append(",\"in_flight\":").Append(r.InFlight)
                .Append(",\"waiting\":").Append(r.Load.Waiting.ToString(System.Globalization.CultureInfo.InvariantCulture))
                .Append(",\"running\":").Append(r.Load.Running.ToString(System.Globalization.CultureInfo.InvariantCulture)).Append('}');
        }
        sb.Append("]}");
        ctx.Response.StatusCode = _draining || up == 0 ? 503 : 200;
        ctx.Response.ContentType = "application/json";
        return ctx.Response.WriteAsync(sb.ToString(), ctx.RequestAborted);
    }

    private Task MetricsAsync(HttpContext ctx)
    {
        var sb = new StringBuilder();
        (string, double) Each(Replica r, double v) => (PrometheusText.Labels(("replica", r.Name)), v);
        PrometheusText.Append(sb, "sputnik_router_requests_total", "counter", "Requests received.", [("", Interlocked.Read(ref _requests))]);
        PrometheusText.Append(sb, "sputnik_router_retries_total", "counter", "Attempts sent again to another replica before anything reached the client.",
            [("", Interlocked.Read(ref _retries))]);
        PrometheusText.Append(sb, "sputnik_router_unavailable_total", "counter", "Requests answered 503 because no replica could take them.",
            [("", Interlocked.Read(ref _unavailable))]);
        PrometheusText.Append(sb, "sputnik_router_picks_total", "counter", "Attempts by how the replica was chosen.",
            Enum.GetValues<ReplicaPicker.Reason>().Select(r => (PrometheusText.Labels(("reason", r.ToString().ToLowerInvariant())), (double)Interlocked.Read(ref _byReason[(int)r]))));
        PrometheusText.Append(sb, "sputnik_router_attempts_total", "counter", "Attempts sent to each replica.", _replicas.Select(r => Each(r, r.Attempts)));
        PrometheusText.Append(sb, "sputnik_router_failures_total", "counter", "Attempts that could not be forwarded (passive failure detection).",
            _replicas.Select(r => Each(r, r.Failures)));
        PrometheusText.Append(sb, "sputnik_router_in_flight", "gauge", "Requests in flight to each replica.", _replicas.Select(r => Each(r, r.InFlight)));
        PrometheusText.Append(sb, "sputnik_router_replica_up", "gauge", "1 while a replica is in rotation.", _replicas.Select(r => Each(r, r.Healthy ? 1 : 0)));
        ctx.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
        return ctx.Response.WriteAsync(sb.ToString(), ctx.RequestAborted);
    }

    /// <summary>Drains: new requests get 503 (and /health 503, so a balancer in front stops sending), those in flight may finish.</summary>
    public async Task DrainAsync(TimeSpan timeout)
    {
        _draining = true;
        var end = DateTime.UtcNow + timeout;
        while (Volatile.Read(ref _inFlight) > 0 && DateTime.UtcNow < end) await Task.Delay(50);
    }

    /// <summary>Completes when the router stops.</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken) => _app.WaitForShutdownAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await DrainAsync(_options.DrainTimeout);
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
            await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
        await _monitor.DisposeAsync();
        _client.Dispose();
    }

    /// <summary>
    /// YARP's default header copying, plus: the client's Host goes to the replica (its DNS-rebinding and same-origin
    /// checks then judge the address the client used, and the web app works through the router); the response names
    /// the replica; a 503 or 429 is held back, body unsent, when another replica can still take the request.
    /// </summary>
    private sealed class ReplicaTransformer(Replica replica, bool canRetry) : HttpTransformer
    {
        public int? RefusedStatus { get; private set; }

        public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
        {
            await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
            proxyRequest.Headers.Host = httpContext.Request.Host.Value;
        }

        public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
        {
            if (proxyResponse != null && canRetry && proxyResponse.StatusCode is HttpStatusCode.ServiceUnavailable or HttpStatusCode.TooManyRequests)
            {
                RefusedStatus = (int)proxyResponse.StatusCode;
                return false;
            }
            bool copy = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
            httpContext.Response.Headers[RouterOptions.ReplicaHeader] = replica.Name;
            return copy;
        }
    }
}
