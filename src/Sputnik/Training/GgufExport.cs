using System.Runtime.InteropServices;
using Sputnik.Gguf;
using Sputnik.Training.Tasks;

namespace Sputnik.Training;

/// <summary>
/// Writes a trained <see cref="TransformerModel"/> as a `llama` GGUF (F32, tensors named as llama.cpp expects, the
/// character tokenizer and the R1 chat template) and reads one back for further training (GRPO --init).
/// TODO(deepseek2): switch to architecture `deepseek2` (MLA + MoE layers, already implemented and gradient-checked
/// in MlaAttention/MoeFeedForward) once the deepseek2 loader lands on main; see docs/training.md.
/// </summary>
internal static class GgufExport
{
    public const string Architecture = "llama";

    public static void Write(TransformerModel m, string path, string name = "sputnik-r1-tiny")
    {
        var c = m.Config;
        var w = new GgufWriter();
        string a = Architecture;
        w.Set("general.architecture", a);
        w.Set("general.name", name);
        w.Set("general.file_type", 0u); // ALL_F32
        w.Set($"{a}.context_length", (uint)c.MaxSeq);
        w.Set($"{a}.embedding_length", (uint)c.Dim);
        w.Set($"{a}.block_count", (uint)c.Layers);
        w.Set($"{a}.feed_forward_length", (uint)c.FfnDim);
        w.Set($"{a}.attention.head_count", (uint)c.Heads);
        w.Set($"{a}.attention.head_count_kv", (uint)c.KvHeads);
        w.Set($"{a}.rope.dimension_count", (uint)c.HeadDim);
        w.Set($"{a}.rope.freq_base", c.RopeBase);
        w.Set($"{a}.attention.layer_norm_rms_epsilon", c.RmsEps);
        w.Set($"{a}.vocab_size", (uint)c.Vocab);
        var tok = R1Format.Vocabulary();
        tok.WriteTo(w);
        w.Set("tokenizer.chat_template", R1Format.ChatTemplate);
        foreach (var s in m.P.Slices)
        {
            // GGUF dims are fastest-first: a [rows, cols] weight is written as [cols, rows].
            long[] dims = s.Shape.Reverse().Select(d => (long)d).ToArray();
            var bytes = MemoryMarshal.AsBytes(m.P.Data.AsSpan(s.Offset, s.Length)).ToArray();
            w.AddTensor(s.Name, Tensors.GgmlType.F32, dims, bytes);
        }
        string tmp = path + ".tmp";
        w.Write(tmp);
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Rebuilds the trainable model from a file this class wrote.</summary>
    public static TransformerModel Read(string path)
    {
        using var f = GgufFile.Open(path);
        if (f.Architecture != Architecture) throw new GgufFormatException($"{path}: architecture '{f.Architecture}' is not '{Architecture}'");
        int Get(string k) => f.TryGetInt64($"{Architecture}.{k}", out long v) ? (int)v : throw new GgufFormatException($"{path}: missing {k}");
        var c = new TrainConfig
        {
            Vocab = Get("vocab_size"), Dim = Get("embedding_length"), Layers = Get("block_count"), Heads = Get("attention.head_count"),
            KvHeads = Get("attention.head_count_kv"), FfnDim = Get("feed_forward_length"), MaxSeq = Get("context_length"),
            RopeBase = f.TryGetFloat($"{Architecture}.rope.freq_base", out float rb) ? rb : 10000f,
            RmsEps = f.TryGetFloat($"{Architecture}.attention.layer_norm_rms_epsilon", out float e) ? e : 1e-5f,
        };
        var m = new TransformerModel(c);
        foreach (var s in m.P.Slices)
        {
            var info = f.GetTensor(s.Name);
            if (info.Type != Tensors.GgmlType.F32 || info.ElementCount != s.Length)
                throw new GgufFormatException($"{path}: tensor {s.Name} is {info.Type} with {info.ElementCount} elements, expected F32 × {s.Length}");
            MemoryMarshal.Cast<byte, float>(f.GetData(info)).CopyTo(m.P.W(s));
        }
        return m;
    }
}
