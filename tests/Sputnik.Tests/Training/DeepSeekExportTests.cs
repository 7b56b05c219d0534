using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Training;
using Sputnik.Training.Tasks;
using Xunit;

namespace Sputnik.Tests.Training;

/// <summary>
/// The DeepSeek-layout training model (MLA + MoE, preset tiny-r1-ds) exported as a `deepseek2` GGUF: Sputnik's
/// inference engine (DeepSeek2, absorbed MLA with a latent cache, MoeRouter) must give the training forward's logits
/// at every position and the same greedy continuation, and the file must read back into the same training model.
/// </summary>
public class DeepSeekExportTests
{
    // Float32 with different summation orders (absorbed MLA over the latent cache vs the training's decompressed
    // keys, per-token vs batched matmuls) agrees to < 3e-6 here; a wrong layout, a lost selection bias or a wrong
    // routing weight moves logits by O(0.01–1).
    private const float Tol = 3e-5f;

    private static TransformerModel RandomDsModel()
    {
        var c = TrainConfig.Preset("tiny-r1-ds", R1Format.Tokenizer.VocabSize);
        var m = new TransformerModel(c, seed: 9);
        var rng = new Random(3);
        // larger-than-init weights so every term matters, and a selection bias that changes which experts win
        for (int i = 0; i < m.P.Count; i++) m.P.Data[i] += (float)(rng.NextDouble() - 0.5) * 0.2f;
        foreach (var moe in m.MoeLayers)
            for (int e = 0; e < moe.Experts; e++) moe.Bias[e] = (float)(rng.NextDouble() - 0.5) * 0.3f;
        return m;
    }

    private static void AssertClose(ReadOnlySpan<float> inference, ReadOnlySpan<float> train, string where)
    {
        for (int v = 0; v < train.Length; v++)
            Assert.True(Math.Abs(inference[v] - train[v]) < Tol, $"{where} token {v}: inference {inference[v]} vs training {train[v]}");
    }

    [Fact]
    public void ExportedDeepSeek2GivesTheTrainingForwardLogitsAndGreedyTokens()
    {
        var m = RandomDsModel();
        var c = m.Config;
        int V = c.VocabSize;
        string path = Path.Combine(Path.GetTempPath(), $"sputnik-export-ds-{Environment.ProcessId}.gguf");
        try
        {
            GgufExport.Write(m, path);
            using (var f = GgufFile.Open(path))
            {
                Assert.Equal("deepseek2", f.Architecture);
                var dc = DeepSeek2Config.FromGguf(f);
                Assert.Equal((0, 64, 16, 16, 32), (dc.QLoraRank, dc.KvLoraRank, dc.QkNopeDim, dc.QkRopeDim, dc.VHeadDim));
                Assert.Equal((1, 8, 2, 1, 48), (dc.LeadingDenseLayers, dc.ExpertCount, dc.ExpertsUsed, dc.SharedExperts, dc.ExpertFfnDim));
                Assert.Equal(ExpertGating.Sigmoid, dc.Gating);
                Assert.True(dc.ExpertWeightsNorm);
                Assert.NotNull(f.FindTensor("blk.1.exp_probs_b.bias"));
                Assert.Null(f.FindTensor("blk.0.attn_kv_b.weight")); // split into attn_k_b / attn_v_b
            }
            using var lm = ModelLoader.Load(GgufFile.Open(path), threads: 1);
            Assert.IsType<DeepSeek2>(lm);
            int routedDiffer = 0;
            foreach (string question in new[] { "What is 347 * 28?", "Compute 5 plus 9.", "Reach 24 with 3, 4, 2." })
            {
                var prompt = R1Format.EncodePrompt(question);
                var seq = prompt.ToList();
                // every prompt position, token by token (decode path, F32 latent cache for an exact comparison)
                m.Forward(prompt, Enumerable.Repeat(-1, prompt.Length).ToArray(), 1, prompt.Length);
                var train = m.Logits.ToArray();
                var state = lm.CreateState(c.ContextLength, KvCacheType.F32);
                ReadOnlySpan<float> logits = default;
                for (int t = 0; t < prompt.Length; t++)
                {
                    logits = lm.Forward(state, prompt.AsSpan(t, 1));
                    AssertClose(logits, train.AsSpan(t * V, V), $"'{question}' pos {t}");
                }
                // the whole prompt at once (batched prefill path)
                var batched = lm.Forward(lm.CreateState(c.ContextLength, KvCacheType.F32), prompt);
                AssertClose(batched, train.AsSpan((prompt.Length - 1) * V, V), $"'{question}' prefill");
                // greedy: the training forward re-run on the whole sequence vs the engine's cached decode
                var engineTokens = new List<int>();
                var trainTokens = new List<int>();
                for (int step = 0; step < 24; step++)
                {
                    int next = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits);
                    engineTokens.Add(next);
                    m.Forward(seq.ToArray(), Enumerable.Repeat(-1, seq.Count).ToArray(), 1, seq.Count);
                    var last = m.Logits.Slice((seq.Count - 1) * V, V);
                    trainTokens.Add(System.Numerics.Tensors.TensorPrimitives.IndexOfMax(last));
                    AssertClose(logits, last, $"'{question}' greedy step {step}");
                    seq.Add(next);
                    logits = lm.Forward(state, new[] { next });
                }
                Assert.Equal(trainTokens, engineTokens);
                routedDiffer += m.MoeLayers.Count(moe => moe.Load.Count(l => l > 0) > 2);
            }
            Assert.True(routedDiffer > 0, "routing never spread over more than the top-k experts: the MoE path is not exercised");

            var back = GgufExport.Read(path);
            Assert.Equal(c, back.Config);
            Assert.Equal(m.P.Data, back.P.Data);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void TinyR1DsIsComparableInSizeToTinyR1()
    {
        int v = R1Format.Tokenizer.VocabSize;
        int dense = new TransformerModel(TrainConfig.Preset("tiny-r1", v)).P.Count;
        var ds = new TransformerModel(TrainConfig.Preset("tiny-r1-ds", v));
        Assert.InRange(ds.P.Count, 0.8 * dense, 1.25 * dense);
        Assert.Equal(3, ds.MoeLayers.Count()); // layer 0 dense, layers 1-3 MoE
    }
}
