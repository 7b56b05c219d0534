using Sputnik.Inference;
using Xunit;

namespace Sputnik.Tests.Inference;

public class SamplerTests
{
    private static float[] Logits(params float[] v) => v;

    [Fact]
    public void Greedy_picks_the_largest_logit()
    {
        var s = new Sampler(SamplingOptions.Greedy, 5);
        Assert.Equal(3, s.Sample(Logits(0, 1, 2, 5, 4), []));
    }

    [Fact]
    public void Same_seed_gives_the_same_sequence_and_different_seeds_differ()
    {
        var logits = Enumerable.Range(0, 100).Select(i => (float)Math.Sin(i) * 2).ToArray();
        int[] Draw(ulong seed)
        {
            var s = new Sampler(new SamplingOptions { Temperature = 1.5f, TopK = 0, TopP = 1, MinP = 0, Seed = seed }, 100);
            return Enumerable.Range(0, 50).Select(_ => s.Sample(logits, [])).ToArray();
        }
        Assert.Equal(Draw(7), Draw(7));
        Assert.NotEqual(Draw(7), Draw(8));
    }

    [Fact]
    public void Top_k_1_is_greedy_even_at_high_temperature()
    {
        var s = new Sampler(new SamplingOptions { Temperature = 5, TopK = 1, Seed = 1 }, 4);
        for (int i = 0; i < 20; i++) Assert.Equal(2, s.Sample(Logits(1, 2, 3, 0), []));
    }

    [Fact]
    public void Min_p_removes_unlikely_tokens()
    {
        // p(token 0) ≈ 0.99; with min_p 0.5 nothing else survives.
        var s = new Sampler(new SamplingOptions { Temperature = 1, TopK = 0, TopP = 1, MinP = 0.5f, Seed = 3 }, 3);
        for (int i = 0; i < 50; i++) Assert.Equal(0, s.Sample(Logits(10, 5, 5), []));
    }

    [Fact]
    public void Top_p_keeps_the_smallest_set_reaching_p()
    {
        // probabilities ≈ 0.665, 0.245, 0.09: top_p 0.7 keeps tokens 0 and 1 only.
        var s = new Sampler(new SamplingOptions { Temperature = 1, TopK = 0, TopP = 0.7f, MinP = 0, Seed = 5 }, 3);
        var seen = new HashSet<int>();
        for (int i = 0; i < 400; i++) seen.Add(s.Sample(Logits(2, 1, 0), []));
        Assert.Equal([0, 1], seen.Order());
    }

    [Fact]
    public void Sampling_frequencies_follow_softmax()
    {
        var s = new Sampler(new SamplingOptions { Temperature = 1, TopK = 0, TopP = 1, MinP = 0, Seed = 11 }, 2);
        int ones = 0, n = 20000;
        for (int i = 0; i < n; i++) ones += s.Sample(Logits(0, MathF.Log(3)), []);
        Assert.InRange(ones / (double)n, 0.73, 0.77); // expected 0.75
    }

    [Fact]
    public void Repeat_penalty_and_presence_penalty_change_the_choice()
    {
        var rep = new Sampler(SamplingOptions.Greedy with { RepeatPenalty = 2f }, 3);
        Assert.Equal(1, rep.Sample(Logits(3, 2, 0), [0]));
        var pres = new Sampler(SamplingOptions.Greedy with { PresencePenalty = 1.5f }, 3);
        Assert.Equal(1, pres.Sample(Logits(3, 2, 0), [0]));
        var freq = new Sampler(SamplingOptions.Greedy with { FrequencyPenalty = 0.4f }, 3);
        Assert.Equal(0, freq.Sample(Logits(3, 2, 0), [0, 0]));
        Assert.Equal(1, freq.Sample(Logits(3, 2, 0), [0, 0, 0]));
    }

    private sealed class Only(params int[] allowed) : ITokenFilter
    {
        public int Asked { get; private set; }
        public bool Allows(int token)
        {
            Asked++;
            return allowed.Contains(token);
        }
    }

    [Fact]
    public void Greedy_with_a_filter_picks_the_highest_allowed_logit()
    {
        var s = new Sampler(SamplingOptions.Greedy, 6);
        Assert.Equal(3, s.Sample(Logits(0, 9, 2, 5, 4, 5), [], new Only(0, 3, 5))); // 3 and 5 tie: the lower id wins
        Assert.Equal(0, s.Sample(Logits(0, 9, 2, 5, 4, 5), [], new Only(0)));
        Assert.Equal(-1, s.Sample(Logits(0, 9, 2, 5, 4, 5), [], new Only()));
        // When the best token is allowed, it is the only one asked about.
        var f = new Only(1);
        Assert.Equal(1, s.Sample(Logits(0, 9, 2, 5, 4, 5), [], f));
        Assert.Equal(1, f.Asked);
    }

    [Fact]
    public void Sampling_with_a_filter_draws_only_allowed_tokens_in_softmax_proportion()
    {
        // Allowed: 2 and 4, with probabilities 1:3 among themselves; the much likelier 0 is never drawn.
        var s = new Sampler(new SamplingOptions { Temperature = 1, TopK = 2, TopP = 1, MinP = 0, Seed = 5 }, 5);
        var logits = Logits(10, 9, 0, -50, MathF.Log(3));
        int fours = 0, n = 20000;
        for (int i = 0; i < n; i++)
        {
            int t = s.Sample(logits, [], new Only(2, 4));
            Assert.True(t is 2 or 4, $"drew {t}");
            if (t == 4) fours++;
        }
        Assert.InRange(fours / (double)n, 0.73, 0.77);
    }

    [Fact]
    public void Sampling_with_a_filter_applies_min_p_to_the_allowed_tokens()
    {
        // Among the allowed, token 3 is e^-5 of token 1: min-p 0.05 drops it.
        var s = new Sampler(new SamplingOptions { Temperature = 1, TopK = 0, TopP = 1, MinP = 0.05f, Seed = 1 }, 4);
        for (int i = 0; i < 200; i++) Assert.Equal(1, s.Sample(Logits(20, 5, 19, 0), [], new Only(1, 3)));
    }

    [Theory]
    [InlineData(float.NaN, 40, 0.9f, 0.1f)]
    [InlineData(1f, -1, 0.9f, 0.1f)]
    [InlineData(1f, 40, 0f, 0.1f)]
    [InlineData(1f, 40, 0.9f, 1.5f)]
    public void Invalid_options_are_rejected(float temp, int topK, float topP, float minP) =>
        Assert.Throws<ArgumentException>(() => new Sampler(new SamplingOptions { Temperature = temp, TopK = topK, TopP = topP, MinP = minP }, 10));

    /// <summary>
    /// A sampler per request must not mean fresh vocabulary-sized arrays per request: they are rented and returned,
    /// so a server's resident memory does not climb to a high-water mark of garbage large-object-heap arrays.
    /// </summary>
    [Fact]
    public void SamplersReuseTheirVocabularySizedBuffers()
    {
        const int vocab = 151_936; // Qwen2's: 0.6 MB per buffer
        var logits = new float[vocab];
        logits[42] = 100;
        var options = new SamplingOptions { Temperature = 0.7f, TopK = 0, TopP = 0.9f, MinP = 0, Seed = 1 };
        long bytes = Sputnik.Tests.Allocations.FewestBytes(() =>
        {
            using var s = new Sampler(options, vocab);
            Assert.Equal(42, s.Sample(logits, []));
        }, steps: 8);
        Assert.True(bytes < vocab, $"8 samplers allocated {bytes} bytes; their buffers are not being reused");
    }
}
