using System.CommandLine;
using System.Diagnostics;
using Sputnik.Tools;

namespace Sputnik.Cli.Commands;

/// <summary>
/// `sputnik export --merge BASE ADAPTER OUT [--type Q4_K_M] [--scale S]` — a LoRA adapter folded into its base model
/// (llama.cpp's llama-export-lora): the adapted tensors are decoded, given scale·alpha/rank·B·A and re-encoded, in
/// their own type or the --type mix; every other tensor is copied.
/// </summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var merge = new Option<string[]>("--merge")
        {
            Description = "BASE ADAPTER OUT: the base model (GGUF or hub reference), the LoRA adapter GGUF and the merged GGUF to write",
            Arity = new ArgumentArity(3, 3),
            AllowMultipleArgumentsPerToken = true,
            Required = true,
        };
        var type = new Option<string?>("--type") { Description = $"Re-encode the merged model to this mix: {string.Join(", ", QuantMix.TypeNames)} (default: keep each tensor's type)" };
        var scale = new Option<float>("--scale") { Description = "Scale of the adapter's delta (1 = as trained)", DefaultValueFactory = _ => 1f };
        var threads = CliOptions.Threads();
        var cmd = new Command("export", "Write a model with a LoRA adapter merged into its weights") { merge, type, scale, threads };
        cmd.SetAction(r =>
        {
            var paths = r.GetValue(merge)!;
            FileType? fileType = r.GetValue(type) is { } t ? QuantMix.Parse(t) : null;
            if (!float.IsFinite(r.GetValue(scale))) throw new ArgumentException("--scale must be a finite number");
            string src = CliOptions.ResolveModel(paths[0]), adapter = paths[1], dst = paths[2];
            if (!File.Exists(adapter)) throw new FileNotFoundException($"adapter file not found: {adapter}", adapter);
            if (GgufQuantizer.SameFile(adapter, dst)) throw new ArgumentException($"output '{dst}' would overwrite the adapter");
            var sw = Stopwatch.StartNew();
            var result = ProgressBar.Run("merge", progress =>
                GgufQuantizer.Quantize(src, dst, fileType, r.GetValue(threads), progress, merge: new LoraMerge(adapter, r.GetValue(scale))));
            Console.Error.WriteLine($"wrote {dst}: {Path.GetFileName(adapter)} merged into {Path.GetFileName(src)}, " +
                $"{ProgressBar.Size(result.OutputBytes)} in {sw.Elapsed.TotalSeconds:F1} s");
            return 0;
        });
        return cmd;
    }
}
