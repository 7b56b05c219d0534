using Sputnik.Server;
using Xunit;

namespace Sputnik.Tests.Server;

/// <summary>
/// Prompt-cache snapshots beyond the slots: RAM (LRU) and disk (survives a restart of the same model), for a
/// K/V cache (stories260K, llama) and an MLA latent cache (deepseek2-tiny).
/// </summary>
public sealed class PromptCacheTests
{
    private static ServerOptions On(string model, ServerOptions o) =>
        model == "deepseek2-tiny" ? o with { ModelPath = TinyDeepSeek2File.Path, ModelAlias = "stories260K" } : o;

    private const string A = "Once upon a time there was a little girl named Lily who loved to play outside";
    private const string B = "Zebras and lions went to the big park to find some food";

    private static async Task<(int Hit, int Prompt, string Text)> Ask(TestServer s, string user)
    {
        var (status, body, _) = await s.PostAsync("/v1/chat/completions", TestServer.ChatBody(user: user, maxTokens: 12));
        Assert.Equal(200, status);
        var u = body["usage"]!;
        return ((int)u["prompt_cache_hit_tokens"]!, (int)u["prompt_tokens"]!, (string)body["choices"]![0]!["message"]!["content"]!);
    }

    [Theory]
    [InlineData("stories260K")]
    [InlineData("deepseek2-tiny")]
    public async Task EvictedSlotIsRestoredFromRamWithIdenticalOutput(string model)
    {
        await using var s = await TestServer.StartAsync(o => On(model, o with { Parallel = 1, CacheRamMb = 64 }));
        var first = await Ask(s, A);
        Assert.Equal(0, first.Hit);
        var other = await Ask(s, B); // overwrites the only slot; A's KV goes to the cache
        Assert.True(other.Hit < first.Prompt / 2);
        var again = await Ask(s, A);
        Assert.Equal(first.Prompt - 1, again.Hit);
        Assert.Equal(first.Text, again.Text);
    }

    /// <summary>
    /// --cache-ram takes fractions of a MB and bounds the snapshots to the byte: a cap of exactly the first prompt's
    /// snapshot keeps it, one byte less keeps nothing (what the routing replay relies on to size a replica's cache).
    /// </summary>
    [Fact]
    public async Task A_fractional_cache_ram_bounds_the_snapshots_to_the_byte()
    {
        long bytesPerToken;
        using (var model = Sputnik.SputnikModel.Load(TestServer.ModelPath))
        {
            var rows = model.CreateState().Rows!;
            bytesPerToken = rows.PositionBytes; // what the prompt cache charges a token
        }
        async Task<double> RamTokensAfterTwoPrompts(double cacheRamMb)
        {
            await using var s = await TestServer.StartAsync(o => o with { Parallel = 1, CacheRamMb = cacheRamMb });
            await Ask(s, A);
            await Ask(s, B); // overwrites the only slot: A's KV is offered to the cache
            var samples = PrometheusText.Parse(await s.Client.GetStringAsync("/metrics", TestContext.Current.CancellationToken));
            return samples.Single(x => x.Name == "sputnik_prompt_cache_tokens" && x.Labels.GetValueOrDefault("where") == "ram").Value;
        }
        double held = await RamTokensAfterTwoPrompts(64);
        Assert.True(held > 0, "64 MB kept no snapshot");
        const double Mib = 1024 * 1024; // both caps below are exact in binary floating point
        Assert.Equal(held, await RamTokensAfterTwoPrompts(held * bytesPerToken / Mib));
        Assert.Equal(0, await RamTokensAfterTwoPrompts((held * bytesPerToken - 1) / Mib));
    }

    [Fact]
    public async Task NoCacheMeansNoRestore()
    {
        await using var s = await TestServer.StartAsync(o => o with { Parallel = 1, CacheRamMb = 0 });
        var first = await Ask(s, A);
        await Ask(s, B);
        var again = await Ask(s, A);
        Assert.True(again.Hit < first.Prompt / 2);
        Assert.Equal(first.Text, again.Text);
    }

    [Theory]
    [InlineData("stories260K")]
    [InlineData("deepseek2-tiny")]
    public async Task DiskCacheSurvivesARestartOfTheSameModelOnly(string model)
    {
        string dir = Path.Combine(Path.GetTempPath(), "sputnik-kv-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            (int Hit, int Prompt, string Text) first;
            await using (var s = await TestServer.StartAsync(o => On(model, o with { Parallel = 1, CacheDir = dir })))
                first = await Ask(s, A);
            Assert.NotEmpty(Directory.GetFiles(dir, "*.kv"));
            await using (var s = await TestServer.StartAsync(o => On(model, o with { Parallel = 1, CacheDir = dir })))
            {
                var again = await Ask(s, A);
                Assert.Equal(first.Prompt - 1, again.Hit);
                Assert.Equal(first.Text, again.Text);
            }
            // Another context length is another KV layout: the files must not be trusted.
            await using (var s = await TestServer.StartAsync(o => On(model, o with { Parallel = 1, CacheDir = dir, ContextLength = 256 })))
                Assert.Equal(0, (await Ask(s, A)).Hit);
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>
    /// A prompt that shares only a prefix with an evicted entry gets that prefix restored (a partial restore of the
    /// snapshot), prefills the rest in chunks, and answers exactly as a server with no cache and no chunking.
    /// </summary>
    [Theory]
    [InlineData("stories260K")]
    [InlineData("deepseek2-tiny")]
    public async Task SharedPrefixIsRestoredAndTheRestPrefilledInChunks(string model)
    {
        string longer = A + " and swim in the lake with her friends every day";
        (int Hit, int Prompt, string Text) cold, first, warm;
        await using (var s = await TestServer.StartAsync(o => On(model, o with { Parallel = 1, CacheRamMb = 0, PrefillChunk = 0 })))
            cold = await Ask(s, longer);
        await using (var s = await TestServer.StartAsync(o => On(model, o with { Parallel = 1, CacheRamMb = 64, PrefillChunk = 4 })))
        {
            first = await Ask(s, A);
            await Ask(s, B); // evicts A into the cache
            warm = await Ask(s, longer);
        }
        Assert.Equal(0, cold.Hit);
        Assert.True(warm.Hit >= first.Prompt / 2, $"{warm.Hit} of {warm.Prompt} prompt tokens came from the cache");
        Assert.True(warm.Hit < first.Prompt, "only the shared prefix can be a hit");
        Assert.True(warm.Prompt - warm.Hit > 4, "the rest spans several chunks");
        Assert.Equal(cold.Prompt, warm.Prompt);
        Assert.Equal(cold.Text, warm.Text);
    }
}
