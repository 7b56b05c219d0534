using System.Text.Json;
using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;
using Sputnik.Tokenizers;
using Sputnik.Tools;

namespace Sputnik.Conversion;

/// <summary>Output weight format of <see cref="HfConverter"/> (norms, biases and routers stay F32 as in llama.cpp).</summary>
internal enum ConvertType { F32, F16, BF16, Q8_0, Q4_K_M }

/// <summary>
/// Converts a Hugging Face checkpoint folder (config.json, safetensors, tokenizer.json, tokenizer_config.json,
/// generation_config.json) into GGUF with llama.cpp's tensor names, layouts and metadata keys. What is particular to an
/// architecture (its hyper-parameters, tensor names and transforms) is its <see cref="ArchitectureInfo.Convert"/>; this
/// class writes the general keys, picks each tensor's type by the quantizer's rules (<see cref="QuantMix"/>), streams the
/// tensors one row at a time from the memory-mapped safetensors (the model is never held in memory) and writes the
/// tokenizer.
/// </summary>
internal sealed class HfConverter : IDisposable
{
    /// <summary>Hugging Face `architectures[0]` → GGUF architecture, as each architecture's file declares it (<see cref="ArchitectureInfo.HfArchitectures"/>).</summary>
    public static readonly IReadOnlyDictionary<string, string> Architectures =
        ModelLoader.All.Where(a => a.Convert != null).SelectMany(a => a.HfArchitectures.Select(hf => (hf, a.Name))).ToDictionary(x => x.hf, x => x.Name);

    private readonly HfCheckpoint _ck;
    private readonly ConvertType _type;

    public string Arch => _ck.Architecture.Name;
    public GgufWriter Writer { get; } = new();

    private HfConverter(string dir, ConvertType type)
    {
        _type = type;
        _ck = new HfCheckpoint(dir);
    }

    /// <summary>Converts <paramref name="hfDir"/> to <paramref name="outPath"/>; <paramref name="progress"/> gets (bytes written, total bytes, tensor).</summary>
    public static void Convert(string hfDir, string outPath, ConvertType type, Action<long, long, string>? progress = null)
    {
        using var c = new HfConverter(hfDir, type);
        c.Build(progress);
        c.Writer.Write(outPath);
    }

    private static FileType FileTypeOf(ConvertType t) => t switch
    {
        ConvertType.F32 => FileType.AllF32,
        ConvertType.F16 => FileType.F16,
        ConvertType.BF16 => FileType.BF16,
        ConvertType.Q8_0 => FileType.Q8_0,
        _ => FileType.Q4_K_M,
    };

    private void Build(Action<long, long, string>? progress)
    {
        var w = Writer;
        var fileType = FileTypeOf(_type);
        w.Set(GgufKeys.GeneralArchitecture, Arch);
        w.Set(GgufKeys.GeneralName, Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(_ck.Dir))));
        w.Set(GgufKeys.GeneralFileType, (uint)fileType);
        if (QuantMix.IsQuantized(QuantMix.DefaultType(fileType))) w.Set(GgufKeys.GeneralQuantizationVersion, GgufQuantizer.QuantizationVersion);
        // config.json → the architecture family's hyper-parameter record, which writes its own keys (as for synth and export).
        var conversion = _ck.Architecture.Convert!;
        var config = conversion.ReadConfig(_ck);
        config.WriteKeys(w);
        var plan = new HfTensorPlan(_ck);
        conversion.PlanTensors(plan, config);
        WriteTokenizer(config.VocabSize);

        // Types as llama-quantize would pick them for this file type (a tied embedding follows the output's rule).
        var mix = QuantMix.For(fileType, config.Layers, plan.Tensors.Select(p => (p.Name, p.Dims)));
        var typed = plan.Tensors.Select(p => (Tensor: p, Type: mix.Choose(p.Name, p.Dims, GgmlType.F32))).ToArray();
        long total = typed.Sum(p => GgufWriter.ByteSize(p.Type, p.Tensor.Dims)), done = 0;
        foreach (var (planned, type) in typed)
        {
            w.AddTensor(planned.Name, type, planned.Dims, stream =>
            {
                var row = new float[planned.Cols];
                var bytes = new byte[GgmlTypeInfo.RowBytes(type, planned.Cols)];
                for (int r = 0; r < planned.RowCount; r++)
                {
                    planned.ReadRow(r, row);
                    Quant.Row(type, row, bytes);
                    stream.Write(bytes);
                    done += bytes.Length;
                    if ((r & 255) == 0 || r == planned.RowCount - 1) progress?.Invoke(done, total, planned.Name);
                }
            });
        }
    }

    // ---- tokenizer -----------------------------------------------------------------------------------------

    /// <summary>The tokenizer, padded to the <paramref name="vocab"/> rows of the embedding as llama.cpp pads it.</summary>
    private void WriteTokenizer(int vocab)
    {
        var w = Writer;
        var tok = HfTokenizerJson.Load(_ck.TokenizerPath);
        var tokens = tok.Tokens;
        var types = tok.TokenTypes ?? Enumerable.Repeat((int)TokenType.Normal, tokens.Length).ToArray();
        if (vocab > tokens.Length)
        {
            // llama.cpp pads the vocabulary to the embedding's rows with unused [PADn] tokens.
            tokens = [.. tokens, .. Enumerable.Range(tokens.Length, vocab - tokens.Length).Select(i => $"[PAD{i}]")];
            types = [.. types, .. Enumerable.Repeat((int)TokenType.Unused, vocab - types.Length)];
        }
        (tok with
        {
            Tokens = tokens,
            TokenTypes = types,
            BosId = tok.BosId ?? GenerationConfigId("bos_token_id"),
            EosId = tok.EosId ?? GenerationConfigId("eos_token_id"),
        }).WriteTo(w);
        if (ChatTemplate() is { } tpl) w.Set(GgufKeys.ChatTemplate, tpl);
    }

    /// <summary>bos/eos ids from generation_config.json, then config.json (first entry when a list).</summary>
    private int? GenerationConfigId(string key)
    {
        foreach (string file in new[] { "generation_config.json", "config.json" })
        {
            string path = Path.Combine(_ck.Dir, file);
            if (!File.Exists(path)) continue;
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            if (!doc.RootElement.TryGetProperty(key, out var v)) continue;
            if (v.ValueKind == JsonValueKind.Number) return v.GetInt32();
            if (v.ValueKind == JsonValueKind.Array && v.GetArrayLength() > 0 && v[0].ValueKind == JsonValueKind.Number) return v[0].GetInt32();
        }
        return null;
    }

    private string? ChatTemplate()
    {
        string path = Path.Combine(_ck.Dir, "tokenizer_config.json");
        if (File.Exists(path))
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            if (doc.RootElement.TryGetProperty("chat_template", out var t))
            {
                if (t.ValueKind == JsonValueKind.String) return t.GetString();
                // A list of named templates: llama.cpp keeps "default" as the chat template.
                if (t.ValueKind == JsonValueKind.Array)
                    foreach (var e in t.EnumerateArray())
                        if (e.TryGetProperty("name", out var n) && n.GetString() == "default") return e.GetProperty("template").GetString();
            }
        }
        string jinja = Path.Combine(_ck.Dir, "chat_template.jinja");
        return File.Exists(jinja) ? File.ReadAllText(jinja) : null;
    }

    public void Dispose() => _ck.Dispose();
}
