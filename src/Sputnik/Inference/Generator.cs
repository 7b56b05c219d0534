using System.Diagnostics;
using Sputnik.Models;
using Sputnik.Tokenizers;

namespace Sputnik.Inference;

/// <summary>Limits and stop rules of one generation.</summary>
internal sealed record GenerationOptions
{
    public int MaxTokens { get; init; } = 128;
    public SamplingOptions Sampling { get; init; } = new();
    public IReadOnlyList<string> StopStrings { get; init; } = [];
    /// <summary>Stop at end-of-generation tokens (EOS, EOT, &lt;|im_end|&gt; …).</summary>
    public bool StopAtEndOfGeneration { get; init; } = true;
    /// <summary>Track &lt;think&gt; reasoning (and enforce its budget); null for plain completion.</summary>
    public ReasoningOptions? Reasoning { get; init; }
    /// <summary>Constrain the answer to JSON this compiled schema accepts (response_format); null for free text.</summary>
    public Json.SchemaNode? ResponseSchema { get; init; }
    /// <summary>
    /// When the context fills, drop the older half of the tokens after the first <see cref="KeepTokens"/> and go on
    /// (llama.cpp's --context-shift) instead of ending with <see cref="FinishReason.ContextFull"/>.
    /// </summary>
    public bool ContextShift { get; init; }
    /// <summary>Leading tokens a context shift never drops (BOS, the system prompt): llama.cpp's n_keep.</summary>
    public int KeepTokens { get; init; }
    /// <summary>Speculative decoding; null or <see cref="SpeculationType.None"/> for one forward per token.</summary>
    public SpeculationOptions? Speculation { get; init; }
    /// <summary>Proposals from elsewhere than <see cref="Speculation"/>'s type (a draft model, a test's oracle); needs <see cref="Speculation"/> for the limits.</summary>
    public IDraftSource? DraftSource { get; init; }
}

/// <summary>Why generation ended.</summary>
public enum FinishReason
{
    /// <summary>An end-of-generation token or a stop string.</summary>
    Stop,
    /// <summary>The token limit was reached.</summary>
    Length,
    /// <summary>The context (KV cache) is full.</summary>
    ContextFull,
    /// <summary>The caller cancelled.</summary>
    Cancelled,
}

/// <summary>One step of generation: the sampled token and the text it releases (possibly empty while a UTF-8 character or a stop string is incomplete).</summary>
/// <summary>
/// One step of generation: the sampled token and the text it releases (possibly empty while a UTF-8 character or
/// a stop string is incomplete). <see cref="Split"/> divides that text into reasoning and answer when the
/// generation tracks reasoning (<see cref="GenerationOptions.Reasoning"/> set).
/// </summary>
internal readonly record struct GeneratedToken(int Id, string Text, ReasoningDelta? Split = null);

/// <summary>
/// Reasoning tracking and its budget: once <see cref="MaxThinkingTokens"/> tokens were spent inside the
/// thinking block, the generator writes <see cref="Cue"/> + <see cref="CloseText"/> itself and the model answers.
/// </summary>
internal sealed record ReasoningOptions
{
    /// <summary>Thinking tokens allowed; int.MaxValue means unlimited (tracking only).</summary>
    public int MaxThinkingTokens { get; init; } = int.MaxValue;
    /// <summary>Text that ends the thinking block (parsed with special tokens, so a &lt;/think&gt; token id is used when the vocabulary has one).</summary>
    public string CloseText => Tags.CloseText;
    /// <summary>The model's thinking tags (the prompt builder's <see cref="ChatPromptBuilder.Tags"/>).</summary>
    public ThinkTags Tags { get; init; } = ThinkTags.Think;
    /// <summary>A short cue written before the close text when the budget runs out.</summary>
    public string Cue { get; init; } = "\n\nOkay, time is up. Let me give the final answer now.";
    /// <summary>The prompt already opened the thinking block (R1-Distill templates end with "&lt;think&gt;\n").</summary>
    public bool StartsInThinking { get; init; }
}

/// <summary>Timings and counts of one generation, llama.cpp style.</summary>
internal sealed class GenerationStats
{
    public int PromptTokens { get; set; }
    public int CachedPromptTokens { get; set; }
    public int GeneratedTokens { get; set; }
    /// <summary>Generated tokens that fell inside the thinking block.</summary>
    public int ReasoningTokens { get; set; }
    public double PromptMs { get; set; }
    public double GenerationMs { get; set; }
    public FinishReason FinishReason { get; set; } = FinishReason.Length;
    public string? StopString { get; set; }
    /// <summary>Context shifts this generation made (<see cref="GenerationOptions.ContextShift"/>).</summary>
    public int ContextShifts { get; set; }
    /// <summary>Speculative decoding: tokens proposed and verified in batched forwards, and how many of them the sampler kept.</summary>
    public int DraftedTokens { get; set; }
    public int AcceptedTokens { get; set; }

    /// <summary>Accepted ÷ drafted proposals (0 when nothing was drafted).</summary>
    public double AcceptanceRate => DraftedTokens > 0 ? (double)AcceptedTokens / DraftedTokens : 0;

    public double PromptTokensPerSecond => PromptMs > 0 ? (PromptTokens - CachedPromptTokens) * 1000.0 / PromptMs : 0;
    public double GenerationTokensPerSecond => GenerationMs > 0 ? GeneratedTokens * 1000.0 / GenerationMs : 0;
}

/// <summary>
/// Runs the prompt → sample → feed loop for one sequence. The state's KV cache is reused: when it already holds
/// a prefix of the new prompt, only the rest is computed (prompt caching).
/// </summary>
internal sealed class Generator(LanguageModel model, Tokenizer tokenizer)
{
    public LanguageModel Model { get; } = model;
    public Tokenizer Tokenizer { get; } = tokenizer;

    /// <summary>
    /// Yields generated tokens with their text. <paramref name="history"/> receives prompt + generated tokens;
    /// <paramref name="stats"/> is filled as generation proceeds.
    /// </summary>
    /// <remarks>
    /// With <paramref name="handoff"/>, a caller may run the decode forward itself (for several generations in one
    /// batched pass): after a step it reads <see cref="DecodeHandoff.PendingToken"/>, feeds that token to
    /// <paramref name="state"/>, and calls <see cref="DecodeHandoff.MarkFed"/>; the next step then samples from the
    /// state's logits without feeding again. With <see cref="DecodeHandoff.PrefillChunk"/> set, the prompt is fed that
    /// many tokens per step: steps that only fed a chunk yield a default token with
    /// <see cref="DecodeHandoff.Prefilling"/> set, so a caller can run other sequences between them.
    /// </remarks>
    public IEnumerable<GeneratedToken> Generate(InferenceState state, IReadOnlyList<int> prompt, GenerationOptions options,
        GenerationStats stats, List<int>? history = null, CancellationToken cancellationToken = default, DecodeHandoff? handoff = null)
    {
        if (prompt.Count == 0) throw new ArgumentException("the prompt has no tokens (add BOS to generate from nothing)");
        if (options.MaxTokens < 0) throw new ArgumentException($"max tokens {options.MaxTokens} must not be negative");
        if (prompt.Count > state.Capacity)
            throw new ContextOverflowException($"the prompt has {prompt.Count} tokens, more than the context of {state.Capacity}");
        history ??= new List<int>(prompt.Count + options.MaxTokens);

        using var sampler = new Sampler(options.Sampling, Model.Config.VocabSize); // returned to the pool when the generation ends or is disposed
        // Harmony output is framed by special tokens (channels, message ends): its parser reads them as text.
        var decoder = new StreamingDecoder(Tokenizer, renderSpecial: options.Reasoning?.Tags.IsHarmony == true);
        var stops = new StopMatcher(options.StopStrings);
        stats.PromptTokens = prompt.Count;

        var sw = Stopwatch.StartNew();
        int reuse = state.Restorable(ReusablePrefix(state, history, prompt));
        reuse = state.Truncate(reuse); // 0 where a sliding-window ring lost the prefix's window
        RequestCheckpoints(state, prompt);
        stats.CachedPromptTokens = reuse;
        history.Clear();
        history.AddRange(prompt);
        stats.PromptMs = 0;
        int chunk = handoff?.PrefillChunk is > 0 and var c ? c : prompt.Count;
        for (int from = reuse; ;)
        {
            int end = Math.Min(prompt.Count, from + chunk);
            FeedPrompt(state, history, from, end);
            from = end;
            // Only the time spent feeding counts: between chunks the caller runs other sequences.
            stats.PromptMs += sw.Elapsed.TotalMilliseconds;
            if (from == prompt.Count) break;
            // The fed part stays valid cache (history holds the whole prompt; the state's position says how much of it is in).
            handoff!.Prefilling = true;
            yield return default;
            handoff.Prefilling = false;
            if (cancellationToken.IsCancellationRequested) { stats.FinishReason = FinishReason.Cancelled; yield break; }
            sw.Restart();
        }
        float[] logits = state.Logits;
        sw.Restart();

        var reasoning = options.Reasoning;
        var parser = reasoning == null ? null : new ReasoningParser(reasoning.StartsInThinking, reasoning.Tags);
        int thinkingTokens = 0;
        bool forcedClose = false;
        var constraint = options.ResponseSchema is { } schema ? new Json.JsonTokenConstraint(schema, Tokenizer, parser) : null;
        // A state that cannot be cut back anywhere (a sliding-window ring, a recurrent state: Rows is null) could not
        // drop rejected proposals, so it decodes one token per forward. TODO(#20): rings with draft-max spare rows.
        // A caller that feeds decode tokens itself (batched server slots) says per step whether to speculate instead.
        var spec = options.Speculation is { } so && (so.Enabled || options.DraftSource != null) && state.Rows != null
            ? new Speculator(Model, so, options.DraftSource ?? Speculator.CreateSource(so, Model, Tokenizer, state)) : null;

        try
        {
        while (stats.GeneratedTokens < options.MaxTokens)
        {
            if (cancellationToken.IsCancellationRequested) { stats.FinishReason = FinishReason.Cancelled; break; }

            // Reasoning budget spent: write the end-of-thinking text ourselves and let the model answer.
            if (parser != null && !forcedClose && parser.State == ReasoningParser.Phase.Thinking && thinkingTokens >= reasoning!.MaxThinkingTokens)
            {
                forcedClose = true;
                spec?.Discard(state);
                // The forced text counts against max tokens: drop the cue when only the close fits, and force
                // nothing when not even that leaves room for an answer (the length limit then ends the turn).
                int room = Math.Min(options.MaxTokens - stats.GeneratedTokens, state.Capacity - state.Position) - 1;
                int[] closing = Tokenizer.Encode(reasoning.Cue + reasoning.CloseText, addBos: false, parseSpecial: true);
                if (closing.Length > room) closing = Tokenizer.Encode(reasoning.CloseText, addBos: false, parseSpecial: true);
                if (closing.Length > room) closing = [];
                foreach (int id in closing)
                {
                    history.Add(id);
                    stats.GeneratedTokens++;
                    string forced = stops.Push(decoder.Add(id));
                    yield return new GeneratedToken(id, forced, parser.Push(forced));
                }
                if (closing.Length > 0) Model.Forward(state, closing);
            }

            // Unchecked proposals in the cache do not count: the budget must be what it is without speculation.
            int fed = state.Position - (spec?.Pending ?? 0);
            if (constraint != null) constraint.Budget = Math.Min(options.MaxTokens - stats.GeneratedTokens, state.Capacity - fed + 1);
            int token = sampler.Sample(logits, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(history), constraint);
            if (token < 0 && constraint is { BudgetRelaxed: false })
            {
                constraint.RelaxBudget();
                token = sampler.Sample(logits, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(history), constraint);
            }
            if (token < 0)
            {
                // The constraint allows no token of this vocabulary: end rather than break the format. The value is
                // not complete (end of generation would have been allowed), so this is a cut-off, not a stop.
                stats.FinishReason = FinishReason.Length;
                yield break;
            }
            constraint?.Accept(token);
            // A proposal the sampler picked too is already in the cache, with the logits after it at hand.
            bool verified = spec != null && spec.TryAccept(state, token);
            history.Add(token);
            stats.GeneratedTokens++;
            if (parser?.State == ReasoningParser.Phase.Thinking) { thinkingTokens++; stats.ReasoningTokens++; }
            stats.GenerationMs = sw.Elapsed.TotalMilliseconds;
            if (options.StopAtEndOfGeneration && Tokenizer.IsEndOfGeneration(token))
            {
                stats.FinishReason = FinishReason.Stop;
                yield return Final(token, stops.Push(decoder.Flush()) + stops.Flush(), parser);
                yield break;
            }
            string text = stops.Push(decoder.Add(token));
            if (stops.Matched != null)
            {
                stats.FinishReason = FinishReason.Stop;
                stats.StopString = stops.Matched;
                yield return Final(token, text, parser);
                yield break;
            }
            if (constraint is { IsFinished: true })
            {
                // The JSON value is complete: nothing but whitespace could follow, so the answer ends here.
                stats.FinishReason = FinishReason.Stop;
                yield return Final(token, text + stops.Push(decoder.Flush()) + stops.Flush(), parser);
                yield break;
            }
            bool last = stats.GeneratedTokens >= options.MaxTokens;
            // A verified token is already in the cache, so it never finds the context full.
            if (!last && !verified && state.Position >= state.Capacity && options.ContextShift && ShiftContext(state, history, options.KeepTokens))
                stats.ContextShifts++;
            if (!last && !verified && state.Position >= state.Capacity)
            {
                stats.FinishReason = FinishReason.ContextFull;
                yield return Final(token, text + stops.Push(decoder.Flush()) + stops.Flush(), parser);
                yield break;
            }
            if (last)
            {
                yield return Final(token, text + stops.Push(decoder.Flush()) + stops.Flush(), parser);
                break;
            }
            if (handoff != null) handoff.PendingToken = verified ? -1 : token; // a verified token is already in the cache
            yield return new GeneratedToken(token, text, parser?.Push(text));
            if (handoff is { Fed: true }) handoff.Fed = false;
            else if (verified) { } // already in the cache
            else if (spec != null && handoff is null or { Speculate: true }) spec.Feed(state, history, token, options.MaxTokens - stats.GeneratedTokens);
            else FeedToken(state, token);
            if (handoff != null) handoff.PendingToken = -1;
            stats.GenerationMs = sw.Elapsed.TotalMilliseconds;
        }
        if (stats.FinishReason != FinishReason.Cancelled) stats.FinishReason = FinishReason.Length;
        }
        finally
        {
            // Unchecked proposals must not stay in the cache: the next prompt reuses it as a prefix.
            if (spec != null)
            {
                spec.Discard(state);
                stats.DraftedTokens = spec.Drafted;
                stats.AcceptedTokens = spec.Accepted;
            }
        }
    }

    /// <summary>
    /// Drops the older half of the cached tokens after the first <paramref name="keep"/> (as llama.cpp: n_discard =
    /// (n_past − n_keep) / 2) from the cache and from <paramref name="history"/>, which mirrors the cache's positions
    /// (plus the sampled token not yet fed). False when the model cannot shift or nothing would be dropped.
    /// </summary>
    private bool ShiftContext(InferenceState state, List<int> history, int keep)
    {
        int past = state.Position;
        keep = Math.Clamp(keep, 0, past);
        int discard = (past - keep) / 2;
        if (discard < 1 || !Model.CanShiftContext) return false;
        Model.ShiftContext(state, keep, discard);
        history.RemoveRange(keep, discard);
        // A sliding-window ring may have dropped kept positions the next window reaches back to: recompute them.
        int shifted = state.Position;
        if (state.Truncate(shifted) < shifted) FeedPrompt(state, history, 0, shifted);
        return true;
    }

    // The last step also releases whatever the reasoning parser held back.
    private static GeneratedToken Final(int token, string text, ReasoningParser? parser)
    {
        if (parser == null) return new GeneratedToken(token, text);
        var a = parser.Push(text);
        var b = parser.Flush();
        return new GeneratedToken(token, text, new ReasoningDelta(a.Reasoning + b.Reasoning, a.Content + b.Content));
    }

    private void FeedPrompt(InferenceState state, List<int> history, int from, int end) =>
        Model.Forward(state, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(history)[from..end]);

    private void FeedToken(InferenceState state, int token)
    {
        Span<int> one = [token];
        Model.Forward(state, one);
    }

    /// <summary>
    /// Where a recurrent state (which cannot be cut back) keeps checkpoints of this prompt: before its last token (the
    /// same prompt again) and before its last control token (the turn header of a chat template: the next turn's prompt
    /// repeats this one up to there, whatever the template then does with the reply). Attention caches ignore them.
    /// </summary>
    private void RequestCheckpoints(InferenceState state, IReadOnlyList<int> prompt)
    {
        for (int i = prompt.Count - 2; i > 0; i--)
        {
            if ((uint)prompt[i] >= (uint)Tokenizer.VocabSize || Tokenizer.GetTokenType(prompt[i]) != TokenType.Control) continue;
            state.RequestCheckpoint(i);
            break;
        }
        state.RequestCheckpoint(prompt.Count - 1);
    }

    /// <summary>How many leading prompt tokens are already in the cache (always leaves one to compute logits from).</summary>
    private static int ReusablePrefix(InferenceState state, List<int> history, IReadOnlyList<int> prompt)
    {
        int n = Math.Min(Math.Min(state.Position, history.Count), prompt.Count - 1);
        int i = 0;
        while (i < n && history[i] == prompt[i]) i++;
        return i;
    }
}

/// <summary>
/// The decode token a suspended generation will feed when it resumes, so a caller can feed it instead (together
/// with other sequences' tokens) and tell the generation it is done; and how the prompt is split across steps.
/// </summary>
internal sealed class DecodeHandoff
{
    /// <summary>The token the next step would feed, or −1 (prefill pending, a final step, or not suspended after a sample).</summary>
    public int PendingToken { get; internal set; } = -1;

    internal bool Fed;

    /// <summary>
    /// Set by the caller before a step that does not feed <see cref="PendingToken"/>: the generation may feed it
    /// together with speculative proposals (when it has a proposal source) instead of one token alone.
    /// </summary>
    public bool Speculate { get; set; }

    /// <summary>Prompt tokens fed per step; 0 feeds the whole prompt in the first step.</summary>
    public int PrefillChunk { get; init; }

    /// <summary>The last step only fed a prompt chunk: it produced no token (its value is default).</summary>
    public bool Prefilling { get; internal set; }

    /// <summary>The caller has fed <see cref="PendingToken"/> to the generation's state; the next step skips its own forward.</summary>
    public void MarkFed()
    {
        if (PendingToken < 0) throw new InvalidOperationException("no token is pending");
        Fed = true;
    }
}

/// <summary>Prompt plus requested tokens do not fit the context.</summary>
public sealed class ContextOverflowException(string message) : Exception(message);
