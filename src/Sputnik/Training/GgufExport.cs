using Sputnik.Inference;
using System.Runtime.InteropServices;
using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Training.Tasks;

namespace Sputnik.Training;

/// <summary>
/// Writes a trained <see cref="TransformerModel"/> as an F32 GGUF that Sputnik and llama.cpp run — architecture
/// `llama` for the dense layout, `deepseek2` (MLA + MoE) for the DeepSeek layout — with the character tokenizer and
/// the R1 chat template, and reads such a file back for further training (GRPO --init).
/// <para>
/// The model's config is the record inference reads (<see cref="ModelConfig"/> or <see cref="DeepSeek2Config"/>), so
/// its keys are written by that record's WriteKeys, as for `synth` and `convert`; the deepseek2 tensor list is checked
/// against <see cref="DeepSeek2Synth.Tensors"/>. Every parameter is a straight copy except MLA's kv up-projection:
/// training keeps it as one attn_kv_b [H·(nope+v), rank]; the file carries it split, as llama.cpp's converter writes
/// it, into attn_k_b (ggml dims [nope, rank, H]: per head, W_UKᵀ) and attn_v_b ([rank, v, H]).
/// </para>
/// </summary>
internal static class GgufExport
{
    public static void Write(TransformerModel m, string path, string? name = null)
    {
        var c = m.Config;
        name ??= c is DeepSeek2Config ? "sputnik-r1-tiny-ds" : "sputnik-r1-tiny";
        var w = new GgufWriter();
        w.Set(GgufKeys.GeneralArchitecture, c.Architecture);
        w.Set(GgufKeys.GeneralName, name);
        c.WriteKeys(w);
        w.Set(GgufKeys.GeneralFileType, 0u); // ALL_F32
        R1Format.Vocabulary().WriteTo(w);
        w.Set(GgufKeys.ChatTemplate, R1Format.ChatTemplate);
        // Greedy by default: these models are trained and evaluated greedily, and sampling at T 0.7 scores about
        // 15 points lower (docs/training.md). Flags and request fields still override it.
        w.Set(RecommendedSampling.Temperature, 0f);
        var written = new Dictionary<string, long[]>();
        foreach (var (tname, dims, data) in FileTensors(m))
        {
            w.AddTensor(tname, GgmlType.F32, dims, MemoryMarshal.AsBytes(data.AsSpan()).ToArray());
            written.Add(tname, dims);
        }
        if (c is DeepSeek2Config ds) CheckAgainstSynth(written, ds);
        string tmp = path + ".tmp";
        w.Write(tmp);
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Rebuilds the trainable model from a file this class wrote (llama or deepseek2).</summary>
    public static TransformerModel Read(string path)
    {
        using var f = GgufFile.Open(path);
        IArchConfig c = f.Architecture switch
        {
            Llama.Name => ModelConfig.FromGguf(f, Llama.Name, ropeNeox: false),
            DeepSeek2.Name => DeepSeek2Config.FromGguf(f),
            var a => throw new GgufFormatException($"{path}: architecture '{a}' is not one Sputnik trains (llama, deepseek2)"),
        };
        TrainConfig.EnsureTrainable(c, path);
        var m = new TransformerModel(c);
        foreach (var s in m.P.Slices)
        {
            if (TensorNames.IsLayer(s.Name, TensorNames.AttnKvB)) ReadKvB(f, path, m, s);
            else ReadF32(f, path, s.Name, GgufDims(s), m.P.W(s));
        }
        return m;
    }

    /// <summary>The file's tensors: GGUF name, ggml dims (fastest first) and F32 values.</summary>
    private static IEnumerable<(string Name, long[] Dims, float[] Data)> FileTensors(TransformerModel m)
    {
        foreach (var s in m.P.Slices)
        {
            if (!TensorNames.IsLayer(s.Name, TensorNames.AttnKvB))
            {
                yield return (s.Name, GgufDims(s), m.P.W(s).ToArray());
                continue;
            }
            var ds = (DeepSeek2Config)m.Config;
            int layer = LayerOf(s.Name), h = ds.Heads, rank = ds.KvLoraRank, nope = ds.QkNopeDim, v = ds.VHeadDim, stride = nope + v;
            var kvb = m.P.W(s);
            var kb = new float[h * rank * nope];   // [h][rank][nope]
            var vb = new float[h * v * rank];      // [h][v][rank]
            for (int hh = 0; hh < h; hh++)
                for (int r = 0; r < rank; r++)
                {
                    for (int i = 0; i < nope; i++) kb[(hh * rank + r) * nope + i] = kvb[(hh * stride + i) * rank + r];
                    for (int j = 0; j < v; j++) vb[(hh * v + j) * rank + r] = kvb[(hh * stride + nope + j) * rank + r];
                }
            yield return (TensorNames.Weight(layer, TensorNames.AttnKB), [nope, rank, h], kb);
            yield return (TensorNames.Weight(layer, TensorNames.AttnVB), [rank, v, h], vb);
        }
    }

    private static void ReadKvB(GgufFile f, string path, TransformerModel m, ParamSlice s)
    {
        var ds = (DeepSeek2Config)m.Config;
        int layer = LayerOf(s.Name), h = ds.Heads, rank = ds.KvLoraRank, nope = ds.QkNopeDim, v = ds.VHeadDim;
        var kb = new float[h * rank * nope];
        var vb = new float[h * v * rank];
        ReadF32(f, path, TensorNames.Weight(layer, TensorNames.AttnKB), [nope, rank, h], kb);
        ReadF32(f, path, TensorNames.Weight(layer, TensorNames.AttnVB), [rank, v, h], vb);
        JoinKvB(kb, vb, m.P.W(s), h, rank, nope, v);
    }

    /// <summary>
    /// Rebuilds MLA's kv up-projection [H·(nope + v), rank] from the split pair a file carries: attn_k_b (ggml dims
    /// [nope, rank, H]: per head, W_UKᵀ) and attn_v_b ([rank, v, H]).
    /// </summary>
    public static void JoinKvB(ReadOnlySpan<float> kb, ReadOnlySpan<float> vb, Span<float> kvb, int h, int rank, int nope, int v)
    {
        int stride = nope + v;
        for (int hh = 0; hh < h; hh++)
            for (int r = 0; r < rank; r++)
            {
                for (int i = 0; i < nope; i++) kvb[(hh * stride + i) * rank + r] = kb[(hh * rank + r) * nope + i];
                for (int j = 0; j < v; j++) kvb[(hh * stride + nope + j) * rank + r] = vb[(hh * v + j) * rank + r];
            }
    }

    /// <summary>Export must produce exactly the tensors (names and shapes) the synthetic deepseek2 writer does for the same config.</summary>
    private static void CheckAgainstSynth(Dictionary<string, long[]> written, DeepSeek2Config dc)
    {
        var expected = DeepSeek2Synth.Tensors(dc).ToDictionary(t => t.Name, t => t.Dims);
        foreach (var (name, dims) in expected)
            if (!written.TryGetValue(name, out var got) || !got.SequenceEqual(dims))
                throw new InvalidOperationException($"deepseek2 export: tensor {name} [{string.Join(", ", dims)}] " +
                    (got == null ? "is missing" : $"written as [{string.Join(", ", got)}]"));
        foreach (var name in written.Keys)
            if (!expected.ContainsKey(name)) throw new InvalidOperationException($"deepseek2 export: unexpected tensor {name}");
    }

    // ---- shared -----------------------------------------------------------------------------------------

    /// <summary>N of "blk.N.…" (training names every per-layer slice through <see cref="TensorNames"/>).</summary>
    private static int LayerOf(string name) => TensorNames.LayerOf(name);

    /// <summary>GGUF dims are fastest-first: a [rows, cols] weight is written as [cols, rows].</summary>
    private static long[] GgufDims(ParamSlice s) => s.Shape.Reverse().Select(d => (long)d).ToArray();

    private static void ReadF32(GgufFile f, string path, string name, long[] dims, Span<float> dst)
    {
        var info = f.GetTensor(name);
        if (info.Type != GgmlType.F32 || !info.Dims.SequenceEqual(dims))
            throw new GgufFormatException($"{path}: tensor {name} is {info.Type} [{string.Join(", ", info.Dims)}], expected F32 [{string.Join(", ", dims)}]");
        MemoryMarshal.Cast<byte, float>(f.GetData(info)).CopyTo(dst);
    }
}
