using Sputnik.Gguf;
using Sputnik.Models;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>`phi3` through the engine against <see cref="TinyPhi3"/>'s double-precision forward pass.</summary>
public class TinyPhi3Tests
{
    private static void Near(ReadOnlySpan<float> got, double[] want, string what)
    {
        for (int i = 0; i < want.Length; i++) Assert.True(Math.Abs(got[i] - want[i]) < 1e-4, $"{what} logit {i}: {got[i]} vs {want[i]}");
    }

    private static T WithModel<T>(Func<string, TinyDeepSeek2Tests.Weights, T> body, bool fused = true)
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-phi3-");
        try
        {
            var (path, w) = TinyPhi3.WriteModel(Path.Combine(dir.FullName, "m.gguf"), fused: fused);
            return body(path, w);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Engine_logits_match_a_plain_scalar_forward_pass(bool fused) => WithModel((path, w) =>
    {
        int[] tokens = [3, 17, 5, 39, 0, 22, 8, 11, 30];
        using var model = ModelLoader.Load(GgufFile.Open(path), threads: 2);
        var c = model.Config;
        Assert.Equal("phi3", c.Architecture);
        Assert.True(c.RopeNeox);
        Assert.Equal((TinyPhi3.HeadDim, TinyPhi3.RopeDims, TinyPhi3.OriginalContext), (c.HeadDim, c.RopeDims, c.RopeOriginalContext));
        Assert.Equal(TinyPhi3.AttnFactor, ((Phi3Decoder)model).AttnFactor);
        // A context within the original one: the short factors. Every position decoded one at a time, then the
        // prompt as one batch and in prefill chunks.
        const int ctx = TinyPhi3.OriginalContext;
        var state = model.CreateState(ctx, KvCacheType.F32);
        for (int n = 1; n <= tokens.Length; n++)
            Near(model.Forward(state, tokens.AsSpan(n - 1, 1)), TinyPhi3.ReferenceLogits(w, tokens[..n], ctx), $"pos {n - 1}");
        Near(model.Forward(model.CreateState(ctx, KvCacheType.F32), tokens), TinyPhi3.ReferenceLogits(w, tokens, ctx), "batched");
        ((DecoderModel)model).MaxBatch = 4;
        Near(model.Forward(model.CreateState(ctx, KvCacheType.F32), tokens), TinyPhi3.ReferenceLogits(w, tokens, ctx), "chunked");
        return 0;
    }, fused);

    [Fact]
    public void Context_past_the_original_takes_the_long_factors() => WithModel((path, w) =>
    {
        using var model = ModelLoader.Load(GgufFile.Open(path), threads: 2);
        int[] tokens = Enumerable.Range(0, 30).Select(i => (i * 7 + 3) % TinyPhi3.Vocab).ToArray();
        const int shortCtx = TinyPhi3.OriginalContext, longCtx = TinyPhi3.OriginalContext + 1;
        var atShort = model.Forward(model.CreateState(shortCtx, KvCacheType.F32), tokens).ToArray();
        var atLong = model.Forward(model.CreateState(longCtx, KvCacheType.F32), tokens).ToArray();
        Near(atShort, TinyPhi3.ReferenceLogits(w, tokens, shortCtx), "short factors");
        Near(atLong, TinyPhi3.ReferenceLogits(w, tokens, longCtx), "long factors");
        Assert.True(Enumerable.Range(0, TinyPhi3.Vocab).Max(i => Math.Abs(atShort[i] - atLong[i])) > 1e-2, "long and short factors gave the same logits");
        return 0;
    });

    [Fact]
    public void Multi_sequence_step_is_bit_identical_to_each_sequence_alone() => WithModel((path, _) =>
    {
        using var model = ModelLoader.Load(GgufFile.Open(path), threads: 2);
        int[][] prompts = [[1, 2, 3], [9, 8, 7, 6, 5], [33]];
        int[] next = [4, 12, 25];
        // Mixed contexts: the middle sequence runs with the long factors, the others with the short ones.
        int[] contexts = [24, 40, 16];
        var alone = prompts.Select((p, i) =>
        {
            var s = model.CreateState(contexts[i], KvCacheType.F32);
            model.Forward(s, p);
            return model.Forward(s, [next[i]]).ToArray();
        }).ToArray();
        var states = prompts.Select((p, i) =>
        {
            var s = model.CreateState(contexts[i], KvCacheType.F32);
            model.Forward(s, p);
            return (InferenceState)s;
        }).ToList();
        model.ForwardBatch(states, next);
        for (int b = 0; b < states.Count; b++)
        {
            Assert.Equal(prompts[b].Length + 1, states[b].Position);
            Assert.Equal(alone[b], states[b].Logits.ToArray());
        }
        return 0;
    });

    [Fact]
    public void Fused_tensors_quantized_give_the_same_logits_as_separate_ones()
    {
        // Row views of a fused tensor must read exactly the rows separate tensors hold, in every layout: Q8_0
        // matrices are re-laid 16 rows at a time on AVX-512 machines, views included.
        var dir = Directory.CreateTempSubdirectory("sputnik-phi3-q-");
        try
        {
            int[] tokens = [3, 17, 5, 39, 0, 22, 8, 11, 30];
            float[] Run(bool fused, Sputnik.Tools.FileType type)
            {
                string f32 = Path.Combine(dir.FullName, $"{fused}.gguf"), q = Path.Combine(dir.FullName, $"{fused}-{type}.gguf");
                TinyPhi3.WriteModel(f32, fused: fused);
                Sputnik.Tools.GgufQuantizer.Quantize(f32, q, type, threads: 2);
                using var m = ModelLoader.Load(GgufFile.Open(q), threads: 2);
                return m.Forward(m.CreateState(TinyPhi3.OriginalContext, KvCacheType.F32), tokens).ToArray();
            }
            // Q8_0 gives every matrix the same type, fused or not (Q4_K_M gives attn_qkv attn_v's rule, so a fused file's types differ from a split one's).
            Assert.Equal(Run(fused: false, Sputnik.Tools.FileType.Q8_0), Run(fused: true, Sputnik.Tools.FileType.Q8_0));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Decode_allocates_nothing_once_warm() => WithModel((path, _) =>
    {
        using var m = ModelLoader.Load(GgufFile.Open(path), threads: 2);
        var s = m.CreateState(128, KvCacheType.F16);
        m.Forward(s, [1, 2, 3, 4]);
        int[] token = [7];
        for (int i = 0; i < 5; i++) m.Forward(s, token);
        Assert.Equal(0, Allocations.FewestBytes(() => m.Forward(s, token), steps: 30));
        return 0;
    });

    [Fact]
    public void Wrong_sized_fused_tensor_and_bad_factors_are_named()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-phi3-bad-");
        try
        {
            GgufWriter Base(int qkvRows, float[] longFactors)
            {
                const string a = "phi3";
                var g = new GgufWriter();
                g.Set("general.architecture", a).Set($"{a}.attention.head_count", 2u).Set($"{a}.attention.head_count_kv", 2u)
                    .Set($"{a}.block_count", 1u).Set($"{a}.feed_forward_length", 16u).Set($"{a}.embedding_length", 8u)
                    .Set($"{a}.rope.scaling.original_context_length", 16u);
                g.AddTensor("rope_factors_long.weight", longFactors, longFactors.Length);
                g.AddTensor("token_embd.weight", new float[8 * 4], 8, 4);
                g.AddTensor("output_norm.weight", new float[8], 8);
                g.AddTensor("blk.0.attn_norm.weight", new float[8], 8);
                g.AddTensor("blk.0.attn_qkv.weight", new float[8 * qkvRows], 8, qkvRows);
                g.AddTensor("blk.0.attn_output.weight", new float[64], 8, 8);
                g.AddTensor("blk.0.ffn_norm.weight", new float[8], 8);
                g.AddTensor("blk.0.ffn_up.weight", new float[8 * 32], 8, 32);
                g.AddTensor("blk.0.ffn_down.weight", new float[16 * 8], 16, 8);
                return g;
            }
            string path = Path.Combine(dir.FullName, "bad.gguf");
            Base(qkvRows: 20, [1f, 1f]).Write(path);
            var e = Assert.Throws<GgufFormatException>(() => ModelLoader.Load(GgufFile.Open(path), threads: 1).Dispose());
            Assert.Contains("blk.0.attn_qkv.weight", e.Message);
            Assert.Contains("[8, 24]", e.Message);

            string nan = Path.Combine(dir.FullName, "nan.gguf");
            Base(qkvRows: 24, [1f, float.NaN]).Write(nan);
            e = Assert.Throws<GgufFormatException>(() => ModelLoader.Load(GgufFile.Open(nan), threads: 1).Dispose());
            Assert.Contains("LongRoPE factor", e.Message);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
