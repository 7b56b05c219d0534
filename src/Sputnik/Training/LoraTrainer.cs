using System.Diagnostics;
using System.Globalization;
using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Training.Tasks;

namespace Sputnik.Training;

internal sealed record LoraOptions
{
    /// <summary>The GGUF base (llama, qwen2, qwen3, deepseek2), in any file type Sputnik decodes.</summary>
    public required string Base { get; init; }
    public required string OutDir { get; init; }
    public int Rank { get; init; } = 8;
    public float Alpha { get; init; } = 16;
    /// <summary>Matrix kinds to adapt (null = every kind the architecture offers, <see cref="LoraSet.Targetable"/>).</summary>
    public IReadOnlyList<string>? Targets { get; init; }
    /// <summary>A task to draw traces from (when <see cref="Data"/> is null).</summary>
    public string Task { get; init; } = "arithmetic";
    /// <summary>OpenAI fine-tuning JSONL ({"messages": [...]}) rendered with the base's chat template.</summary>
    public string? Data { get; init; }
    /// <summary>Loss on every token, not only the assistant's.</summary>
    public bool LossOnAll { get; init; }
    public int Steps { get; init; } = 200;
    public int BatchSize { get; init; } = 16;
    public int MicroBatch { get; init; } = 8;
    public float MaxLr { get; init; } = 1e-3f;
    public float MinLr { get; init; } = 1e-4f;
    public int Warmup { get; init; } = 20;
    public int Seed { get; init; } = 1;
    public int CheckpointEvery { get; init; } = 50;
    public int EvalEvery { get; init; }
    public int EvalN { get; init; } = 200;
    public EvalSplit EvalSplit { get; init; } = EvalSplit.Dev;
    public int Threads { get; init; } = 2;
    /// <summary>Longest training sequence (the RoPE tables and activations are sized for it; longer examples are cut).</summary>
    public int MaxSeq { get; init; } = 1024;
    public ConversationMix Mix { get; init; } = ConversationMix.SingleTurn;
}

/// <summary>
/// LoRA SFT over a frozen GGUF base (QLoRA's recipe on a CPU): the base stays mapped in its file type and is decoded
/// tile by tile (<see cref="Linear"/>), only the adapter pairs and their AdamW moments are F32 state. Otherwise the
/// loop is <see cref="SftTrainer"/>'s: warmup + cosine, clipping at 1, loss on assistant tokens, checkpoints every N
/// steps with the batch stream seeded by step (a killed run resumes where it stopped). Writes DIR/adapter.gguf (as
/// llama.cpp's convert_lora_to_gguf.py does), DIR/metrics.csv, DIR/checkpoint.bin, and for a base Sputnik trained
/// itself (the bundled model) DIR/merged.gguf, the base with the adapter merged, which in-run evaluation runs.
/// </summary>
internal sealed class LoraTrainer(LoraOptions o)
{
    public string AdapterPath => Path.Combine(o.OutDir, "adapter.gguf");
    public string MergedPath => Path.Combine(o.OutDir, "merged.gguf");
    public string MetricsPath => Path.Combine(o.OutDir, "metrics.csv");
    public string CheckpointPath => Path.Combine(o.OutDir, "checkpoint.bin");

    /// <summary>
    /// Opens the base frozen with the adapter's pairs declared and allocated. Every refusal (architecture, layout,
    /// targets, a rank above a matrix's) happens here, before anything is written.
    /// </summary>
    public static (TransformerModel Model, LoraSet Lora, GgufFile File) Open(string path, int rank, float alpha, IEnumerable<string>? targets, int maxSeq, int seed)
    {
        var file = GgufFile.Open(path);
        try
        {
            string arch = file.Architecture ?? throw new GgufFormatException($"{path}: no general.architecture");
            var config = BaseConfig(file, path, maxSeq);
            var lora = new LoraSet(arch, rank, alpha, targets);
            var model = new TransformerModel(config, new FrozenBase(file, lora));
            lora.Allocate(seed);
            return (model, lora, file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>The base's hyper-parameters, refused outside what the training blocks implement, with the context cut to maxSeq.</summary>
    public static IArchConfig BaseConfig(GgufFile f, string path, int maxSeq)
    {
        string? why = null;
        IArchConfig c;
        switch (f.Architecture)
        {
            case Llama.Name or Qwen2.Name or Qwen3.Name:
                var m = f.Architecture == Qwen3.Name ? Qwen3.Config(f) : ModelConfig.FromGguf(f, f.Architecture, ropeNeox: f.Architecture == Qwen2.Name);
                if (m.RopeDims != m.HeadDim) why = $"rope over {m.RopeDims} of {m.HeadDim} head dims";
                else if (m.RopeYarn || m.RopeScalingFactor != 1f || f.FindTensor(TensorNames.Weight(TensorNames.RopeFreqs)) != null) why = "rope scaling (YaRN, linear or llama3 factors)";
                else if (m.Moe != null) why = "experts in a llama-family model";
                c = m with { ContextLength = Math.Min(m.ContextLength, maxSeq) };
                break;
            case DeepSeek2.Name:
                var d = DeepSeek2Config.FromGguf(f);
                TrainConfig.EnsureTrainable(d, path);
                c = d with { ContextLength = Math.Min(d.ContextLength, maxSeq) };
                break;
            default:
                throw new GgufFormatException($"{path}: architecture '{f.Architecture}' is not one Sputnik trains LoRA on (llama, qwen2, qwen3, deepseek2)");
        }
        if (why != null) throw new GgufFormatException($"{path}: {why} is not a layout Sputnik trains LoRA on");
        return c;
    }

    /// <summary>What a checkpoint records of the run, so one never resumes onto another base or adapter shape.</summary>
    public static string Tag(string arch, LoraSet lora) => string.Create(CultureInfo.InvariantCulture,
        $"lora arch={arch} rank={lora.Rank} alpha={lora.Alpha} targets={string.Join(",", lora.Targets.Order())}");

    /// <summary>
    /// Continues from <paramref name="checkpointPath"/> when it exists (returns the step to start at, else 0), refusing one
    /// saved for another base or adapter shape with one line before anything is overwritten.
    /// </summary>
    public static int Resume(string checkpointPath, string tag, TransformerModel model, LoraSet lora, AdamW opt)
    {
        if (!File.Exists(checkpointPath)) return 0;
        string saved = Checkpoint.ReadTag(checkpointPath);
        if (saved != tag) throw new InvalidDataException($"{checkpointPath} holds another run ({saved}); this one is {tag}: use a new --out");
        return Checkpoint.Load(checkpointPath, model.Config, lora.P, opt, out _);
    }

    public void Run(Action<SftStep>? onStep = null, CancellationToken ct = default)
    {
        Par.Threads = o.Threads;
        var (model, lora, file) = Open(o.Base, o.Rank, o.Alpha, o.Targets, o.MaxSeq, o.Seed);
        using var baseFile = file;
        var source = TrainingExamples.Create(file, o, model.Config.ContextLength);
        var opt = new AdamW(lora.P.Count, weightDecay: 0f);
        Directory.CreateDirectory(o.OutDir);
        string tag = Tag(file.Architecture!, lora);
        int start = Resume(CheckpointPath, tag, model, lora, opt);
        bool mergeable = IsSputnikModel(o.Base);
        var task = o.Data == null ? ReasoningTask.Create(o.Task) : null;
        var csv = new MetricsCsv(MetricsPath, "step,loss,lr,grad_norm,tokens_per_s,elapsed_s,eval_pass_at_1", start);
        var sw = Stopwatch.StartNew();
        long tokensSeen = 0;
        for (int step = start; step < o.Steps; step++)
        {
            ct.ThrowIfCancellationRequested();
            var batch = source.Draw(new Random(Seeds.Mix(o.Seed, step)), o.BatchSize);
            batch.Sort((x, y) => x.Ids.Length.CompareTo(y.Ids.Length));
            int total = batch.Sum(x => x.Counted);
            double lossSum = 0;
            lora.P.ZeroGrad();
            model.P.ZeroGrad();
            foreach (var chunk in batch.Chunk(Math.Max(1, o.MicroBatch)))
            {
                var (tokens, targets, t, counted) = TrainingExamples.Pack(chunk, source.PadId);
                lossSum += model.Forward(tokens, targets, chunk.Length, t) * counted;
                model.Backward(LossWeights(targets, total));
                tokensSeen += chunk.Sum(x => x.Ids.Length);
            }
            float loss = (float)(lossSum / Math.Max(1, total));
            float norm = Schedule.ClipGlobalNorm(lora.P.Grad, 1f);
            float lr = Schedule.WarmupCosine(step, o.Warmup, o.Steps, o.MaxLr, o.MinLr);
            opt.Update(lora.P.Data, lora.P.Grad, lr);
            bool last = step == o.Steps - 1;
            double? eval = null;
            if (task != null && mergeable && ((o.EvalEvery > 0 && (step + 1) % o.EvalEvery == 0) || last))
            {
                WriteMerged(o.Base, lora, MergedPath);
                using var engine = new RolloutEngine(MergedPath, o.Threads);
                eval = Evaluation.Run(engine, task, o.EvalN, 1, split: o.EvalSplit).PassAt1;
            }
            double tps = tokensSeen / Math.Max(1e-9, sw.Elapsed.TotalSeconds);
            csv.Append(step, loss, lr, norm, Math.Round(tps, 1), Math.Round(sw.Elapsed.TotalSeconds, 2), eval?.ToString("F4", CultureInfo.InvariantCulture) ?? "");
            if ((step + 1) % o.CheckpointEvery == 0 || last)
            {
                Checkpoint.Save(CheckpointPath, model.Config, step + 1, lora.P, opt, tag);
                lora.Write(AdapterPath, file.Architecture!);
            }
            onStep?.Invoke(new SftStep(step, o.Steps, loss, lr, norm, tps, sw.Elapsed, eval));
        }
        if (!File.Exists(AdapterPath)) lora.Write(AdapterPath, file.Architecture!);
        if (mergeable && !File.Exists(MergedPath)) WriteMerged(o.Base, lora, MergedPath);
    }

    private float[] _weights = [];

    private ReadOnlySpan<float> LossWeights(int[] targets, int total)
    {
        if (_weights.Length < targets.Length) _weights = new float[targets.Length];
        for (int i = 0; i < targets.Length; i++) _weights[i] = targets[i] >= 0 ? 1f / total : 0f;
        return _weights.AsSpan(0, targets.Length);
    }

    /// <summary>True for an F32 llama/deepseek2 file of the layout and vocabulary Sputnik's own trainer writes (the bundled model).</summary>
    public static bool IsSputnikModel(string path)
    {
        try
        {
            using (var f = GgufFile.Open(path))
                if (f.GetStringOrNull(GgufKeys.ChatTemplate) != R1Format.ChatTemplate || f.GetStringOrNull(GgufKeys.TokenizerModel) != "llama") return false;
            GgufExport.Read(path);
            return true;
        }
        catch (GgufFormatException) { return false; }
    }

    /// <summary>Writes base + scale·B·A for every adapted matrix as an F32 model (bases Sputnik's trainer wrote).</summary>
    public static void WriteMerged(string basePath, LoraSet lora, string path, float adapterScale = 1f)
    {
        var m = GgufExport.Read(basePath);
        foreach (var en in lora.Entries)
        {
            var dst = m.P.W(m.P[en.Name]);
            for (int e = 0; e < en.Matrices.Length; e++)
            {
                var merged = lora.Merged(en, e, adapterScale);
                merged.CopyTo(dst.Slice(e * merged.Length, merged.Length));
            }
        }
        using (var f = GgufFile.Open(basePath)) GgufExport.Write(m, path, f.GetStringOrNull(GgufKeys.GeneralName));
    }
}
