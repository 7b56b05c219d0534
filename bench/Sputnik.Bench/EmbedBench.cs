using System.Diagnostics;
using System.Runtime.InteropServices;
using Sputnik;
using Sputnik.Gguf;
using Sputnik.Inference;
using Sputnik.Tokenizers;
using Sputnik.Tools;

/// <summary>
/// Embedding throughput for bench/embed-bench.sh:
///   embed prepare PRESET TYPE OUT.gguf TOKENS.txt [INPUTS] [LENGTH]   a synth model with embedding keys, and inputs
///   embed run MODEL.gguf TOKENS.txt THREADS REPS OUT.f32               Sputnik's side: embeddings/s, vectors out
/// `prepare` writes the preset's file (qwen3 presets as Qwen3-Embedding: last-token pooling, EOS added; llama and
/// others mean-pooled; bert as its preset says) and INPUTS lines of LENGTH token ids: the model's leading special
/// token, random ordinary tokens, and its closing one (EOS or [SEP]) where it adds one, so both engines embed the
/// very same ids.
/// </summary>
internal static class EmbedBench
{
    public static void Run(string[] args)
    {
        switch (args.FirstOrDefault())
        {
            case "prepare" when args.Length >= 5:
                Prepare(args[1], args[2], args[3], args[4], args.Length > 5 ? int.Parse(args[5]) : 64, args.Length > 6 ? int.Parse(args[6]) : 128);
                break;
            case "run" when args.Length >= 6:
                Measure(args[1], args[2], int.Parse(args[3]), int.Parse(args[4]), args[5]);
                break;
            default:
                Console.Error.WriteLine("usage: embed prepare PRESET TYPE OUT.gguf TOKENS.txt [INPUTS] [LENGTH] | embed run MODEL.gguf TOKENS.txt THREADS REPS OUT.f32");
                Environment.Exit(2);
                break;
        }
    }

    private static void Prepare(string presetName, string type, string path, string tokensPath, int count, int length)
    {
        var preset = SyntheticModel.FindPreset(presetName);
        string bare = path + ".bare";
        SyntheticModel.Write(bare, new SynthOptions { Preset = preset, FileType = QuantMix.Parse(type), Seed = 1, Threads = Environment.ProcessorCount });
        (string Key, GgufValue Value)[] extra = preset.Arch switch
        {
            "qwen3" => [("qwen3.pooling_type", GgufValue.Of(3u)), ("tokenizer.ggml.add_eos_token", GgufValue.Of(true))],
            "bert" => [],
            var arch => [(arch + ".pooling_type", GgufValue.Of(1u))],
        };
        using (var source = GgufFile.Open(bare))
        {
            var w = new GgufWriter().CopyMetadata(source);
            foreach (var (key, value) in extra) w.Set(key, value);
            foreach (var t in source.Tensors) w.AddTensor(t.Name, t.Type, t.Dims, output => output.Write(source.GetData(t)));
            w.Write(path);
        }
        File.Delete(bare);

        using var model = SputnikModel.Load(path, new ModelOptions { Threads = 1, ContextLength = length });
        var tok = model.Tokenizer;
        int[] probe = new Embedder(model.Model, tok, length).Tokenize("x");
        bool leading = tok.AddBos && probe[0] == tok.BosId;
        int? closing = tok.ClosingId;
        var ordinary = Enumerable.Range(0, tok.VocabSize).Where(id => tok.GetTokenType(id) == TokenType.Normal).ToArray();
        var rng = new Random(7);
        using var writer = new StreamWriter(tokensPath);
        for (int i = 0; i < count; i++)
        {
            var ids = new List<int>(length);
            if (leading) ids.Add(tok.BosId);
            while (ids.Count < length - (closing is null ? 0 : 1)) ids.Add(ordinary[rng.Next(ordinary.Length)]);
            if (closing is { } c) ids.Add(c);
            writer.WriteLine(string.Join(' ', ids));
        }
        Console.WriteLine($"wrote {path} ({preset.Name}, {type}) and {count} inputs of {length} tokens to {tokensPath}");
    }

    private static void Measure(string path, string tokensPath, int threads, int reps, string outPath)
    {
        var inputs = File.ReadLines(tokensPath).Where(l => l.Length > 0).Select(l => l.Split(' ').Select(int.Parse).ToArray()).ToList();
        int longest = inputs.Max(t => t.Length);
        using var model = SputnikModel.Load(path, new ModelOptions { Threads = threads, ContextLength = Math.Max(longest, 512) });
        var embedder = new Embedder(model.Model, model.Tokenizer, model.ContextLength, model.KvType);
        var vectors = new float[inputs.Count][];
        double best = double.MaxValue;
        for (int rep = 0; rep <= reps; rep++) // the first pass warms up (JIT tiers, cache growth)
        {
            long t0 = Stopwatch.GetTimestamp();
            embedder.EmbedAll(inputs, vectors);
            double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            if (rep > 0) best = Math.Min(best, s);
        }
        Console.WriteLine($"sputnik: {inputs.Count} inputs, {inputs.Sum(t => t.Length)} tokens, best {best:F3} s of {reps}, {inputs.Count / best:F2} embeddings/s");
        using var output = File.Create(outPath);
        foreach (var v in vectors) output.Write(MemoryMarshal.AsBytes(v.AsSpan()));
    }
}
