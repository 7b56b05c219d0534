using Xunit;

namespace Sputnik.Tests.Server;

/// <summary>Prompt-cache snapshots beyond the slots: RAM (LRU) and disk (survives a restart of the same model).</summary>
public sealed class PromptCacheTests
{
    private const string A = "Once upon a time there was a little girl named Lily who loved to play outside";
    private const string B = "Zebras and lions went to the big park to find some food";

    private static async Task<(int Hit, int Prompt, string Text)> Ask(TestServer s, string user)
    {
        var (status, body, _) = await s.PostAsync("/v1/chat/completions", TestServer.ChatBody(user: user, maxTokens: 12));
        Assert.Equal(200, status);
        var u = body["usage"]!;
        return ((int)u["prompt_cache_hit_tokens"]!, (int)u["prompt_tokens"]!, (string)body["choices"]![0]!["message"]!["content"]!);
    }

    [Fact]
    public async Task EvictedSlotIsRestoredFromRamWithIdenticalOutput()
    {
        await using var s = await TestServer.StartAsync(o => o with { Parallel = 1, CacheRamMb = 64 });
        var first = await Ask(s, A);
        Assert.Equal(0, first.Hit);
        var other = await Ask(s, B); // overwrites the only slot; A's KV goes to the cache
        Assert.True(other.Hit < first.Prompt / 2);
        var again = await Ask(s, A);
        Assert.Equal(first.Prompt - 1, again.Hit);
        Assert.Equal(first.Text, again.Text);
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

    [Fact]
    public async Task DiskCacheSurvivesARestartOfTheSameModelOnly()
    {
        string dir = Path.Combine(Path.GetTempPath(), "sputnik-kv-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            (int Hit, int Prompt, string Text) first;
            await using (var s = await TestServer.StartAsync(o => o with { Parallel = 1, CacheDir = dir }))
                first = await Ask(s, A);
            Assert.NotEmpty(Directory.GetFiles(dir, "*.kv"));
            await using (var s = await TestServer.StartAsync(o => o with { Parallel = 1, CacheDir = dir }))
            {
                var again = await Ask(s, A);
                Assert.Equal(first.Prompt - 1, again.Hit);
                Assert.Equal(first.Text, again.Text);
            }
            // Another context length is another KV layout: the files must not be trusted.
            await using (var s = await TestServer.StartAsync(o => o with { Parallel = 1, CacheDir = dir, ContextLength = 256 }))
                Assert.Equal(0, (await Ask(s, A)).Hit);
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }
}
