using Sputnik.Gguf;
using Sputnik.Models;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>`qwen3` and `qwen3moe` through the engine against <see cref="TinyQwen3"/>'s double-precision forward pass.</summary>
public class TinyQwen3Tests
{
    private static void Near(ReadOnlySpan<float> got, double[] want, string what)
    {
        for (int i = 0; i < want.Length; i++) Assert.True(Math.Abs(got[i] - want[i]) < 1e-4, $"{what} logit {i}: {got[i]} vs {want[i]}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Engine_logits_match_a_plain_scalar_forward_pass(bool moe)
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-qwen3-");
        try
        {
            var (path, w) = TinyQwen3.WriteModel(Path.Combine(dir.FullName, "m.gguf"), moe);
            int[] tokens = [3, 17, 5, 39, 0, 22, 8, 11, 30];
            using var model = ModelLoader.Load(GgufFile.Open(path), threads: 2);
            var c = model.Config;
            Assert.Equal(moe ? "qwen3moe" : "qwen3", c.Architecture);
            Assert.True(c.QkNorm && c.RopeNeox);
            Assert.Equal(TinyQwen3.HeadDim, c.HeadDim);
            Assert.Equal(TinyQwen3.Heads * TinyQwen3.HeadDim, c.QDim);
            if (moe)
            {
                Assert.Equal(TinyQwen3.Experts, c.Moe!.ExpertCount);
                Assert.Equal(TinyQwen3.ExpertsUsed, c.Moe.ExpertsUsed);
                Assert.Equal(TinyQwen3.ExpertFfn, c.ExpertFfnDim);
                Assert.True(c.Moe.ExpertWeightsNorm);
            }
            else
            {
                Assert.Null(c.Moe);
            }
            // Decode one token at a time (every position checked), then the whole prompt as one batch.
            var state = model.CreateState(64, KvCacheType.F32);
            for (int n = 1; n <= tokens.Length; n++)
                Near(model.Forward(state, tokens.AsSpan(n - 1, 1)), TinyQwen3.ReferenceLogits(w, tokens[..n], moe), $"pos {n - 1}");
            Near(model.Forward(model.CreateState(64, KvCacheType.F32), tokens), TinyQwen3.ReferenceLogits(w, tokens, moe), "batched");
            // A prompt split over several prefill chunks.
            ((DecoderModel)model).MaxBatch = 4;
            Near(model.Forward(model.CreateState(64, KvCacheType.F32), tokens), TinyQwen3.ReferenceLogits(w, tokens, moe), "chunked");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Yarn_context_extension_matches_the_reference()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-qwen3-yarn-");
        try
        {
            var (path, w) = TinyQwen3.WriteModel(Path.Combine(dir.FullName, "m.gguf"), moe: false, yarn: 4f);
            using var model = ModelLoader.Load(GgufFile.Open(path), threads: 2);
            Assert.True(model.Config.RopeYarn);
            Assert.Equal(TinyQwen3.YarnOriginalContext, model.Config.RopeOriginalContext);
            // Long enough that the interpolated pairs' angles differ visibly from plain RoPE.
            int[] tokens = Enumerable.Range(0, 40).Select(i => (i * 7 + 3) % TinyQwen3.Vocab).ToArray();
            var got = model.Forward(model.CreateState(64, KvCacheType.F32), tokens).ToArray();
            Near(got, TinyQwen3.ReferenceLogits(w, tokens, moe: false, yarn: 4f), "yarn");
            var plain = TinyQwen3.ReferenceLogits(w, tokens, moe: false);
            Assert.True(Enumerable.Range(0, TinyQwen3.Vocab).Max(i => Math.Abs(got[i] - plain[i])) > 1e-2, "YaRN made no difference");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Multi_sequence_step_matches_each_sequence_alone(bool moe)
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-qwen3-batch-");
        try
        {
            var (path, _) = TinyQwen3.WriteModel(Path.Combine(dir.FullName, "m.gguf"), moe);
            using var model = ModelLoader.Load(GgufFile.Open(path), threads: 2);
            int[][] prompts = [[1, 2, 3], [9, 8, 7, 6, 5], [33]];
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
                for (int i = 0; i < TinyQwen3.Vocab; i++)
                    Assert.True(Math.Abs(states[b].Logits[i] - alone[b][i]) < 1e-4, $"sequence {b} logit {i}: {states[b].Logits[i]} vs {alone[b][i]}");
            }
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Moe_decode_allocates_nothing_once_warm()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-qwen3-alloc-");
        try
        {
            var (path, _) = TinyQwen3.WriteModel(Path.Combine(dir.FullName, "m.gguf"), moe: true);
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
    public void Missing_expert_count_is_named()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-qwen3-bad-");
        try
        {
            var g = new GgufWriter();
            g.Set("general.architecture", "qwen3moe").Set("qwen3moe.attention.head_count", 2u).Set("qwen3moe.block_count", 1u)
                .Set("qwen3moe.feed_forward_length", 16u);
            g.AddTensor("token_embd.weight", new float[8 * 4], 8, 4);
            string path = Path.Combine(dir.FullName, "bad.gguf");
            g.Write(path);
            var e = Assert.Throws<GgufFormatException>(() => ModelLoader.Load(GgufFile.Open(path), threads: 1).Dispose());
            Assert.Contains("qwen3moe.expert_count", e.Message);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
