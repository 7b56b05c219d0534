using Sputnik.Gguf;
using Sputnik.Models;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>`smollm3` and `mistral3` through the engine against <see cref="TinyLlamaVariant"/>'s double-precision forward.</summary>
public class SmolLm3Mistral3Tests
{
    private static void Near(ReadOnlySpan<float> got, double[] want, string what)
    {
        for (int i = 0; i < want.Length; i++) Assert.True(Math.Abs(got[i] - want[i]) < 1e-4, $"{what} logit {i}: {got[i]} vs {want[i]}");
    }

    // 20 tokens: mistral3's temperature steps at positions 8 and 16 (original context 8).
    private static readonly int[] Tokens = Enumerable.Range(0, 20).Select(i => (i * 7 + 3) % TinyLlamaVariant.Vocab).ToArray();

    [Theory]
    [InlineData("smollm3", 1f)]
    [InlineData("mistral3", 1f)]
    [InlineData("mistral3", 0f)] // no yarn_log_multiplier: cos/sin carry YaRN's 1 + 0.1·ln(factor)
    public void Engine_logits_match_a_plain_scalar_forward_pass(string arch, float logMultiplier)
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-" + arch + "-");
        try
        {
            var (path, w) = TinyLlamaVariant.WriteModel(Path.Combine(dir.FullName, "m.gguf"), arch, logMultiplier);
            using var model = ModelLoader.Load(GgufFile.Open(path), threads: 2);
            var c = model.Config;
            Assert.Equal(arch, c.Architecture);
            Assert.False(c.RopeNeox);
            Assert.Equal(TinyLlamaVariant.HeadDim(arch), c.HeadDim);
            Assert.Equal(arch == "mistral3", c.RopeYarn);
            var state = model.CreateState(64, KvCacheType.F32);
            for (int n = 1; n <= Tokens.Length; n++)
                Near(model.Forward(state, Tokens.AsSpan(n - 1, 1)), TinyLlamaVariant.ReferenceLogits(w, arch, Tokens[..n], logMultiplier), $"pos {n - 1}");
            Near(model.Forward(model.CreateState(64, KvCacheType.F32), Tokens), TinyLlamaVariant.ReferenceLogits(w, arch, Tokens, logMultiplier), "batched");
            ((DecoderModel)model).MaxBatch = 3;
            Near(model.Forward(model.CreateState(64, KvCacheType.F32), Tokens), TinyLlamaVariant.ReferenceLogits(w, arch, Tokens, logMultiplier), "chunked");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void NoPE_layers_and_the_temperature_change_the_output()
    {
        // The reference itself must be sensitive to what the architectures add, or the comparison above proves little:
        // the same weights read as plain llama (RoPE everywhere, no YaRN, no temperature) give other logits.
        var dir = Directory.CreateTempSubdirectory("sputnik-variant-control-");
        try
        {
            foreach (string arch in new[] { "smollm3", "mistral3" })
            {
                var (path, _) = TinyLlamaVariant.WriteModel(Path.Combine(dir.FullName, arch + ".gguf"), arch);
                float[] got;
                using (var m = ModelLoader.Load(GgufFile.Open(path), threads: 2)) got = m.Forward(m.CreateState(64, KvCacheType.F32), Tokens).ToArray();
                string llama = Path.Combine(dir.FullName, arch + "-as-llama.gguf");
                Relabel(path, llama, arch);
                using var plain = ModelLoader.Load(GgufFile.Open(llama), threads: 2);
                var other = plain.Forward(plain.CreateState(64, KvCacheType.F32), Tokens).ToArray();
                Assert.True(got.Zip(other, (a, b) => Math.Abs(a - b)).Max() > 1e-2, $"{arch} ran like llama");
            }
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    /// <summary>Copies a file's tensors and llama's keys under architecture "llama".</summary>
    private static void Relabel(string from, string to, string arch)
    {
        using var f = GgufFile.Open(from);
        var g = new GgufWriter();
        g.Set("general.architecture", "llama");
        foreach (string key in new[] { "embedding_length", "block_count", "feed_forward_length", "attention.head_count", "attention.head_count_kv", "attention.key_length", "attention.value_length" })
            if (f.TryGetInt64($"{arch}.{key}", out long v)) g.Set($"llama.{key}", (uint)v);
        g.Set("llama.rope.freq_base", TinyLlamaVariant.RopeBase).Set("llama.attention.layer_norm_rms_epsilon", TinyLlamaVariant.Eps);
        foreach (var t in f.Tensors) g.AddTensor(t.Name, new WeightMatrix(f, t, mayInterleave: false).ToFloatVector(), t.Dims);
        g.Write(to);
    }

    [Theory]
    [InlineData("smollm3")]
    [InlineData("mistral3")]
    public void Multi_sequence_step_matches_each_sequence_alone(string arch)
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-" + arch + "-batch-");
        try
        {
            var (path, _) = TinyLlamaVariant.WriteModel(Path.Combine(dir.FullName, "m.gguf"), arch);
            using var model = ModelLoader.Load(GgufFile.Open(path), threads: 2);
            // Different lengths put the rows on different sides of the temperature's steps (8, 16).
            int[][] prompts = [[1, 2, 3], Tokens[..12], Tokens[..17]];
            int[] next = [4, 12, 25];
            var alone = prompts.Select((p, i) =>
            {
                var s = model.CreateState(32, KvCacheType.F32);
                model.Forward(s, p);
                return model.Forward(s, [next[i]]).ToArray();
            }).ToArray();
            var states = prompts.Select(p =>
            {
                var s = model.CreateState(32, KvCacheType.F32);
                model.Forward(s, p);
                return (InferenceState)s;
            }).ToList();
            model.ForwardBatch(states, next);
            for (int b = 0; b < states.Count; b++)
            {
                Assert.Equal(prompts[b].Length + 1, states[b].Position);
                for (int i = 0; i < TinyLlamaVariant.Vocab; i++)
                    Assert.True(Math.Abs(states[b].Logits[i] - alone[b][i]) < 1e-5, $"sequence {b} logit {i}: {states[b].Logits[i]} vs {alone[b][i]}");
            }
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData("smollm3")]
    [InlineData("mistral3")]
    public void Decode_allocates_nothing_once_warm(string arch)
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-" + arch + "-alloc-");
        try
        {
            var (path, _) = TinyLlamaVariant.WriteModel(Path.Combine(dir.FullName, "m.gguf"), arch);
            using var m = ModelLoader.Load(GgufFile.Open(path), threads: 2);
            var s = m.CreateState(256, KvCacheType.F16);
            m.Forward(s, [1, 2, 3, 4]);
            int[] token = [7];
            for (int i = 0; i < 5; i++) m.Forward(s, token);
            Assert.Equal(0, Allocations.FewestBytes(() => m.Forward(s, token), steps: 30));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Mistral3_with_experts_is_refused_by_name()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-mistral3-moe-");
        try
        {
            var g = new GgufWriter();
            g.Set("general.architecture", "mistral3").Set("mistral3.attention.head_count", 2u).Set("mistral3.block_count", 1u)
                .Set("mistral3.feed_forward_length", 16u).Set("mistral3.expert_count", 8u).Set("mistral3.expert_used_count", 2u);
            g.AddTensor("token_embd.weight", new float[8 * 4], 8, 4);
            string path = Path.Combine(dir.FullName, "moe.gguf");
            g.Write(path);
            var e = Assert.Throws<UnsupportedModelException>(() => ModelLoader.Load(GgufFile.Open(path), threads: 1).Dispose());
            Assert.Contains("routed experts", e.Message);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Query_temperature_is_one_inside_the_original_context()
    {
        var t = new QueryTemperature(0.1f, 16384);
        Assert.Equal(1f, t.Factor(0));
        Assert.Equal(1f, t.Factor(16383));
        Assert.Equal((float)(1 + 0.1 * Math.Log(2)), t.Factor(16384));
        Assert.Equal((float)(1 + 0.1 * Math.Log(5)), t.Factor(4 * 16384 + 7));
    }
}
