using Sputnik.Gguf;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;
using Sputnik.Tools;
using Xunit;

namespace Sputnik.Tests.Tools;

/// <summary>F32 tiny models shared by the quantize tests.</summary>
public sealed class TinyF32Models : IDisposable
{
    public TempDir Dir { get; } = new();
    public string Qwen2 { get; }
    public string Llama { get; }

    public TinyF32Models()
    {
        Qwen2 = Dir.File("qwen2-f32.gguf");
        Llama = Dir.File("llama-f32.gguf");
        SyntheticModel.Write(Qwen2, new SynthOptions { Preset = SyntheticModel.FindPreset("qwen2-tiny"), FileType = FileType.AllF32, Seed = 11 });
        SyntheticModel.Write(Llama, new SynthOptions { Preset = SyntheticModel.FindPreset("llama-tiny"), FileType = FileType.AllF32, Seed = 12 });
    }

    public void Dispose() => Dir.Dispose();
}

[Collection("Console")]
public sealed class QuantizeTests : IClassFixture<TinyF32Models>
{
    private readonly TinyF32Models _m;

    public QuantizeTests(TinyF32Models m) => _m = m;

    // Upper bounds on ‖dequant(q(w)) − w‖ / ‖w‖ for Gaussian weights (typical values are 2–4× smaller).
    private static double RmsBound(GgmlType t) => t switch
    {
        GgmlType.F32 => 0,
        GgmlType.F16 => 1e-3,
        GgmlType.BF16 => 8e-3,
        GgmlType.Q8_0 => 0.01,
        GgmlType.Q6_K => 0.03,
        GgmlType.Q5_K or GgmlType.Q5_0 or GgmlType.Q5_1 => 0.06,
        GgmlType.Q4_K or GgmlType.Q4_0 or GgmlType.Q4_1 => 0.12,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    private string Quantize(string src, string type)
    {
        string dst = _m.Dir.File($"{Path.GetFileNameWithoutExtension(src)}-{type}.gguf");
        CliHarness.Ok("quantize", src, dst, type, "-t", "2");
        return dst;
    }

    [Theory]
    [InlineData("Q8_0", GgmlType.Q8_0)]
    [InlineData("Q4_0", GgmlType.Q4_0)]
    [InlineData("Q4_K_M", GgmlType.Q4_K)]
    [InlineData("Q4_K_S", GgmlType.Q4_K)]
    [InlineData("Q5_K_M", GgmlType.Q5_K)]
    [InlineData("Q6_K", GgmlType.Q6_K)]
    [InlineData("F16", GgmlType.F16)]
    [InlineData("BF16", GgmlType.BF16)]
    public void Quantized_model_loads_keeps_metadata_and_stays_close(string type, GgmlType main)
    {
        foreach (string src in new[] { _m.Qwen2, _m.Llama })
        {
            string dst = Quantize(src, type);
            using var a = GgufFile.Open(src);
            using var b = GgufFile.Open(dst);
            Assert.Equal(a.Tensors.Select(t => (t.Name, string.Join(',', t.Dims))), b.Tensors.Select(t => (t.Name, string.Join(',', t.Dims))));
            Assert.Equal((long)QuantMix.Parse(type), b.TryGetInt64("general.file_type", out long ft) ? ft : -1);
            foreach (var (k, v) in a.Metadata.Where(kv => kv.Key is not ("general.file_type" or "general.quantization_version")))
                Assert.Equal(v.ToString(), b.Metadata[k].ToString());
            Assert.Equal(a.GetStringOrNull("tokenizer.chat_template"), b.GetStringOrNull("tokenizer.chat_template"));
            Assert.Equal(a.TryGetStringArray("tokenizer.ggml.tokens", out var ta) ? ta : null, b.TryGetStringArray("tokenizer.ggml.tokens", out var tb) ? tb : null);

            foreach (var t in b.Tensors)
            {
                var s = a.GetTensor(t.Name);
                if (t.Dims.Length == 1) Assert.Equal(GgmlType.F32, t.Type);
                double rel = RelativeRms(a, s, b, t);
                Assert.True(rel <= RmsBound(t.Type), $"{type} {t.Name} ({t.Type}): relative RMS error {rel:G3} > {RmsBound(t.Type)}");
            }
            Assert.Contains(b.Tensors, t => t.Type == main);

            double logitsErr = LogitsError(src, dst);
            double bound = type switch { "F16" => 0.01, "BF16" or "Q8_0" => 0.05, "Q6_K" => 0.08, _ => 0.35 };
            Assert.True(logitsErr <= bound, $"{type}: logits relative RMS error vs F32 {logitsErr:G3} > {bound}");
        }
    }

    [Fact]
    public void Q4_K_M_follows_llama_cpp_mix()
    {
        using var f = GgufFile.Open(Quantize(_m.Llama, "Q4_K_M"));
        Assert.Equal(GgmlType.Q6_K, f.GetTensor("output.weight").Type);
        Assert.Equal(GgmlType.Q4_K, f.GetTensor("token_embd.weight").Type);
        // use_more_bits(i, 4): layers 2 and 3 (i >= 7*4/8 = 3, (i - 0) % 3 == 2)
        foreach (int l in new[] { 0, 1 })
        {
            Assert.Equal(GgmlType.Q4_K, f.GetTensor($"blk.{l}.attn_v.weight").Type);
            Assert.Equal(GgmlType.Q4_K, f.GetTensor($"blk.{l}.ffn_down.weight").Type);
        }
        foreach (int l in new[] { 2, 3 })
        {
            Assert.Equal(GgmlType.Q6_K, f.GetTensor($"blk.{l}.attn_v.weight").Type);
            Assert.Equal(GgmlType.Q6_K, f.GetTensor($"blk.{l}.ffn_down.weight").Type);
        }
        Assert.All(f.Tensors.Where(t => t.Name.Contains("attn_q.weight") || t.Name.Contains("ffn_up") || t.Name.Contains("attn_output")),
            t => Assert.Equal(GgmlType.Q4_K, t.Type));
        Assert.All(f.Tensors.Where(t => t.Dims.Length == 1), t => Assert.Equal(GgmlType.F32, t.Type));
        Assert.Equal(2L, f.TryGetInt64("general.quantization_version", out long v) ? v : -1);

        // tied embeddings: the token embedding follows the output rule
        using var q = GgufFile.Open(Quantize(_m.Qwen2, "Q4_K_M"));
        Assert.Null(q.FindTensor("output.weight"));
        Assert.Equal(GgmlType.Q6_K, q.GetTensor("token_embd.weight").Type);
        Assert.Equal(GgmlType.Q6_K, q.GetTensor("blk.3.attn_v.weight").Type);
        Assert.All(q.Tensors.Where(t => t.Name.EndsWith(".bias")), t => Assert.Equal(GgmlType.F32, t.Type));
    }

    [Fact]
    public void Q4_K_S_gives_the_first_attn_v_Q5_K()
    {
        using var f = GgufFile.Open(Quantize(_m.Llama, "Q4_K_S"));
        Assert.Equal(GgmlType.Q6_K, f.GetTensor("output.weight").Type);
        for (int l = 0; l < 4; l++) Assert.Equal(GgmlType.Q5_K, f.GetTensor($"blk.{l}.attn_v.weight").Type);
        for (int l = 0; l < 4; l++) Assert.Equal(GgmlType.Q4_K, f.GetTensor($"blk.{l}.ffn_down.weight").Type); // 4/8 = 0 layers
    }

    [Fact]
    public void Mix_rules_match_llama_cpp_for_real_shapes()
    {
        var mix = new QuantMix(FileType.Q4_K_M, 28, hasOutput: false);
        Assert.Equal(GgmlType.Q6_K, mix.Choose("token_embd.weight", [1536, 151936], GgmlType.BF16));
        Assert.Equal(GgmlType.F32, mix.Choose("blk.0.attn_norm.weight", [1536], GgmlType.F32));
        Assert.Equal(GgmlType.F32, mix.Choose("blk.0.attn_q.bias", [1536], GgmlType.F32));
        int[] moreBits = Enumerable.Range(0, 28).Where(l => QuantMix.UseMoreBits(l, 28)).ToArray();
        Assert.Equal([0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27], moreBits);
        Assert.Equal(GgmlType.Q6_K, mix.Choose("blk.5.ffn_down.weight", [8960, 1536], GgmlType.F16));
        Assert.Equal(GgmlType.Q4_K, mix.Choose("blk.6.ffn_down.weight", [8960, 1536], GgmlType.F16));
        // rows that 256 does not divide (Qwen2-0.5B's 896) fall back like llama.cpp
        var small = new QuantMix(FileType.Q4_K_M, 24, hasOutput: false);
        Assert.Equal(GgmlType.Q5_0, small.Choose("blk.3.attn_q.weight", [896, 896], GgmlType.F32));
        Assert.Equal(GgmlType.Q8_0, small.Choose("blk.0.attn_v.weight", [896, 128], GgmlType.F32));
        Assert.Equal(GgmlType.Q8_0, small.Choose("token_embd.weight", [896, 151936], GgmlType.F32));
        Assert.Equal(GgmlType.F16, QuantMix.Fallback(GgmlType.Q4_K, 100));
        Assert.Equal(GgmlType.Q6_K, new QuantMix(FileType.Q4_0, 24, true).Choose("output.weight", [1024, 5000], GgmlType.F32));
        Assert.Equal(GgmlType.Q8_0, new QuantMix(FileType.Q8_0, 24, true).Choose("output.weight", [1024, 5000], GgmlType.F32));
    }

    /// <summary>llama.cpp's MXFP4_MOE (`quantize … MXFP4`): stacked experts MXFP4, other matrices and the output Q8_0.</summary>
    [Fact]
    public void Mxfp4_mix_puts_experts_in_mxfp4_and_the_rest_in_q8_0()
    {
        Assert.Equal(FileType.Mxfp4Moe, QuantMix.Parse("mxfp4"));
        Assert.Equal(FileType.Mxfp4Moe, QuantMix.Parse("MXFP4_MOE"));
        Assert.Equal("MXFP4 MoE", QuantMix.Describe(FileType.Mxfp4Moe));
        var mix = new QuantMix(FileType.Mxfp4Moe, 24, hasOutput: true);
        Assert.Equal(GgmlType.MXFP4, mix.Choose("blk.3.ffn_gate_exps.weight", [2880, 2880, 32], GgmlType.BF16));
        Assert.Equal(GgmlType.MXFP4, mix.Choose("blk.3.ffn_down_exps.weight", [2880, 2880, 32], GgmlType.MXFP4));
        Assert.Equal(GgmlType.Q8_0, mix.Choose("blk.3.attn_q.weight", [2880, 4096], GgmlType.BF16));
        Assert.Equal(GgmlType.Q8_0, mix.Choose("output.weight", [2880, 201088], GgmlType.BF16));
        Assert.Equal(GgmlType.Q8_0, mix.Choose("token_embd.weight", [2880, 201088], GgmlType.BF16));
        Assert.Equal(GgmlType.F32, mix.Choose("blk.3.ffn_gate_inp.weight", [2880, 32], GgmlType.F32));
        Assert.Equal(GgmlType.F32, mix.Choose("blk.3.ffn_gate_exps.bias", [2880, 32], GgmlType.F32));
        Assert.Equal(GgmlType.F32, mix.Choose("blk.3.attn_sinks.weight", [64], GgmlType.F32));
        Assert.Equal(GgmlType.F16, mix.Choose("blk.3.ffn_up_exps.weight", [100, 64, 8], GgmlType.F32)); // no 32-block fits
    }

    [Fact]
    public void Quantized_input_can_be_requantized()
    {
        string q8 = Quantize(_m.Qwen2, "Q8_0");
        string dst = _m.Dir.File("q8-to-q4km.gguf");
        CliHarness.Ok("quantize", q8, dst, "Q4_K_M");
        using var m = SputnikModel.Load(dst, new ModelOptions { Threads = 1, ContextLength = 16 });
        Assert.Equal(GgmlType.Q4_K, m.File.GetTensor("blk.0.ffn_up.weight").Type);
    }

    private static double RelativeRms(GgufFile a, GgufTensorInfo s, GgufFile b, GgufTensorInfo t)
    {
        var x = Decode(a, s);
        var y = Decode(b, t);
        double num = 0, den = 0;
        for (int i = 0; i < x.Length; i++)
        {
            num += (x[i] - y[i]) * (double)(x[i] - y[i]);
            den += x[i] * (double)x[i];
        }
        return den == 0 ? Math.Sqrt(num) : Math.Sqrt(num / den);
    }

    private static float[] Decode(GgufFile f, GgufTensorInfo t)
    {
        var data = f.GetData(t);
        var result = new float[t.ElementCount];
        long rowBytes = GgmlTypeInfo.RowBytes(t.Type, t.Columns);
        for (long r = 0; r < t.Rows; r++)
            Dequant.Row(t.Type, data.Slice((int)(r * rowBytes), (int)rowBytes), result.AsSpan((int)(r * t.Columns), (int)t.Columns));
        return result;
    }

    private static double LogitsError(string reference, string quantized)
    {
        int[] prompt = [1, 42, 7, 300, 512, 9];
        float[] Run(string path)
        {
            using var m = SputnikModel.Load(path, new ModelOptions { Threads = 1, ContextLength = 16 });
            return m.Model.Forward(m.CreateState(), prompt).ToArray();
        }
        var x = Run(reference);
        var y = Run(quantized);
        double num = 0, den = 0;
        for (int i = 0; i < x.Length; i++)
        {
            num += (x[i] - y[i]) * (double)(x[i] - y[i]);
            den += x[i] * (double)x[i];
        }
        return Math.Sqrt(num / den);
    }
}
