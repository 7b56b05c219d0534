using System.CommandLine;
using System.Diagnostics;
using Sputnik.Tools;

namespace Sputnik.Cli.Commands;

/// <summary>`sputnik quantize IN.gguf OUT.gguf TYPE` — llama-quantize's type mixes, streamed tensor by tensor.</summary>
internal static class QuantizeCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = "Source GGUF (any type Sputnik decodes), or a hub reference (owner/repo[:QUANT])" };
        var output = new Argument<string>("output") { Description = "GGUF file to write (never the input)" };
        var type = new Argument<string>("type") { Description = $"Target type: {string.Join(", ", QuantMix.TypeNames)}" };
        var threads = CliOptions.Threads();
        var cmd = new Command("quantize", "Re-encode a GGUF model to another type (llama.cpp's quantization mixes)") { input, output, type, threads };
        cmd.SetAction(r =>
        {
            var fileType = QuantMix.Parse(r.GetValue(type)!);
            if (r.GetValue(threads) < 1) throw new ArgumentException($"-t {r.GetValue(threads)} must be at least 1");
            string src = CliOptions.ResolveModel(r.GetValue(input)), dst = r.GetValue(output)!;
            if (!File.Exists(src)) throw new FileNotFoundException($"model file not found: {src}", src);
            var sw = Stopwatch.StartNew();
            var result = ProgressBar.Run($"quantize {QuantMix.Name(fileType)}", progress =>
                GgufQuantizer.Quantize(src, dst, fileType, r.GetValue(threads), progress));
            string types = string.Join(", ", result.TensorTypes.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}: {kv.Value}"));
            Console.Error.WriteLine($"wrote {dst}: {QuantMix.Describe(fileType)}, {ProgressBar.Size(result.InputBytes)} -> {ProgressBar.Size(result.OutputBytes)} " +
                $"in {sw.Elapsed.TotalSeconds:F1} s (tensors {types})");
            return 0;
        });
        return cmd;
    }
}
