using System.Text;
using Sputnik.Server;
using Sputnik.Server.Routing;
using Xunit;

namespace Sputnik.Tests.Server.Routing;

/// <summary>The pieces of prefix routing without servers: prompt blocks, the ring with bounded loads, the metrics reader.</summary>
public sealed class RoutingUnitTests
{
    private static byte[] Chat(params (string Role, string Content)[] messages) => Encoding.UTF8.GetBytes(
        "{\"model\":\"m\",\"messages\":[" + string.Join(',', messages.Select(m => $"{{\"role\":\"{m.Role}\",\"content\":{System.Text.Json.JsonSerializer.Serialize(m.Content)}}}")) + "]}");

    [Fact]
    public void A_later_turn_extends_the_blocks_of_the_earlier_one_and_keeps_its_key()
    {
        string opening = "Tell me about the orbit of the moon and the comets that cross it, please, in detail.";
        string answer = new('x', 150);
        var turn1 = PromptBlocks.From("/v1/chat/completions", null, Chat(("system", "You are helpful."), ("user", opening)), 64, 256);
        var turn2 = PromptBlocks.From("/v1/chat/completions", null, Chat(("system", "You are helpful."), ("user", opening), ("assistant", answer), ("user", "And then?")), 64, 256);
        var other = PromptBlocks.From("/v1/chat/completions", null, Chat(("system", "You are helpful."), ("user", "Something else entirely, about rockets and fuel.")), 64, 256);
        Assert.NotEqual(0UL, turn1.Key);
        Assert.Equal(turn1.Key, turn2.Key);
        Assert.NotEqual(turn1.Key, other.Key);
        Assert.True(turn2.Blocks.Length > turn1.Blocks.Length);
        Assert.Equal(turn1.Blocks, turn2.Blocks[..turn1.Blocks.Length]);
        // The conversation header wins over the prompt; Ollama's /api/chat reads the same way; bad JSON has no key.
        Assert.Equal(PromptBlocks.From("/v1/chat/completions", "c-1", Chat(("user", "a")), 64, 256).Key, PromptBlocks.From("/api/chat", "c-1", Chat(("user", "b")), 64, 256).Key);
        Assert.Equal(turn1.Blocks, PromptBlocks.From("/api/chat", null, Chat(("system", "You are helpful."), ("user", opening)), 64, 256).Blocks);
        Assert.Equal(0UL, PromptBlocks.From("/v1/chat/completions", null, "{not json"u8.ToArray(), 64, 256).Key);
        Assert.Equal(0UL, PromptBlocks.From("/v1/embeddings", null, Chat(("user", opening)), 64, 256).Key);
    }

    [Fact]
    public void The_index_matches_the_longest_prefix_sent_and_forgets_the_least_recent()
    {
        var index = new PrefixIndex(capacity: 4);
        index.Add([1, 2, 3]);
        Assert.Equal(3, index.Match([1, 2, 3, 9]));
        Assert.Equal(0, index.Match([9, 8]));
        index.Add([5, 6]);
        Assert.Equal(4, index.Count);
        Assert.Equal(0, index.Match([1])); // the oldest block went first
        Assert.Equal(2, index.Match([5, 6, 7]));
    }

    [Fact]
    public void The_ring_spreads_keys_moves_only_a_lost_replicas_share_and_bounds_loads()
    {
        var urls = Enumerable.Range(0, 3).Select(i => new Uri($"http://127.0.0.1:{9100 + i}/")).ToList();
        var replicas = urls.Select(u => new Replica(u, 1000)).ToList();
        foreach (var r in replicas) r.MarkUp(new LoadReading(0, 0, 0));
        var picker = new ReplicaPicker(replicas, RoutingPolicy.Prefix, loadFactor: 1.5);
        var keys = Enumerable.Range(0, 3000).Select(i => new PromptBlocks([], PromptBlocks.Mix((ulong)i + 1), 0)).ToList();
        var placed = keys.Select(k => picker.Pick(k, [])!.Value.Replica).ToList();
        foreach (var r in replicas)
        {
            int n = placed.Count(p => p == r);
            Assert.True(n is > 700 and < 1300, $"{r.Name} got {n} of 3000 keys");
        }
        // One replica down: only its keys move.
        replicas[1].MarkDown("test", requestFailed: false);
        var moved = keys.Select(k => picker.Pick(k, [])!.Value.Replica).ToList();
        for (int i = 0; i < keys.Count; i++)
            if (placed[i] != replicas[1]) Assert.Same(placed[i], moved[i]);
        // Bounded loads: a key's replica full of requests in flight sends it along the ring.
        replicas[1].MarkUp(new LoadReading(0, 0, 0));
        var key = keys[0];
        var home = picker.Pick(key, [])!.Value.Replica;
        for (int i = 0; i < 4; i++) home.Begin();
        var spilled = picker.Pick(key, [])!.Value;
        Assert.NotSame(home, spilled.Replica);
        Assert.Equal(ReplicaPicker.Reason.Ring, spilled.Why);
        // Tried replicas are skipped; with all tried there is nothing left.
        Assert.Null(picker.Pick(key, replicas));
    }

    [Fact]
    public void The_metrics_reader_takes_vllm_style_text_and_names_a_bad_line()
    {
        string text = "# HELP vllm:num_requests_waiting Requests waiting.\n# TYPE vllm:num_requests_waiting gauge\n" +
            "vllm:num_requests_waiting{model_name=\"a \\\"b\\\"\",engine=\"0\"} 3\nvllm:num_requests_waiting{model_name=\"c\"} 2 1700000000000\n" +
            "# a free comment\nvllm:kv_cache_usage_perc 0.25\nsputnik_x NaN\nsputnik_y +Inf\n";
        var samples = PrometheusText.Parse(text);
        Assert.Equal(5, PrometheusText.Sum(samples, "vllm:num_requests_waiting"));
        Assert.Equal("a \"b\"", samples[0].Labels["model_name"]);
        Assert.Equal(0.25, PrometheusText.Sum(samples, "vllm:kv_cache_usage_perc"));
        Assert.True(double.IsPositiveInfinity(samples.Single(s => s.Name == "sputnik_y").Value));
        var ex = Assert.Throws<FormatException>(() => PrometheusText.Parse("ok 1\nbad{x=1} 2\n"));
        Assert.Contains("line 2", ex.Message);
        Assert.Throws<FormatException>(() => PrometheusText.Parse("# TYPE m sometimes\n"));
        Assert.Throws<FormatException>(() => PrometheusText.Parse("m one\n"));
        Assert.Equal("{a=\"x\\\\y\\\"z\\n\"}", PrometheusText.Labels(("a", "x\\y\"z\n")));
    }
}
