using System.Text.Json;
using Sputnik.Gguf;
using Sputnik.Inference;
using Sputnik.Server.Api;
using Xunit;

namespace Sputnik.Tests.Inference;

/// <summary>general.sampling.* (the keys llama.cpp reads) replace the built-in defaults; explicit settings still win.</summary>
public class RecommendedSamplingTests
{
    private static GgufFile FileWith(Action<GgufWriter> keys)
    {
        var w = new GgufWriter();
        w.Set("general.architecture", "llama");
        keys(w);
        string path = Path.Combine(Path.GetTempPath(), $"sputnik-sampling-{Guid.NewGuid():N}.gguf");
        w.Write(path);
        var f = GgufFile.Open(path);
        File.Delete(path); // the mapping stays valid on Linux
        return f;
    }

    [Fact]
    public void Valid_keys_replace_the_defaults_and_invalid_ones_are_ignored()
    {
        using var f = FileWith(w =>
        {
            w.Set(RecommendedSampling.Temperature, 0f);
            w.Set(RecommendedSampling.TopK, 20u);
            w.Set(RecommendedSampling.TopP, float.NaN); // hostile: ignored
            w.Set(RecommendedSampling.MinP, 2.5f); // out of range: ignored
            w.Set(RecommendedSampling.RepeatPenalty, 1.1f);
        });
        var d = new SamplingOptions();
        var s = RecommendedSampling.Apply(f, d);
        Assert.Equal(0f, s.Temperature);
        Assert.Equal(20, s.TopK);
        Assert.Equal(d.TopP, s.TopP);
        Assert.Equal(d.MinP, s.MinP);
        Assert.Equal(1.1f, s.RepeatPenalty);
        s.Validate();
    }

    [Fact]
    public void A_file_without_keys_keeps_the_baseline()
    {
        using var f = FileWith(_ => { });
        var baseline = new SamplingOptions { Temperature = 0.6f, Seed = 3 };
        Assert.Equal(baseline, RecommendedSampling.Apply(f, baseline));
    }

    [Fact]
    public void Requests_fall_back_to_the_model_defaults_but_their_own_fields_win()
    {
        var defaults = new SamplingOptions { Temperature = 0, TopK = 7 };
        using var plain = JsonDocument.Parse("""{"messages":[{"role":"user","content":"hi"}]}""");
        var a = RequestReader.Chat(plain.RootElement, defaults).Sampling;
        Assert.Equal(0f, a.Temperature);
        Assert.Equal(7, a.TopK);
        using var explicitTemp = JsonDocument.Parse("""{"messages":[{"role":"user","content":"hi"}],"temperature":0.5}""");
        var b = RequestReader.Chat(explicitTemp.RootElement, defaults).Sampling;
        Assert.Equal(0.5f, b.Temperature);
        Assert.Equal(7, b.TopK);
        using var completion = JsonDocument.Parse("""{"prompt":"x"}""");
        Assert.Equal(0f, RequestReader.Completion(completion.RootElement, defaults).Sampling.Temperature);
    }

    [Fact]
    public void The_shipped_model_recommends_greedy_decoding_and_library_chats_without_options_use_it()
    {
        using var m = SputnikModel.Load(Path.Combine(Fixtures.RepoRoot, "models", "sputnik-r1-tiny.gguf"), new ModelOptions { Threads = 1 });
        Assert.Equal(0f, m.RecommendedSampling().Temperature);
        Assert.Equal(0f, m.CreateChat().Options.Sampling.Temperature);
        Assert.Equal(0.95f, m.CreateChat().Options.Sampling.TopP); // the chat defaults the file does not override stay
        Assert.Equal(0.6f, m.CreateChat(new ChatOptions()).Options.Sampling.Temperature); // explicit options win
    }
}
