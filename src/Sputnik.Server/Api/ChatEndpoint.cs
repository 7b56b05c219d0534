using System.Text;
using Microsoft.AspNetCore.Http;
using Sputnik.Inference;
using Sputnik.Server.Scheduling;

namespace Sputnik.Server.Api;

/// <summary>POST /v1/chat/completions — OpenAI's chat API with DeepSeek's reasoning extensions.</summary>
internal static class ChatEndpoint
{
    /// <summary>reasoning_effort → thinking budget in tokens.</summary>
    public static int EffortBudget(string effort) => effort switch
    {
        "low" => 256,
        "medium" => 1024,
        _ => 4096,
    };

    public static async Task Handle(HttpContext ctx, ModelHost host)
    {
        ChatRequest req;
        using (var body = RequestReader.ParseBody(await Http.ReadBodyAsync(ctx, host.BodyLimit)))
            req = RequestReader.Chat(body.RootElement, host.DefaultSampling);
        // Any 'model' name is served by the one model, as llama-server does; responses carry the served name.
        Http.CheckPromptText(host, req.PromptCharacters, "messages");
        var job = Submit(host, req, ctx.RequestAborted);

        string id = "chatcmpl-" + Guid.NewGuid().ToString("N")[..24];
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        if (req.Stream) await StreamAsync(ctx, host, req, job, id, created);
        else await CompleteAsync(ctx, host, req, job, id, created);
    }

    /// <summary>
    /// The one generation path of chat requests, OpenAI's and Ollama's: the prompt from the chat template (or
    /// <paramref name="rawPrompt"/>, tokens the caller made without it), the completion budget, thinking with its
    /// budget, the response schema; the job is queued on the scheduler and its events stream from there.
    /// </summary>
    public static InferenceJob Submit(ModelHost host, ChatRequest req, CancellationToken cancellation, int[]? rawPrompt = null)
    {
        bool thinking = req.ThinkingEnabled ?? true;
        // Harmony (gpt-oss) always reasons: the effort is its system message's Reasoning line (thinking off: "low").
        bool harmony = host.Builder.Tags.IsHarmony;
        var extra = harmony && req.ReasoningEffort is { } effort ? new Dictionary<string, object?> { [Harmony.EffortVariable] = effort } : null;
        var prompt = rawPrompt != null ? new ChatPrompt("", rawPrompt, false)
            : host.Builder.Build(req.Messages, addGenerationPrompt: true, tools: req.Tools, thinking: thinking, extra: extra);
        int maxTokens = Http.CompletionBudget(host, prompt.Tokens.Length, req.MaxTokens);
        if (req.ResponseSchema != null) Http.CheckSchemaFits(host, req.ResponseSchema, maxTokens);
        ReasoningOptions? reasoning = null;
        if (rawPrompt == null && host.Builder.SupportsThinking && (thinking || harmony))
        {
            int budget = req.ThinkingBudget ?? (req.ReasoningEffort != null && !harmony ? EffortBudget(req.ReasoningEffort) : int.MaxValue);
            reasoning = new ReasoningOptions { MaxThinkingTokens = budget, StartsInThinking = prompt.StartsInThinking, Tags = host.Builder.Tags };
        }
        var options = new GenerationOptions
        {
            MaxTokens = maxTokens, Sampling = req.Sampling, StopStrings = req.Stop, Reasoning = reasoning, ResponseSchema = req.ResponseSchema,
            ContextShift = host.Options.ContextShift,
            KeepTokens = host.Options.ContextShift && rawPrompt == null ? host.Builder.SystemPrefixTokens(req.Messages, prompt.Tokens) : 0,
        };
        var job = new InferenceJob(prompt.Tokens, options, cancellation, req.TopLogprobs) { Adapters = host.AdaptersFor(req.Lora) };
        host.Scheduler.Submit(job);
        return job;
    }

    private static async Task CompleteAsync(HttpContext ctx, ModelHost host, ChatRequest req, InferenceJob job, string id, long created)
    {
        var content = new StringBuilder();
        var reasoning = new StringBuilder();
        var logprobs = req.TopLogprobs >= 0 ? new List<TokenLogprob>() : null;
        await foreach (var e in job.Events.Reader.ReadAllAsync(ctx.RequestAborted))
        {
            if (e.Error != null) throw Http.Wrap(e.Error);
            if (e.Done) break;
            Append(e.Token, content, reasoning);
            if (e.Logprob != null) logprobs!.Add(e.Logprob);
        }
        string text = content.ToString();
        string finish = Accounting.FinishReason(job.Stats.FinishReason);
        IReadOnlyList<ToolCallDto>? calls = null;
        if (req.Tools != null && ToolCallParser.TryParse(text, out var parsed, out string rest))
        {
            calls = parsed;
            text = rest;
            finish = "tool_calls";
        }
        var message = new ChatResponseMessage("assistant", calls != null && text.Length == 0 ? null : text,
            reasoning.Length > 0 || job.Options.Reasoning != null ? reasoning.ToString() : null, calls);
        var result = new ChatCompletion(id, "chat.completion", created, host.Id, host.Fingerprint,
            [new ChatChoice(0, message, logprobs != null ? new ChoiceLogprobs(logprobs) : null, finish)],
            Accounting.Usage(job.Stats), Accounting.Timings(job.Stats), Accounting.Cost(job, host.Options));
        await Http.WriteJsonAsync(ctx, 200, result, ServerJson.Api.ChatCompletion);
    }

    private static async Task StreamAsync(HttpContext ctx, ModelHost host, ChatRequest req, InferenceJob job, string id, long created)
    {
        var ct = ctx.RequestAborted;
        var sse = new Sse(ctx.Response);
        await sse.StartAsync(ct);
        await sse.WaitForSlotAsync(job, host.Options.KeepAliveInterval, ct);
        ChatCompletionChunk Chunk(ChunkDelta delta, string? finish, TokenLogprob? lp = null, Usage? usage = null, bool last = false) =>
            new(id, "chat.completion.chunk", created, host.Id, host.Fingerprint,
                usage != null && delta.Role == null && delta.Content == null && finish == null ? [] : [new ChunkChoice(0, delta, lp != null ? new ChoiceLogprobs([lp]) : null, finish)],
                usage, last ? Accounting.Timings(job.Stats) : null, last ? Accounting.Cost(job, host.Options) : null);

        var type = ServerJson.Api.ChatCompletionChunk;
        await sse.WriteAsync(Chunk(new ChunkDelta(Role: "assistant", Content: ""), null), type, ct);
        var all = new StringBuilder();
        await foreach (var e in job.Events.Reader.ReadAllAsync(ct))
        {
            if (e.Error != null)
            {
                var err = Http.Wrap(e.Error);
                await sse.WriteAsync(new ErrorBody(new ErrorDetail(err.Message, err.Type, err.Param, err.Code)), ServerJson.Api.ErrorBody, ct);
                await sse.DoneAsync(ct);
                return;
            }
            if (e.Done) break;
            var split = e.Token.Split;
            string content = split?.Content ?? e.Token.Text;
            string? reasoning = split is { Reasoning.Length: > 0 } ? split.Value.Reasoning : null;
            all.Append(content);
            if (content.Length == 0 && reasoning == null && e.Logprob == null) continue;
            await sse.WriteAsync(Chunk(new ChunkDelta(Content: content.Length > 0 || reasoning == null ? content : null, ReasoningContent: reasoning), null, e.Logprob), type, ct);
        }
        string finish = Accounting.FinishReason(job.Stats.FinishReason);
        if (req.Tools != null && ToolCallParser.TryParse(all.ToString(), out var calls, out _))
        {
            await sse.WriteAsync(Chunk(new ChunkDelta(ToolCalls: calls.Select((c, i) => c with { Index = i }).ToList()), null), type, ct);
            finish = "tool_calls";
        }
        await sse.WriteAsync(Chunk(new ChunkDelta(), finish, last: !req.IncludeUsage), type, ct);
        if (req.IncludeUsage) await sse.WriteAsync(Chunk(new ChunkDelta(), null, usage: Accounting.Usage(job.Stats), last: true), type, ct);
        await sse.DoneAsync(ct);
    }

    private static void Append(GeneratedToken t, StringBuilder content, StringBuilder reasoning)
    {
        if (t.Split is { } s)
        {
            reasoning.Append(s.Reasoning);
            content.Append(s.Content);
        }
        else content.Append(t.Text);
    }
}
