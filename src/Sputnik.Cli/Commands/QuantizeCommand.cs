using System.CommandLine;
using System.Diagnostics;
using Sputnik.Gguf;
using Sputnik.Tools;

namespace Sputnik.Cli.Commands;

/// <summary>
/// `sputnik quantize IN.gguf OUT.gguf TYPE [--split-max-size N(M|G)] [--split-max-tensors N]` — llama-quantize's type
/// mixes, streamed tensor by tensor; with a split option the output is a split set named like gguf-split's.
/// </summary>
internal static class QuantizeCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = "Source GGUF (any type Sputnik decodes)" };
        var output = new Argument<string>("output") { Description = "GGUF file to write (never the input)" };
        var type = new Argument<string>("type") { Description = $"Target type: {string.Join(", ", QuantMix.TypeNames)}" };
        var threads = CliOptions.Threads();
        var splitSize = new Option<string>("--split-max-size")
        {
            Description = "Write a split set (OUT-00001-of-0000N.gguf …, llama.cpp's gguf-split layout) with at most this much tensor data per file: N(M|G), e.g. 2G",
        };
        var splitTensors = new Option<int?>("--split-max-tensors") { Description = "Write a split set with at most N tensors per file" };
        var cmd = new Command("quantize", "Re-encode a GGUF model to another type (llama.cpp's quantization mixes)")
        {
            input, output, type, threads, splitSize, splitTensors,
        };
        cmd.SetAction(r =>
        {
            var fileType = QuantMix.Parse(r.GetValue(type)!);
            if (r.GetValue(threads) < 1) throw new ArgumentException($"-t {r.GetValue(threads)} must be at least 1");
            string src = r.GetValue(input)!, dst = r.GetValue(output)!;
            if (!File.Exists(src)) throw new FileNotFoundException($"model file not found: {src}", src);
            GgufSplitLimits? split = null;
            if (r.GetValue(splitSize) != null || r.GetValue(splitTensors) != null)
                split = new GgufSplitLimits(
                    r.GetValue(splitSize) is { } text ? GgufSplit.ParseSize(text) : long.MaxValue,
                    r.GetValue(splitTensors) ?? int.MaxValue);
            var sw = Stopwatch.StartNew();
            var result = ProgressBar.Run($"quantize {QuantMix.Name(fileType)}", progress =>
                GgufQuantizer.Quantize(src, dst, fileType, r.GetValue(threads), progress, split));
            string types = string.Join(", ", result.TensorTypes.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}: {kv.Value}"));
            string written = result.OutputPaths.Count == 1 ? result.OutputPaths[0] : $"{result.OutputPaths[0]} … ({result.OutputPaths.Count} files)";
            Console.Error.WriteLine($"wrote {written}: {QuantMix.Describe(fileType)}, {ProgressBar.Size(result.InputBytes)} -> {ProgressBar.Size(result.OutputBytes)} " +
                $"in {sw.Elapsed.TotalSeconds:F1} s (tensors {types})");
            return 0;
        });
        return cmd;
    }
}
