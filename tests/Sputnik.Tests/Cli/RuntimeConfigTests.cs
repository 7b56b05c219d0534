using System.Text.Json;
using Xunit;

namespace Sputnik.Tests.Cli;

/// <summary>The runtime settings the sputnik command ships with (its runtimeconfig.json, built next to the tests).</summary>
public sealed class RuntimeConfigTests
{
    [Fact]
    public void Idle_thread_pool_workers_block_instead_of_spinning()
    {
        string path = Path.Combine(AppContext.BaseDirectory, "Sputnik.Cli.runtimeconfig.json");
        Assert.True(File.Exists(path), $"{path} is missing");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var properties = doc.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");
        Assert.True(properties.TryGetProperty("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit", out var limit),
            "the spin limit is not set: thread-pool workers would spin and preempt the compute threads under serve");
        Assert.Equal(0, limit.GetInt32());
    }
}
