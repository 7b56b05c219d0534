using Sputnik.Gguf;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;

namespace Sputnik.Tests.Models;

/// <summary>Writes a small qwen2-shaped GGUF with random weights quantized to a mix of types (no tokenizer needed).</summary>
internal static class RandomQwen2
{
    public const int Dim = 256, Layers = 2, Heads = 4, KvHeads = 2, Ffn = 512, Vocab = 300;

    /// <summary>The model's path: written once per machine (the content is seeded, so a file left by an earlier run is the same), renamed into place so parallel test runs never see half a file.</summary>
    public static string Path_ { get; } = Write("sputnik-test-random-qwen2-v1.gguf", f16: false);

    /// <summary>The same shape with every matrix F16, each matrix's weights scaled down by 0.05–1 (so some halves are subnormal), and one weight of 100 in blk.1.ffn_up (a matrix <see cref="ScaledHalves"/> refuses).</summary>
    public static string F16Path => s_f16.Value;

    private static readonly Lazy<string> s_f16 = new(() => Write("sputnik-test-random-qwen2-f16-v1.gguf", f16: true));

    private static string Write(string name, bool f16)
    {
        string path = Path.Combine(Path.GetTempPath(), name);
        if (File.Exists(path)) return path;
        string tmp = path + $".{Environment.ProcessId}.tmp";
        var rng = new Random(7);
        var w = new GgufWriter()
            .Set("general.architecture", "qwen2")
            .Set("qwen2.embedding_length", (uint)Dim)
            .Set("qwen2.block_count", (uint)Layers)
            .Set("qwen2.attention.head_count", (uint)Heads)
            .Set("qwen2.attention.head_count_kv", (uint)KvHeads)
            .Set("qwen2.feed_forward_length", (uint)Ffn)
            .Set("qwen2.context_length", 512u)
            .Set("qwen2.rope.freq_base", 1000000f)
            .Set("qwen2.attention.layer_norm_rms_epsilon", 1e-6f);
        void Mat(string n, GgmlType t, int cols, int rows, float std)
        {
            if (f16)
            {
                t = GgmlType.F16;
                std *= 0.05f * (1 + n.Length % 20); // 0.05–1 times the quantized file's: small weights give subnormal halves
            }
            int rb = (int)GgmlTypeInfo.RowBytes(t, cols);
            var bytes = new byte[rb * rows];
            var row = new float[cols];
            for (int r = 0; r < rows; r++)
            {
                for (int i = 0; i < cols; i++) row[i] = Normal(rng) * std;
                if (f16 && r == 5 && n == "blk.1.ffn_up.weight") row[7] = 100f;
                Quant.Row(t, row, bytes.AsSpan(r * rb, rb));
            }
            w.AddTensor(n, t, [cols, rows], bytes);
        }
        void Vec(string n, int len, float mean, float std)
        {
            var v = new float[len];
            for (int i = 0; i < len; i++) v[i] = mean + Normal(rng) * std;
            w.AddTensor(n, v, len);
        }
        int hd = Dim / Heads, kv = KvHeads * hd;
        Mat("token_embd.weight", GgmlType.Q8_0, Dim, Vocab, 1f);
        Vec("output_norm.weight", Dim, 1, 0.1f);
        Mat("output.weight", GgmlType.Q6_K, Dim, Vocab, 0.1f);
        for (int l = 0; l < Layers; l++)
        {
            string p = $"blk.{l}.";
            Vec(p + "attn_norm.weight", Dim, 1, 0.1f);
            Vec(p + "ffn_norm.weight", Dim, 1, 0.1f);
            Mat(p + "attn_q.weight", GgmlType.Q8_0, Dim, Dim, 0.06f);
            Mat(p + "attn_k.weight", GgmlType.Q4_K, Dim, kv, 0.06f);
            Mat(p + "attn_v.weight", GgmlType.Q6_K, Dim, kv, 0.1f);
            Vec(p + "attn_q.bias", Dim, 0, 0.1f);
            Vec(p + "attn_k.bias", kv, 0, 0.1f);
            Vec(p + "attn_v.bias", kv, 0, 0.1f);
            Mat(p + "attn_output.weight", GgmlType.Q4_K, Dim, Dim, 0.05f);
            Mat(p + "ffn_gate.weight", GgmlType.Q4_K, Dim, Ffn, 0.1f);
            Mat(p + "ffn_up.weight", GgmlType.Q8_0, Dim, Ffn, 0.1f);
            Mat(p + "ffn_down.weight", GgmlType.Q6_K, Ffn, Dim, 0.05f);
        }
        w.Write(tmp);
        File.Move(tmp, path, overwrite: true);
        return path;
    }

    private static float Normal(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
    }
}
