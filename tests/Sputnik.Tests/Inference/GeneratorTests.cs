using Sputnik.Inference;
using Xunit;

namespace Sputnik.Tests.Inference;

public class GeneratorTests
{
    private static SputnikModel Load() => SputnikModel.Load(Fixtures.Require(Fixtures.Model("stories260K.gguf")), new ModelOptions { Threads = 1, ContextLength = 256 });

    [Fact]
    public void Reasoning_budget_closes_thinking_after_N_tokens_and_the_model_answers()
    {
        using var m = Load();
        var gen = new Generator(m.Model, m.Tokenizer);
        var prompt = m.Tokenizer.Encode("Once upon a time");
        var options = new GenerationOptions
        {
            MaxTokens = 40,
            Sampling = SamplingOptions.Greedy,
            Reasoning = new ReasoningOptions { MaxThinkingTokens = 6, StartsInThinking = true, Cue = "" },
        };
        var stats = new GenerationStats();
        var steps = gen.Generate(m.CreateState(), prompt, options, stats).ToList();
        string reasoning = string.Concat(steps.Select(s => s.Split!.Value.Reasoning));
        string content = string.Concat(steps.Select(s => s.Split!.Value.Content));
        string all = string.Concat(steps.Select(s => s.Text));

        Assert.Equal(6, stats.ReasoningTokens);
        Assert.Contains("</think>", all);
        Assert.DoesNotContain("</think>", reasoning + content);
        // Reasoning is the first six greedy tokens; the answer continues after the forced close.
        Assert.StartsWith(reasoning.TrimEnd('\n'), all.TrimStart());
        Assert.False(string.IsNullOrWhiteSpace(content));
    }

    [Fact]
    public void Stop_string_ends_generation_and_is_not_emitted()
    {
        using var m = Load();
        var gen = new Generator(m.Model, m.Tokenizer);
        var stats = new GenerationStats();
        var options = new GenerationOptions { MaxTokens = 100, Sampling = SamplingOptions.Greedy, StopStrings = ["Lily"] };
        string text = string.Concat(gen.Generate(m.CreateState(), m.Tokenizer.Encode("Once upon a time"), options, stats).Select(s => s.Text));
        Assert.Equal(", there was a little girl named ", text);
        Assert.Equal(FinishReason.Stop, stats.FinishReason);
        Assert.Equal("Lily", stats.StopString);
    }

    [Fact]
    public void Second_generation_reuses_the_cached_prompt_prefix_and_gives_the_same_tokens()
    {
        using var m = Load();
        var gen = new Generator(m.Model, m.Tokenizer);
        var state = m.CreateState();
        var history = new List<int>();
        var prompt = m.Tokenizer.Encode("Once upon a time");
        var options = new GenerationOptions { MaxTokens = 10, Sampling = SamplingOptions.Greedy };
        var first = gen.Generate(state, prompt, options, new GenerationStats(), history).Select(s => s.Id).ToList();
        var stats = new GenerationStats();
        var second = gen.Generate(state, prompt, options, stats, history).Select(s => s.Id).ToList();
        Assert.Equal(first, second);
        Assert.Equal(prompt.Length - 1, stats.CachedPromptTokens);
    }

    [Fact]
    public void Max_tokens_is_honoured_with_finish_reason_length()
    {
        using var m = Load();
        var stats = new GenerationStats();
        var steps = new Generator(m.Model, m.Tokenizer)
            .Generate(m.CreateState(), [m.Tokenizer.BosId], new GenerationOptions { MaxTokens = 7, Sampling = SamplingOptions.Greedy }, stats).ToList();
        Assert.Equal(7, steps.Count);
        Assert.Equal(FinishReason.Length, stats.FinishReason);
    }

    [Fact]
    public void A_response_schema_makes_the_answer_valid_json_and_stops_when_the_value_is_complete()
    {
        using var m = Load();
        var gen = new Generator(m.Model, m.Tokenizer);
        using var schema = System.Text.Json.JsonDocument.Parse(
            """{"type":"object","properties":{"ok":{"type":"boolean"},"n":{"type":"integer"}},"required":["ok","n"],"additionalProperties":false}""");
        var options = new GenerationOptions
        {
            MaxTokens = 120,
            Sampling = SamplingOptions.Greedy,
            ResponseSchema = Sputnik.Inference.Json.JsonSchemaCompiler.Compile(schema.RootElement),
        };
        var stats = new GenerationStats();
        string text = string.Concat(gen.Generate(m.CreateState(), m.Tokenizer.Encode("Once upon a time"), options, stats).Select(t => t.Text));
        Assert.Equal(FinishReason.Stop, stats.FinishReason);
        using var doc = System.Text.Json.JsonDocument.Parse(text);
        Assert.True(doc.RootElement.GetProperty("ok").ValueKind is System.Text.Json.JsonValueKind.True or System.Text.Json.JsonValueKind.False);
        Assert.True(doc.RootElement.GetProperty("n").TryGetInt64(out _));
    }

    [Fact]
    public void With_reasoning_the_constraint_starts_after_thinking()
    {
        using var m = Load();
        var gen = new Generator(m.Model, m.Tokenizer);
        using var schema = System.Text.Json.JsonDocument.Parse("""{"type":"object","properties":{"done":{"type":"boolean"}},"required":["done"],"additionalProperties":false}""");
        var options = new GenerationOptions
        {
            MaxTokens = 150,
            Sampling = SamplingOptions.Greedy,
            Reasoning = new ReasoningOptions { MaxThinkingTokens = 8, StartsInThinking = true, Cue = "" },
            ResponseSchema = Sputnik.Inference.Json.JsonSchemaCompiler.Compile(schema.RootElement),
        };
        var stats = new GenerationStats();
        var steps = gen.Generate(m.CreateState(), m.Tokenizer.Encode("Once upon a time"), options, stats).ToList();
        string reasoning = string.Concat(steps.Select(s => s.Split!.Value.Reasoning));
        string content = string.Concat(steps.Select(s => s.Split!.Value.Content));
        Assert.Equal(8, stats.ReasoningTokens);
        Assert.Contains(' ', reasoning.Trim()); // free text: the story model's words, not JSON
        Assert.Equal(FinishReason.Stop, stats.FinishReason);
        using var doc = System.Text.Json.JsonDocument.Parse(content);
        Assert.True(doc.RootElement.GetProperty("done").ValueKind is System.Text.Json.JsonValueKind.True or System.Text.Json.JsonValueKind.False);
    }
}
