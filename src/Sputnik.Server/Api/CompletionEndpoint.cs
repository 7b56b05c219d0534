using System.Text;
using Microsoft.AspNetCore.Http;
using Sputnik.Inference;
using Sputnik.Server.Scheduling;
using Sputnik.Tokenizers;

namespace Sputnik.Server.Api;

/// <summary>POST /v1/completions — plain continuation of a prompt, with fill-in-the-middle when the model has FIM tokens.</summary>
internal static class CompletionEndpoint
{
    public static async Task Handle(HttpContext ctx, ModelHost host)
    {
        CompletionRequest req;
        using (var body = RequestReader.ParseBody(await Http.ReadBodyAsync(ctx, host.BodyLimit)))
            req = RequestReader.Completion(body.RootElement, host.DefaultSampling);
        // Any 'model' name is served by the one model, as llama-server does.
        Http.CheckPromptText(host, (req.PromptText?.Length ?? 0) + (req.Suffix?.Length ?? 0), "prompt");
        var tok = host.Model.Tokenizer;
        int[] prompt = req.PromptTokens ?? Encode(tok, req.PromptText ?? "", req.Suffix);
        foreach (int t in prompt)
            if (t < 0 || t >= tok.VocabSize) throw ApiException.BadRequest($"token id {t} is outside the vocabulary (0..{tok.VocabSize - 1})", "prompt");
        if (prompt.Length == 0) prompt = [tok.BosId >= 0 ? tok.BosId : 0];
        int maxTokens = Http.CompletionBudget(host, prompt.Length, req.MaxTokens, "prompt");
        var options = new GenerationOptions
        {
            MaxTokens = maxTokens, Sampling = req.Sampling, StopStrings = req.Stop,
            ContextShift = host.Options.ContextShift, KeepTokens = prompt[0] == tok.BosId ? 1 : 0,
        };
        var job = new InferenceJob(prompt, options, ctx.RequestAborted, req.TopLogprobs) { Adapters = host.AdaptersFor(req.Lora) };
        host.Scheduler.Submit(job);

        string id = "cmpl-" + Guid.NewGuid().ToString("N")[..24];
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var ct = ctx.RequestAborted;
        var type = ServerJson.Api.TextCompletion;
        TextCompletion Make(string text, string? finish, IReadOnlyList<TokenLogprob>? lps, bool last, bool withChoice = true) =>
            new(id, "text_completion", created, host.Id, host.Fingerprint,
                withChoice ? [new TextChoice(text, 0, lps != null ? new ChoiceLogprobs(lps) : null, finish)] : [],
                last && (!req.Stream || req.IncludeUsage) ? Accounting.Usage(job.Stats) : null,
                last ? Accounting.Timings(job.Stats) : null, last ? Accounting.Cost(job, host.Options) : null);

        if (req.Stream)
        {
            var sse = new Sse(ctx.Response);
            await sse.StartAsync(ct);
            await sse.WaitForSlotAsync(job, host.Options.KeepAliveInterval, ct);
            await foreach (var e in job.Events.Reader.ReadAllAsync(ct))
            {
                if (e.Error != null) throw Http.Wrap(e.Error);
                if (e.Done) break;
                if (e.Token.Text.Length == 0 && e.Logprob == null) continue;
                await sse.WriteAsync(Make(e.Token.Text, null, e.Logprob != null ? [e.Logprob] : null, false), type, ct);
            }
            await sse.WriteAsync(Make("", Accounting.FinishReason(job.Stats.FinishReason), null, !req.IncludeUsage), type, ct);
            if (req.IncludeUsage) await sse.WriteAsync(Make("", null, null, true, withChoice: false), type, ct);
            await sse.DoneAsync(ct);
            return;
        }
        var text = new StringBuilder(req.Echo ? req.PromptText ?? tok.Decode(prompt) : "");
        var logprobs = req.TopLogprobs >= 0 ? new List<TokenLogprob>() : null;
        await foreach (var e in job.Events.Reader.ReadAllAsync(ct))
        {
            if (e.Error != null) throw Http.Wrap(e.Error);
            if (e.Done) break;
            text.Append(e.Token.Text);
            if (e.Logprob != null) logprobs!.Add(e.Logprob);
        }
        await Http.WriteJsonAsync(ctx, 200, Make(text.ToString(), Accounting.FinishReason(job.Stats.FinishReason), logprobs, true), type);
    }

    /// <summary>The prompt's tokens; with a suffix, the model's fill-in-the-middle layout.</summary>
    internal static int[] Encode(Tokenizer tok, string prompt, string? suffix)
    {
        if (suffix == null) return tok.Encode(prompt, addBos: tok.AddBos, parseSpecial: true);
        (string pre, string suf, string mid)? fim =
            tok.FindToken("<|fim_prefix|>") != null ? ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")
            : tok.FindToken("<｜fim▁begin｜>") != null ? ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>")
            : tok.FindToken("<PRE>") != null ? ("<PRE> ", " <SUF>", " <MID>")
            : null;
        if (fim is not { } f) throw ApiException.BadRequest("'suffix' needs a model with fill-in-the-middle tokens; this one has none", "suffix", "unsupported_value");
        return tok.Encode(f.pre + prompt + f.suf + suffix + f.mid, addBos: tok.AddBos, parseSpecial: true);
    }
}
