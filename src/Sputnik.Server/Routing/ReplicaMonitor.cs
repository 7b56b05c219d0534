using System.Net.Http;

namespace Sputnik.Server.Routing;

/// <summary>
/// Active health checks: every <see cref="RouterOptions.HealthInterval"/> each replica's GET /health must answer 200
/// within <see cref="RouterOptions.HealthTimeout"/>, and its /metrics gives the load that least-loaded routing
/// reads. A replica that fails is taken out of rotation until a check passes again; passive detection (a request
/// that could not reach it) takes it out at once through <see cref="ReportFailure"/>.
/// </summary>
internal sealed class ReplicaMonitor : IAsyncDisposable
{
    private readonly IReadOnlyList<Replica> _replicas;
    private readonly RouterOptions _options;
    private readonly HttpClient _client;
    private readonly Action<string>? _log;
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;

    public ReplicaMonitor(IReadOnlyList<Replica> replicas, RouterOptions options, HttpMessageHandler handler, Action<string>? log)
    {
        _replicas = replicas;
        _options = options;
        _log = log;
        _client = new HttpClient(handler, disposeHandler: false) { Timeout = options.HealthTimeout };
    }

    /// <summary>Checks every replica once (so the router starts knowing which are up), then keeps checking in the background.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await CheckAllAsync(cancellationToken);
        _loop = Task.Run(LoopAsync, CancellationToken.None);
    }

    private async Task LoopAsync()
    {
        using var timer = new PeriodicTimer(_options.HealthInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token)) await CheckAllAsync(_stop.Token);
        }
        catch (OperationCanceledException) { }
    }

    private Task CheckAllAsync(CancellationToken ct) => Task.WhenAll(_replicas.Select(r => CheckAsync(r, ct)));

    private async Task CheckAsync(Replica replica, CancellationToken ct)
    {
        string? error;
        LoadReading? load = null;
        try
        {
            using var health = await _client.GetAsync(replica.Prefix + "health", ct);
            error = health.IsSuccessStatusCode ? null : $"/health answered {(int)health.StatusCode}";
            if (error == null)
            {
                string text = await _client.GetStringAsync(replica.Prefix + "metrics", ct);
                var samples = PrometheusText.Parse(text);
                load = new LoadReading(PrometheusText.Sum(samples, "vllm:num_requests_waiting"), PrometheusText.Sum(samples, "vllm:num_requests_running"),
                    PrometheusText.Sum(samples, "vllm:kv_cache_usage_perc"));
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or FormatException)
        {
            error = ex is TaskCanceledException ? $"no answer in {_options.HealthTimeout.TotalSeconds:0.#} s" : ex.Message;
        }
        if (error == null)
        {
            if (replica.MarkUp(load!)) _log?.Invoke($"replica {replica.Name} is up");
        }
        else if (replica.MarkDown(error, requestFailed: false))
            _log?.Invoke($"replica {replica.Name} is down: {error}");
    }

    /// <summary>Passive detection: a request could not be forwarded there, so no more go until a health check passes.</summary>
    public void ReportFailure(Replica replica, string error)
    {
        if (replica.MarkDown(error, requestFailed: true)) _log?.Invoke($"replica {replica.Name} failed a request ({error}); out of rotation until /health answers");
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_loop != null) await _loop;
        _client.Dispose();
        _stop.Dispose();
    }
}
