using System.Numerics.Tensors;
using Sputnik.Gguf;
using Sputnik.Inference;
using Sputnik.Models;
using Sputnik.Tools;
using Sputnik.Training;
using Sputnik.Training.Tasks;
using Xunit;

namespace Sputnik.Tests.Training;

/// <summary>
/// DeepSeek-V3's Multi-Token Prediction module end to end: its gradients against finite differences (joint and
/// with the trunk frozen), the export in llama.cpp's nextn layout read back by the engine (same main logits, the
/// head's logits equal the training module's), and <c>--spec-type mtp</c> leaving the output unchanged.
/// </summary>
public class MtpTests
{
    private static DeepSeek2Config SmallMtp => TrainConfig.DeepSeek(vocab: 11, dim: 16, layers: 2, heads: 2, ffn: 24, maxSeq: 8,
        kvLoraRank: 8, qkNopeDim: 4, qkRopeDim: 4, vHeadDim: 6, experts: 4, expertsUsed: 2, expertFfn: 6,
        leadingDense: 1, sharedExperts: 1, routeScale: 1.5f) with { NextnLayers = 1 };

    [Fact]
    public void Gradients_of_the_joint_loss_match_finite_differences()
    {
        var c = SmallMtp;
        var m = new TransformerModel(c, seed: 3) { MtpWeight = 0.3f };
        Assert.NotNull(m.Mtp);
        var rng = new Random(12);
        GradCheckTests.Rand(rng, m.P.Count, 0.3f).CopyTo(m.P.Data, 0);
        int b = 2, t = 5;
        var tokens = Enumerable.Range(0, b * t).Select(_ => rng.Next(c.VocabSize)).ToArray();
        var targets = Enumerable.Range(0, b * t).Select(i => i % 3 == 0 ? -1 : rng.Next(c.VocabSize)).ToArray();
        int counted = targets.Count(x => x >= 0);
        // The loss Backward differentiates: mean main loss + λ·Σ MTP losses / (main rows counted).
        double L()
        {
            double main = m.Forward(tokens, targets, b, t), extra = 0;
            for (int r = 0; r < b * t; r++) if (m.Mtp!.Targets[r] >= 0) extra += m.Mtp.Losses[r];
            return main + m.MtpWeight * extra / counted;
        }
        m.Forward(tokens, targets, b, t);
        Assert.True(m.MtpLoss > 0);
        m.P.ZeroGrad();
        m.Backward(m.MeanLossWeights());
        Assert.Contains(m.P.Slices, s => s.Name == "blk.2.nextn.eh_proj.weight");
        foreach (var s in m.P.Slices) GradCheckTests.Check("mtp." + s.Name, m.P.Data, m.P.G(s), L, samples: 6, h: 5e-4f, offset: s.Offset);
    }

    [Fact]
    public void A_frozen_trunk_gets_no_gradient_and_the_module_gets_the_mtp_loss_gradient()
    {
        var c = SmallMtp;
        var m = new TransformerModel(c, seed: 3) { MtpWeight = 1f };
        var rng = new Random(13);
        GradCheckTests.Rand(rng, m.P.Count, 0.3f).CopyTo(m.P.Data, 0);
        m.FreezeTrunk();
        int b = 1, t = 6;
        var tokens = Enumerable.Range(0, b * t).Select(_ => rng.Next(c.VocabSize)).ToArray();
        var targets = Enumerable.Range(0, b * t).Select(_ => rng.Next(c.VocabSize)).ToArray();
        int counted = targets.Length;
        double L()
        {
            m.Forward(tokens, targets, b, t);
            double extra = 0;
            for (int r = 0; r < b * t; r++) if (m.Mtp!.Targets[r] >= 0) extra += m.Mtp.Losses[r];
            return extra / counted;
        }
        m.Forward(tokens, targets, b, t);
        m.P.ZeroGrad();
        m.Backward(m.MeanLossWeights());
        int offset = m.Mtp!.Offset;
        Assert.True(m.P.Grad.AsSpan(0, offset).IndexOfAnyExcept(0f) < 0, "a frozen trunk parameter got a gradient");
        Assert.True(m.DecayMask.AsSpan(0, offset).IndexOf(true) < 0, "a frozen trunk parameter would still decay");
        foreach (var s in m.P.Slices.Where(s => s.Offset >= offset))
            GradCheckTests.Check("frozen." + s.Name, m.P.Data, m.P.G(s), L, samples: 6, h: 5e-4f, offset: s.Offset);
    }

    /// <summary>tiny-r1-ds with an MTP module, weights moved off their init so every term matters.</summary>
    private static TransformerModel RandomTinyMtp()
    {
        var c = (DeepSeek2Config)TrainConfig.Preset("tiny-r1-ds", R1Format.Tokenizer.VocabSize) with { NextnLayers = 1 };
        var m = new TransformerModel(c, seed: 9);
        var rng = new Random(4);
        for (int i = 0; i < m.P.Count; i++) m.P.Data[i] += (float)(rng.NextDouble() - 0.5) * 0.2f;
        return m;
    }

    [Fact]
    public void Export_writes_the_nextn_layout_and_the_engine_runs_the_same_trunk_and_head()
    {
        var m = RandomTinyMtp();
        var c = (DeepSeek2Config)m.Config;
        int V = c.VocabSize, d = c.Dim;
        string path = Path.Combine(Path.GetTempPath(), $"sputnik-mtp-{Environment.ProcessId}.gguf");
        try
        {
            GgufExport.Write(m, path);
            using (var f = GgufFile.Open(path))
            {
                Assert.True(f.TryGetInt64("deepseek2.block_count", out long blocks));
                Assert.Equal(c.Layers + 1, blocks);
                Assert.True(f.TryGetInt64("deepseek2.nextn_predict_layers", out long nextn));
                Assert.Equal(1, nextn);
                int l = c.Layers;
                Assert.Equal(new long[] { 2 * d, d }, f.GetTensor($"blk.{l}.nextn.eh_proj.weight").Dims.ToArray());
                foreach (var norm in new[] { "enorm", "hnorm", "shared_head_norm" }) Assert.Equal(new long[] { d }, f.GetTensor($"blk.{l}.nextn.{norm}.weight").Dims.ToArray());
                Assert.NotNull(f.FindTensor($"blk.{l}.ffn_gate_exps.weight"));
                Assert.Null(f.FindTensor($"blk.{l + 1}.attn_norm.weight"));
            }
            var back = GgufExport.Read(path);
            Assert.Equal(c, back.Config);
            Assert.Equal(m.P.Data, back.P.Data);

            using var lm = (DeepSeek2)ModelLoader.Load(GgufFile.Open(path), threads: 1);
            Assert.True(lm.HasMtpHead);
            Assert.Equal(c.Layers, lm.DsConfig.Layers);
            var prompt = R1Format.EncodePrompt("What is 347 * 28?");
            int n = prompt.Length;
            m.Forward(prompt, Enumerable.Repeat(-1, n).Select((_, i) => i + 1 < n ? prompt[i + 1] : -1).ToArray(), 1, n);
            var trainMain = m.Logits.ToArray();
            var trainMtp = m.Mtp!.Logits.ToArray();
            var trunk = lm.CreateState(c.ContextLength, KvCacheType.F32);
            var logits = lm.Forward(trunk, prompt); // batched prefill keeps every position's hidden state
            Close(logits, trainMain.AsSpan((n - 1) * V, V), "main, last prompt position");
            var head = lm.CreateMtpState(c.ContextLength, KvCacheType.F32);
            for (int i = 0; i + 1 < n; i++)
            {
                lm.MtpForward(head, lm.TrunkHidden(trunk, i), prompt[i + 1], computeLogits: true);
                Close(head.Logits, trainMtp.AsSpan(i * V, V), $"MTP row {i}");
            }
        }
        finally { File.Delete(path); }
    }

    private static void Close(ReadOnlySpan<float> engine, ReadOnlySpan<float> train, string where)
    {
        for (int v = 0; v < train.Length; v++)
            Assert.True(Math.Abs(engine[v] - train[v]) < 3e-5f, $"{where} token {v}: engine {engine[v]} vs training {train[v]}");
    }

    public static readonly TheoryData<string> Models = new() { "trained-layout", "v3-synth" };

    [Theory]
    [MemberData(nameof(Models))]
    public void Mtp_speculation_gives_the_same_tokens_greedy_and_seeded(string which)
    {
        string dir = Directory.CreateTempSubdirectory("sputnik-mtp-spec-").FullName;
        try
        {
            string path = Path.Combine(dir, which + ".gguf");
            if (which == "v3-synth")
                // q-LoRA, YaRN, grouped sigmoid routing: the V3 shape, quantized
                SyntheticModel.WriteDeepSeek2(path, "deepseek2-tiny-mtp", DeepSeek2Synth.Tiny with { NextnLayers = 1 }, FileType.Q8_0, seed: 11);
            else GgufExport.Write(RandomTinyMtp(), path);
            using var sm = SputnikModel.Load(path, new ModelOptions { Threads = 2, ContextLength = 256 });
            Assert.True(((IMtpModel)sm.Model).HasMtpHead);
            int[] prompt = sm.Tokenizer.Encode("What is 12 + 30? Think it through.", addBos: true);
            foreach (float temperature in new[] { 0f, 0.8f })
            {
                var plain = Generate(sm, prompt, temperature, null);
                foreach (int k in new[] { 1, 3 })
                {
                    var spec = Generate(sm, prompt, temperature, new SpeculationOptions { Type = SpeculationType.Mtp, DraftMax = k });
                    Assert.Equal(plain.Ids, spec.Ids);
                    Assert.Equal(plain.Text, spec.Text);
                    Assert.True(spec.Stats.DraftedTokens > 0, $"{which} k={k}: nothing drafted");
                    Assert.InRange(spec.Stats.AcceptedTokens, 0, spec.Stats.DraftedTokens);
                }
            }
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    private static (List<int> Ids, string Text, GenerationStats Stats) Generate(SputnikModel m, int[] prompt, float temperature, SpeculationOptions? spec)
    {
        var o = new GenerationOptions
        {
            MaxTokens = 48, StopAtEndOfGeneration = false, Speculation = spec,
            Sampling = new SamplingOptions { Temperature = temperature, TopK = 40, TopP = 0.95f, Seed = 7 },
        };
        var stats = new GenerationStats();
        var ids = new List<int>();
        var text = new System.Text.StringBuilder();
        foreach (var t in new Generator(m.Model, m.Tokenizer).Generate(m.CreateState(), prompt, o, stats)) { ids.Add(t.Id); text.Append(t.Text); }
        return (ids, text.ToString(), stats);
    }

    [Fact]
    public void A_model_without_an_mtp_head_is_refused_with_a_reason()
    {
        string path = Path.Combine(Path.GetTempPath(), $"sputnik-nomtp-{Environment.ProcessId}.gguf");
        try
        {
            var c = (DeepSeek2Config)TrainConfig.Preset("micro-ds", R1Format.Tokenizer.VocabSize);
            GgufExport.Write(new TransformerModel(c, seed: 1), path);
            using var sm = SputnikModel.Load(path, new ModelOptions { Threads = 1 });
            var ex = Assert.Throws<ArgumentException>(() => Generate(sm, [1, 2, 3], 0f, new SpeculationOptions { Type = SpeculationType.Mtp }));
            Assert.Contains("MTP head", ex.Message);
            Assert.True(SpeculationOptions.TryParseType("mtp", out var type));
            Assert.Equal(SpeculationType.Mtp, type);
        }
        finally { File.Delete(path); }
    }
}
