using System.Text;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http;
using Sputnik.Server.Scheduling;

namespace Sputnik.Server.Api;

/// <summary>Server-sent events: "data: JSON" lines, ": keep-alive" comments, and the closing "data: [DONE]".</summary>
internal sealed class Sse(HttpResponse response)
{
    private static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();
    private static readonly byte[] KeepAliveBytes = ": keep-alive\n\n"u8.ToArray();

    public async Task StartAsync(CancellationToken ct)
    {
        response.StatusCode = 200;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        await response.StartAsync(ct);
        await response.Body.FlushAsync(ct);
    }

    public async Task WriteAsync<T>(T value, JsonTypeInfo<T> type, CancellationToken ct)
    {
        var json = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(value, type);
        var buf = new byte[json.Length + 8];
        "data: "u8.CopyTo(buf);
        json.CopyTo(buf, 6);
        buf[^2] = (byte)'\n';
        buf[^1] = (byte)'\n';
        await response.Body.WriteAsync(buf, ct);
        await response.Body.FlushAsync(ct);
    }

    public async Task DoneAsync(CancellationToken ct)
    {
        await response.Body.WriteAsync(Done, ct);
        await response.Body.FlushAsync(ct);
    }

    /// <summary>Sends ": keep-alive" every <paramref name="interval"/> until the job has a slot.</summary>
    public async Task WaitForSlotAsync(InferenceJob job, TimeSpan interval, CancellationToken ct)
    {
        while (!job.Started.IsCompleted)
        {
            await Task.WhenAny(job.Started, Task.Delay(interval, ct));
            ct.ThrowIfCancellationRequested();
            if (job.Started.IsCompleted) break;
            await response.Body.WriteAsync(KeepAliveBytes, ct);
            await response.Body.FlushAsync(ct);
        }
    }

    public static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);
}
