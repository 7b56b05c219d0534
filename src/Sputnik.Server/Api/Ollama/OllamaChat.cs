using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http;
using Sputnik.Inference;
using Sputnik.Server.Scheduling;

namespace Sputnik.Server.Api.Ollama;

/// <summary>
/// POST /api/chat and /api/generate: Ollama's request and response shapes over the OpenAI endpoint's generation
/// path (<see cref="ChatEndpoint.Submit"/>): NDJSON streaming by default, one object with "stream": false.
/// </summary>
internal static class OllamaChat
{
    public static async Task Chat(HttpContext ctx, IModelProvider models)
    {
        var started = Stopwatch.GetTimestamp();
        var (bytes, name, keepAlive) = await ReadAsync(ctx);
        if (keepAlive == TimeSpan.Zero && await UnloadedAsync(ctx, models, bytes, name, "messages",
                () => new OllamaChatChunk(name, DateTime.UtcNow, new OllamaMessage("assistant", ""), true, "unload"), OllamaJson.Api.OllamaChatChunk))
            return;
        var lease = await LeaseAsync(ctx, models, bytes, name, keepAlive);
        var host = lease.Host;
        ChatRequest req;
        using (var doc = RequestReader.ParseBody(bytes))
            req = OllamaReader.Chat(doc.RootElement, host.DefaultSampling);
        CheckThink(host, req, name);
        if (req.Messages.Count == 0)
        {
            // Ollama's way to load a model: no messages, an empty answer with done_reason "load".
            var loaded = new OllamaChatChunk(name, DateTime.UtcNow, new OllamaMessage("assistant", ""), true, "load");
            await Http.WriteJsonAsync(ctx, 200, loaded, OllamaJson.Api.OllamaChatChunk);
            return;
        }
        Http.CheckPromptText(host, req.PromptCharacters, "messages");
        var job = ChatEndpoint.Submit(host, req, ctx.RequestAborted);
        var stream = new Output(ctx, req.Stream);
        OllamaChatChunk Chunk(string content, string? thinking, IReadOnlyList<OllamaToolCall>? calls = null) =>
            new(name, DateTime.UtcNow, new OllamaMessage("assistant", content, thinking, calls), false);
        var result = await RunAsync(ctx, job, req.Tools != null, stream,
            (content, thinking) => stream.WriteAsync(Chunk(content, thinking), OllamaJson.Api.OllamaChatChunk),
            calls => stream.WriteAsync(Chunk("", null, calls), OllamaJson.Api.OllamaChatChunk));
        if (result == null) return;
        var s = Stats(job, lease, started);
        var last = new OllamaChatChunk(name, DateTime.UtcNow,
            new OllamaMessage("assistant", req.Stream ? "" : result.Content, req.Stream ? null : Nullable(result.Thinking), req.Stream ? null : result.Calls),
            true, result.DoneReason, s.Total, s.Load, s.PromptCount, s.PromptDuration, s.EvalCount, s.EvalDuration);
        await stream.FinishAsync(last, OllamaJson.Api.OllamaChatChunk);
    }

    public static async Task Generate(HttpContext ctx, IModelProvider models)
    {
        var started = Stopwatch.GetTimestamp();
        var (bytes, name, keepAlive) = await ReadAsync(ctx);
        if (keepAlive == TimeSpan.Zero && await UnloadedAsync(ctx, models, bytes, name, "prompt",
                () => new OllamaGenerateChunk(name, DateTime.UtcNow, "", true, DoneReason: "unload"), OllamaJson.Api.OllamaGenerateChunk))
            return;
        var lease = await LeaseAsync(ctx, models, bytes, name, keepAlive);
        var host = lease.Host;
        GenerateRequest gen;
        using (var doc = RequestReader.ParseBody(bytes))
            gen = OllamaReader.Generate(doc.RootElement, host.DefaultSampling);
        var req = gen.Chat;
        CheckThink(host, req, name);
        if (gen.Prompt.Length == 0 && gen.Suffix == null && gen.System == null)
        {
            var loaded = new OllamaGenerateChunk(name, DateTime.UtcNow, "", true, DoneReason: "load");
            await Http.WriteJsonAsync(ctx, 200, loaded, OllamaJson.Api.OllamaGenerateChunk);
            return;
        }
        Http.CheckPromptText(host, req.PromptCharacters + (gen.Suffix?.Length ?? 0) + (gen.Context?.Length ?? 0) * (long)host.MaxTokenBytes, "prompt");
        var tok = host.Model.Tokenizer;
        // raw and suffix (fill-in-the-middle) prompts bypass the chat template, as /v1/completions does.
        int[]? raw = gen.Raw || gen.Suffix != null ? CompletionEndpoint.Encode(tok, gen.Prompt, gen.Suffix) : null;
        if (gen.Context is { Length: > 0 } context)
        {
            foreach (int t in context)
                if ((uint)t >= (uint)tok.VocabSize) throw ApiException.BadRequest($"token id {t} in 'context' is outside the vocabulary (0..{tok.VocabSize - 1})", "context");
            var fresh = raw ?? host.Builder.Build(req.Messages, addGenerationPrompt: true, thinking: req.ThinkingEnabled ?? true).Tokens;
            raw = [.. context, .. fresh];
        }
        var job = ChatEndpoint.Submit(host, req, ctx.RequestAborted, raw);
        var stream = new Output(ctx, req.Stream);
        var generated = new List<int>();
        OllamaGenerateChunk Chunk(string response, string? thinking, IReadOnlyList<OllamaToolCall>? calls = null) =>
            new(name, DateTime.UtcNow, response, false, thinking, calls);
        var result = await RunAsync(ctx, job, false, stream,
            (content, thinking) => stream.WriteAsync(Chunk(content, thinking), OllamaJson.Api.OllamaGenerateChunk),
            calls => stream.WriteAsync(Chunk("", null, calls), OllamaJson.Api.OllamaGenerateChunk), generated);
        if (result == null) return;
        var s = Stats(job, lease, started);
        var last = new OllamaGenerateChunk(name, DateTime.UtcNow, req.Stream ? "" : result.Content, true,
            req.Stream ? null : Nullable(result.Thinking), null, result.DoneReason, [.. job.Prompt, .. generated],
            s.Total, s.Load, s.PromptCount, s.PromptDuration, s.EvalCount, s.EvalDuration);
        await stream.FinishAsync(last, OllamaJson.Api.OllamaGenerateChunk);
    }

    /// <summary>
    /// Reads the body (bounded by --max-body), and gets the model it names from the provider; the body is then held
    /// to that model's own limit (what a prompt that fits its context could take). The lease ends with the response.
    /// </summary>
    internal static async Task<(byte[] Body, string Name, ModelLease Lease)> AcquireAsync(HttpContext ctx, IModelProvider models)
    {
        var (bytes, name, keepAlive) = await ReadAsync(ctx);
        return (bytes, name, await LeaseAsync(ctx, models, bytes, name, keepAlive));
    }

    /// <summary>The body, the model it names and its keep_alive.</summary>
    private static async Task<(byte[] Body, string Name, TimeSpan? KeepAlive)> ReadAsync(HttpContext ctx)
    {
        byte[] bytes = await Http.ReadBodyAsync(ctx);
        using var doc = RequestReader.ParseBody(bytes);
        var f = new JsonFields(doc.RootElement);
        return (bytes, OllamaReader.ModelName(f), OllamaReader.KeepAlive(f));
    }

    private static async Task<ModelLease> LeaseAsync(HttpContext ctx, IModelProvider models, byte[] bytes, string name, TimeSpan? keepAlive)
    {
        var lease = await models.AcquireAsync(name, keepAlive, ctx.RequestAborted);
        ctx.Response.RegisterForDispose(lease);
        if (bytes.Length > lease.Host.BodyLimit)
            throw new ApiException(413, $"the request body is larger than {lease.Host.BodyLimit} bytes, what a prompt that fits this model's context could take", code: "request_too_large");
        return lease;
    }

    /// <summary>
    /// Ollama's way to unload a model: keep_alive 0 and nothing to generate (no messages, or no prompt). Answers
    /// done_reason "unload" and returns true, or 404 for a name nothing goes by; false (a plain load-and-answer) on a
    /// single-model server, whose one model stays.
    /// </summary>
    private static async Task<bool> UnloadedAsync<T>(HttpContext ctx, IModelProvider models, byte[] bytes, string name, string field, Func<T> answer,
        System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
    {
        using (var doc = RequestReader.ParseBody(bytes))
        {
            var f = new JsonFields(doc.RootElement);
            bool nothing = field == "messages"
                ? f.Get("messages") is not { ValueKind: JsonValueKind.Array } m || m.GetArrayLength() == 0
                : string.IsNullOrEmpty(f.Get("prompt") is { ValueKind: JsonValueKind.String } p ? p.GetString() : null) && !f.Has("suffix") && !f.Has("system");
            if (!nothing) return false;
        }
        switch (models.Unload(name))
        {
            case UnloadResult.Kept:
                return false;
            case UnloadResult.NotFound:
                throw new ApiException(404, $"model '{name}' not found", "model", "model_not_found");
        }
        await Http.WriteJsonAsync(ctx, 200, answer(), type);
        return true;
    }

    /// <summary>Ollama refuses to think with a model that cannot: asking for it is a 400, as there.</summary>
    private static void CheckThink(ModelHost host, ChatRequest req, string name)
    {
        if (req.ThinkingEnabled == true && !host.Builder.SupportsThinking)
            throw ApiException.BadRequest($"\"{name}\" does not support thinking", "think");
    }

    private static string? Nullable(string s) => s.Length > 0 ? s : null;

    private sealed record Outcome(string Content, string Thinking, IReadOnlyList<OllamaToolCall>? Calls, string DoneReason);

    /// <summary>
    /// Drains the job: each token's answer and reasoning text goes to <paramref name="write"/> when streaming; with
    /// tools, call markup is held back and parsed into tool_calls (arguments as JSON objects) at the end. Returns
    /// null when the job failed after the stream started (the error was written as Ollama's last line).
    /// </summary>
    private static async Task<Outcome?> RunAsync(HttpContext ctx, InferenceJob job, bool tools, Output stream,
        Func<string, string?, Task> write, Func<IReadOnlyList<OllamaToolCall>, Task> writeCalls, List<int>? generated = null)
    {
        var ct = ctx.RequestAborted;
        var content = new StringBuilder();
        var thinking = new StringBuilder();
        var filter = tools ? new ToolCallFilter() : null;
        await foreach (var e in job.Events.Reader.ReadAllAsync(ct))
        {
            if (e.Error != null)
            {
                if (!stream.Started) throw Http.Wrap(e.Error);
                await stream.ErrorAsync(Http.Wrap(e.Error).Message);
                return null;
            }
            if (e.Done) break;
            generated?.Add(e.Token.Id);
            var split = e.Token.Split;
            string answer = split?.Content ?? e.Token.Text;
            string reasoning = split?.Reasoning ?? "";
            if (filter != null) answer = filter.Push(answer);
            content.Append(answer);
            thinking.Append(reasoning);
            if (stream.Streaming && (answer.Length > 0 || reasoning.Length > 0)) await write(answer, reasoning.Length > 0 ? reasoning : null);
        }
        List<OllamaToolCall>? calls = null;
        if (filter != null)
        {
            var (rest, parsed) = filter.Finish();
            if (parsed.Count > 0) calls = ToolCalls(parsed);
            content.Append(rest);
            if (stream.Streaming && rest.Length > 0) await write(rest, null);
            if (stream.Streaming && calls != null) await writeCalls(calls);
        }
        return new Outcome(content.ToString(), thinking.ToString(), calls, Accounting.FinishReason(job.Stats.FinishReason));
    }

    /// <summary>Parsed calls in Ollama's shape: index, name, and the arguments as a JSON object.</summary>
    internal static List<OllamaToolCall> ToolCalls(IReadOnlyList<ToolCall> calls) =>
        calls.Select((c, i) => new OllamaToolCall(new OllamaToolCallFunction(i, c.Name, Arguments(c.ArgumentsJson)), c.Id)).ToList();

    /// <summary>A call's arguments as the JSON object Ollama sends (a string that is not an object is wrapped as {"value": …}).</summary>
    private static JsonElement Arguments(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind == JsonValueKind.Object) return doc.RootElement.Clone();
        }
        catch (JsonException) { }
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("value", json);
            w.WriteEndObject();
        }
        using var wrapped = JsonDocument.Parse(buffer.WrittenMemory);
        return wrapped.RootElement.Clone();
    }

    private readonly record struct Durations(long Total, long Load, int PromptCount, long PromptDuration, int EvalCount, long EvalDuration);

    /// <summary>The last object's statistics, in nanoseconds as Ollama reports them.</summary>
    private static Durations Stats(InferenceJob job, ModelLease lease, long started)
    {
        var s = job.Stats;
        long total = (long)(Stopwatch.GetElapsedTime(started).Ticks * 100 + lease.LoadTime.Ticks * 100);
        return new Durations(total, lease.LoadTime.Ticks * 100, s.PromptTokens, (long)(s.PromptMs * 1e6), s.GeneratedTokens, (long)(s.GenerationMs * 1e6));
    }

    /// <summary>The response: NDJSON lines (application/x-ndjson) when streaming, one JSON object otherwise.</summary>
    private sealed class Output(HttpContext ctx, bool streaming)
    {
        private static readonly byte[] NewLine = "\n"u8.ToArray();

        public bool Streaming => streaming;
        public bool Started => ctx.Response.HasStarted;

        public async Task WriteAsync<T>(T value, JsonTypeInfo<T> type)
        {
            var response = ctx.Response;
            if (!response.HasStarted)
            {
                response.StatusCode = 200;
                response.ContentType = "application/x-ndjson";
                response.Headers.CacheControl = "no-cache";
                response.Headers["X-Accel-Buffering"] = "no";
            }
            await JsonSerializer.SerializeAsync(response.Body, value, type, ctx.RequestAborted);
            await response.Body.WriteAsync(NewLine, ctx.RequestAborted);
            await response.Body.FlushAsync(ctx.RequestAborted);
        }

        public Task FinishAsync<T>(T last, JsonTypeInfo<T> type) =>
            streaming ? WriteAsync(last, type) : Http.WriteJsonAsync(ctx, 200, last, type);

        public Task ErrorAsync(string message) => WriteAsync(new OllamaError(message), OllamaJson.Api.OllamaError);
    }
}
