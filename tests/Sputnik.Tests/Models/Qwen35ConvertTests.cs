using System.Runtime.InteropServices;
using System.Text.Json;
using Sputnik.Conversion;
using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tools;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>
/// A tiny Qwen3_5ForCausalLM / Qwen3_5MoeForCausalLM checkpoint made from a synth qwen35 / qwen35moe file by undoing
/// llama.cpp's conversion (norms as w − 1, ssm_a as A_log = ln(−a), value heads back in HF's grouped order, conv1d as
/// [channels, 1, taps]): `convert` must give back every tensor, the keys, and the same logits.
/// </summary>
public class Qwen35ConvertTests
{
    private static float[] Floats(GgufFile f, GgufTensorInfo t) => MemoryMarshal.Cast<byte, float>(f.GetData(t)).ToArray();

    /// <summary>The checkpoint tensors of a qwen35 GGUF (F32), in HF names, shapes and layouts.</summary>
    private static IEnumerable<(string, long[], float[])> HfTensors(GgufFile f, ModelConfig c, Qwen35.Params p)
    {
        int perKey = p.ValueHeads / p.KeyHeads, hs = p.HeadSize, vStart = 2 * p.KeyDim;
        // Tiled row (j·K + k)·size + d holds HF's grouped row (k·perKey + j)·size + d.
        int Grouped(int tiled, int size)
        {
            int d = tiled % size, head = tiled / size, j = head / p.KeyHeads, k = head % p.KeyHeads;
            return (k * perKey + j) * size + d;
        }
        float[] Get(string name) => Floats(f, f.GetTensor(name));
        float[] Rows(float[] src, int cols, Func<int, int> hfRowOf)
        {
            var dst = new float[src.Length];
            for (int r = 0; r < src.Length / cols; r++) src.AsSpan(r * cols, cols).CopyTo(dst.AsSpan(hfRowOf(r) * cols, cols));
            return dst;
        }
        float[] MinusOne(float[] v) => v.Select(x => x - 1f).ToArray();
        long dim = c.Dim;
        yield return ("model.embed_tokens.weight", [c.VocabSize, dim], Get("token_embd.weight"));
        yield return ("model.norm.weight", [dim], MinusOne(Get("output_norm.weight")));
        yield return ("lm_head.weight", [c.VocabSize, dim], Get("output.weight"));
        for (int l = 0; l < c.Layers; l++)
        {
            string pre = $"model.layers.{l}.", b = $"blk.{l}.";
            yield return (pre + "input_layernorm.weight", [dim], MinusOne(Get(b + "attn_norm.weight")));
            yield return (pre + "post_attention_layernorm.weight", [dim], MinusOne(Get(b + "post_attention_norm.weight")));
            if (p.Recurrent[l])
            {
                string la = pre + "linear_attn.";
                yield return (la + "in_proj_qkv.weight", [p.ConvDim, dim], Rows(Get(b + "attn_qkv.weight"), c.Dim, r => r < vStart ? r : vStart + Grouped(r - vStart, hs)));
                yield return (la + "in_proj_z.weight", [p.ValueDim, dim], Rows(Get(b + "attn_gate.weight"), c.Dim, r => Grouped(r, hs)));
                yield return (la + "conv1d.weight", [p.ConvDim, 1, p.ConvKernel], Rows(Get(b + "ssm_conv1d.weight"), p.ConvKernel, r => r < vStart ? r : vStart + Grouped(r - vStart, hs)));
                yield return (la + "dt_bias", [p.ValueHeads], Rows(Get(b + "ssm_dt.bias"), 1, r => Grouped(r, 1)));
                yield return (la + "A_log", [p.ValueHeads], Rows(Get(b + "ssm_a"), 1, r => Grouped(r, 1)).Select(a => MathF.Log(-a)).ToArray());
                yield return (la + "in_proj_b.weight", [p.ValueHeads, dim], Rows(Get(b + "ssm_beta.weight"), c.Dim, r => Grouped(r, 1)));
                yield return (la + "in_proj_a.weight", [p.ValueHeads, dim], Rows(Get(b + "ssm_alpha.weight"), c.Dim, r => Grouped(r, 1)));
                yield return (la + "norm.weight", [hs], Get(b + "ssm_norm.weight"));
                var outProj = Get(b + "ssm_out.weight");
                var hfOut = new float[outProj.Length];
                for (int r = 0; r < c.Dim; r++)
                    for (int col = 0; col < p.ValueDim; col++) hfOut[r * p.ValueDim + Grouped(col, hs)] = outProj[r * p.ValueDim + col];
                yield return (la + "out_proj.weight", [dim, p.ValueDim], hfOut);
            }
            else
            {
                string sa = pre + "self_attn.";
                yield return (sa + "q_proj.weight", [2 * c.QDim, dim], Get(b + "attn_q.weight"));
                yield return (sa + "k_proj.weight", [c.KvDim, dim], Get(b + "attn_k.weight"));
                yield return (sa + "v_proj.weight", [c.KvDim, dim], Get(b + "attn_v.weight"));
                yield return (sa + "o_proj.weight", [dim, c.QDim], Get(b + "attn_output.weight"));
                yield return (sa + "q_norm.weight", [c.HeadDim], MinusOne(Get(b + "attn_q_norm.weight")));
                yield return (sa + "k_norm.weight", [c.HeadDim], MinusOne(Get(b + "attn_k_norm.weight")));
            }
            if (c.Moe is { } moe)
            {
                string mlp = pre + "mlp.";
                int eff = c.ExpertFfnDim, sff = p.SharedExpertFfn;
                yield return (mlp + "gate.weight", [moe.ExpertCount, dim], Get(b + "ffn_gate_inp.weight"));
                foreach (var (hf, g, rows, cols) in new[] { ("gate_proj", "ffn_gate_exps", eff, c.Dim), ("up_proj", "ffn_up_exps", eff, c.Dim), ("down_proj", "ffn_down_exps", c.Dim, eff) })
                {
                    var stacked = Get(b + g + ".weight");
                    for (int e = 0; e < moe.ExpertCount; e++)
                        yield return ($"{mlp}experts.{e}.{hf}.weight", [rows, cols], stacked.AsSpan(e * rows * cols, rows * cols).ToArray());
                }
                yield return (mlp + "shared_expert_gate.weight", [1, dim], Get(b + "ffn_gate_inp_shexp.weight"));
                yield return (mlp + "shared_expert.gate_proj.weight", [sff, dim], Get(b + "ffn_gate_shexp.weight"));
                yield return (mlp + "shared_expert.up_proj.weight", [sff, dim], Get(b + "ffn_up_shexp.weight"));
                yield return (mlp + "shared_expert.down_proj.weight", [dim, sff], Get(b + "ffn_down_shexp.weight"));
                continue;
            }
            yield return (pre + "mlp.gate_proj.weight", [c.FfnDim, dim], Get(b + "ffn_gate.weight"));
            yield return (pre + "mlp.up_proj.weight", [c.FfnDim, dim], Get(b + "ffn_up.weight"));
            yield return (pre + "mlp.down_proj.weight", [dim, c.FfnDim], Get(b + "ffn_down.weight"));
        }
    }

    private static void WriteConfig(string dir, ModelConfig c, Qwen35.Params p, string hfArch)
    {
        var cfg = new Dictionary<string, object>
        {
            ["architectures"] = new[] { hfArch }, ["hidden_size"] = c.Dim, ["num_hidden_layers"] = c.Layers,
            ["num_attention_heads"] = c.Heads, ["num_key_value_heads"] = c.KvHeads, ["head_dim"] = c.HeadDim,
            ["intermediate_size"] = c.FfnDim, ["vocab_size"] = c.VocabSize, ["max_position_embeddings"] = c.ContextLength,
            ["rms_norm_eps"] = c.RmsEps, ["tie_word_embeddings"] = false,
            ["linear_conv_kernel_dim"] = p.ConvKernel, ["linear_key_head_dim"] = p.HeadSize, ["linear_value_head_dim"] = p.HeadSize,
            ["linear_num_key_heads"] = p.KeyHeads, ["linear_num_value_heads"] = p.ValueHeads,
            ["layer_types"] = p.Recurrent.Select(r => r ? "linear_attention" : "full_attention").ToArray(),
            ["rope_parameters"] = new Dictionary<string, object>
            {
                ["rope_type"] = "default", ["rope_theta"] = c.RopeBase, ["partial_rotary_factor"] = (double)c.RopeDims / c.HeadDim,
                ["mrope_section"] = p.RopeSections[..3], ["mrope_interleaved"] = true,
            },
        };
        if (c.Moe is { } moe)
        {
            cfg["num_experts"] = moe.ExpertCount;
            cfg["num_experts_per_tok"] = moe.ExpertsUsed;
            cfg["moe_intermediate_size"] = c.ExpertFfnDim;
            cfg["shared_expert_intermediate_size"] = p.SharedExpertFfn;
        }
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(cfg));
    }

    [Theory]
    [InlineData("qwen35-tiny", "Qwen3_5ForCausalLM")]
    [InlineData("qwen35moe-tiny", "Qwen3_5MoeForCausalLM")]
    public void Checkpoint_converts_back_to_the_synth_file(string preset, string hfArch)
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-hf-qwen35-");
        try
        {
            string direct = Path.Combine(dir.FullName, "direct.gguf");
            SyntheticModel.Write(direct, new SynthOptions { Preset = SyntheticModel.FindPreset(preset), FileType = FileType.AllF32, Seed = 3, Sigma = 0.1f, Threads = 2 });
            string hf = Directory.CreateDirectory(Path.Combine(dir.FullName, "hf")).FullName;
            using (var f = GgufFile.Open(direct))
            {
                var c = preset.StartsWith("qwen35moe", StringComparison.Ordinal) ? Qwen35Moe.Config(f) : Qwen35.Config(f);
                var p = (Qwen35.Params)c.ArchParams!;
                Assert.True(p.ValueHeads > p.KeyHeads, "the preset should have more value than key heads, so the reorder is exercised");
                SafeTensorsWriter.Write(Path.Combine(hf, "model.safetensors"), HfTensors(f, c, p));
                WriteConfig(hf, c, p, hfArch);
                HfConvertTests.WriteTokenizer(hf, c.VocabSize);
            }
            string converted = Path.Combine(dir.FullName, "conv.gguf");
            HfConverter.Convert(hf, converted, ConvertType.F32);

            using (var want = GgufFile.Open(direct))
            using (var got = GgufFile.Open(converted))
            {
                Assert.Equal(want.Architecture, got.Architecture);
                Assert.Equal(want.Tensors.Select(t => t.Name).Order(), got.Tensors.Select(t => t.Name).Order());
                foreach (var t in want.Tensors)
                {
                    var g = got.GetTensor(t.Name);
                    Assert.Equal(t.Dims, g.Dims);
                    var a = Floats(want, t);
                    var b = Floats(got, g);
                    // Exact but for the round trips through w − 1 and ln(−a) (an ulp or two).
                    for (int i = 0; i < a.Length; i++)
                        Assert.True(Math.Abs(a[i] - b[i]) <= 1e-6f * Math.Max(1f, Math.Abs(a[i])), $"{t.Name}[{i}]: {b[i]} vs {a[i]}");
                }
                // The hyper-parameters read back as the synth file's, DeltaNet layout and M-RoPE sections included.
                string arch = want.Architecture!;
                var cw = arch == Qwen35Moe.Name ? Qwen35Moe.Config(want) : Qwen35.Config(want);
                var cg = arch == Qwen35Moe.Name ? Qwen35Moe.Config(got) : Qwen35.Config(got);
                Assert.Equal(cw, cg);
            }

            int[] tokens = [3, 17, 5, 30, 0, 22, 9, 14];
            float[] Logits(string path)
            {
                using var m = ModelLoader.Load(GgufFile.Open(path), threads: 2);
                return m.Forward(m.CreateState(32, KvCacheType.F32), tokens).ToArray();
            }
            var w0 = Logits(direct);
            var g0 = Logits(converted);
            for (int i = 0; i < w0.Length; i++) Assert.True(Math.Abs(w0[i] - g0[i]) < 1e-4, $"logit {i}: {g0[i]} vs {w0[i]}");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
