using Sputnik.Models;
using System.CommandLine;
using System.Diagnostics;
using Sputnik.Tokenizers;
using Sputnik.Tools;

namespace Sputnik.Cli.Commands;

/// <summary>`sputnik synth --arch ARCH --preset NAME --type TYPE -o FILE` — a random-weight GGUF in a real model's shapes.</summary>
internal static class SynthCommand
{
    public static Command Create()
    {
        var arch = new Option<string?>("--arch") { Description = $"Architecture ({string.Join(", ", ModelLoader.SupportedArchitectures)}); must match the preset's" };
        var preset = new Option<string>("--preset") { Description = $"Model shape: {string.Join(", ", SyntheticModel.PresetNames)}", Required = true };
        var type = new Option<string>("--type") { Description = $"File type: {string.Join(", ", QuantMix.TypeNames)}", DefaultValueFactory = _ => "F16" };
        var output = new Option<string>("--output", "-o") { Description = "GGUF file to write", Required = true };
        var seed = new Option<ulong>("--seed") { Description = "Random seed (same seed, same bytes)" };
        var sigma = new Option<float>("--sigma") { Description = "Standard deviation of the random weights (qwen2/llama presets)", DefaultValueFactory = _ => 0.02f };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Hugging Face tokenizer.json to use instead of a synthetic vocabulary" };
        var threads = CliOptions.Threads();
        var cmd = new Command("synth", "Write a GGUF with random weights in a real model's shapes (for benchmarks and tests)")
        {
            arch, preset, type, output, seed, sigma, tokenizer, threads,
        };
        cmd.SetAction(r =>
        {
            if (SyntheticModel.FindOwnPreset(r.GetValue(preset)!) is { } found)
            {
                var (own, writeOwn) = found;
                // An architecture with its own writer (deepseek2): its generator, vocabulary and type rules.
                if (r.GetValue(arch) is { } oa && !string.Equals(oa, own.Arch, StringComparison.OrdinalIgnoreCase))
                    throw new ArgumentException($"preset '{own.Name}' is architecture '{own.Arch}', not '{oa}'");
                if (r.GetValue(tokenizer) != null) throw new ArgumentException($"--tokenizer is not supported for preset '{own.Name}' ({own.Arch} writes its own byte-level vocabulary)");
                if (r.GetValue(threads) < 1) throw new ArgumentException($"-t {r.GetValue(threads)} must be at least 1");
                var osw = Stopwatch.StartNew();
                string opath = r.GetValue(output)!;
                writeOwn(opath, own, QuantMix.Parse(r.GetValue(type)!), r.GetValue(seed), r.GetValue(threads));
                Console.Error.WriteLine($"wrote {opath}: {own.Name} ({own.Arch}), {ProgressBar.Size(new FileInfo(opath).Length)} in {osw.Elapsed.TotalSeconds:F1} s");
                return 0;
            }
            var p = SyntheticModel.FindPreset(r.GetValue(preset)!);
            if (r.GetValue(arch) is { } a && !string.Equals(a, p.Arch, StringComparison.OrdinalIgnoreCase))
                throw new ArgumentException($"preset '{p.Name}' is architecture '{p.Arch}', not '{a}'");
            var fileType = QuantMix.Parse(r.GetValue(type)!);
            if (r.GetValue(threads) < 1) throw new ArgumentException($"-t {r.GetValue(threads)} must be at least 1");
            if (!(r.GetValue(sigma) > 0) || float.IsInfinity(r.GetValue(sigma))) throw new ArgumentException($"--sigma {r.GetValue(sigma)} must be a positive number");
            string path = r.GetValue(output)!;
            TokenizerData? tok = null;
            if (r.GetValue(tokenizer) is { } tj)
            {
                if (!File.Exists(tj)) throw new FileNotFoundException($"tokenizer file not found: {tj}", tj);
                tok = HfTokenizerJson.Load(tj);
                if (tok.Tokens.Length > p.Config.VocabSize) p = p with { Config = p.Config with { VocabSize = tok.Tokens.Length } };
            }
            var options = new SynthOptions { Preset = p, FileType = fileType, Seed = r.GetValue(seed), Sigma = r.GetValue(sigma), Tokenizer = tok, Threads = r.GetValue(threads) };
            var sw = Stopwatch.StartNew();
            ProgressBar.Run($"synth {p.Name} {QuantMix.Name(fileType)}", progress =>
            {
                SyntheticModel.Write(path, options, progress);
                return 0;
            });
            Console.Error.WriteLine($"wrote {path}: {p.Name} ({p.Arch}) {QuantMix.Describe(fileType)}, {ProgressBar.Size(new FileInfo(path).Length)} in {sw.Elapsed.TotalSeconds:F1} s");
            return 0;
        });
        return cmd;
    }
}

/// <summary>
/// `sputnik synth-lora -m BASE -o ADAPTER [--rank 8] [--alpha 16] [--sigma 0.05] [--seed N]` — a random LoRA adapter
/// for every weight BASE's architecture adapts (tests, and the llama.cpp agreement check in bench/).
/// </summary>
internal static class SynthLoraCommand
{
    public static Command Create()
    {
        var model = CliOptions.Model();
        var output = new Option<string>("--output", "-o") { Description = "Adapter GGUF to write", Required = true };
        var rank = new Option<int>("--rank") { Description = "Rank (capped by each matrix)", DefaultValueFactory = _ => 8 }.AtLeast(1);
        var alpha = new Option<float>("--alpha") { Description = "adapter.lora.alpha", DefaultValueFactory = _ => 16f };
        var sigma = new Option<float>("--sigma") { Description = "A and B are uniform in ±sigma", DefaultValueFactory = _ => 0.05f };
        var seed = new Option<int>("--seed") { Description = "Random seed" };
        var cmd = new Command("synth-lora", "Write a LoRA adapter with random weights for a model (for tests and the llama.cpp check)")
        {
            model, output, rank, alpha, sigma, seed,
        };
        cmd.SetAction(r =>
        {
            if (!(r.GetValue(sigma) > 0) || !float.IsFinite(r.GetValue(sigma))) throw new ArgumentException("--sigma must be a positive number");
            using var file = Sputnik.Gguf.GgufFile.Open(CliOptions.ResolveModel(r.GetValue(model)));
            var pairs = LoraAdapter.RandomPairs(file, r.GetValue(rank), r.GetValue(sigma), r.GetValue(seed));
            if (pairs.Count == 0) throw new ArgumentException($"{file.Architecture} model has no weight an adapter applies to");
            string path = r.GetValue(output)!;
            LoraAdapter.Write(path, file.Architecture!, r.GetValue(alpha), pairs);
            Console.Error.WriteLine($"wrote {path}: {pairs.Count} adapted weights, rank {r.GetValue(rank)}, {ProgressBar.Size(new FileInfo(path).Length)}");
            return 0;
        });
        return cmd;
    }
}
