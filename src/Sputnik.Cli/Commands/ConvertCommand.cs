using System.CommandLine;
using Sputnik.Conversion;

namespace Sputnik.Cli.Commands;

/// <summary>`sputnik convert HF_DIR OUT.gguf [--type F16|BF16|Q8_0|Q4_K_M]` — Hugging Face checkpoint to GGUF.</summary>
internal static class ConvertCommand
{
    public static Command Create()
    {
        var dir = new Argument<string>("HF_DIR") { Description = "Hugging Face model folder (config.json, *.safetensors, tokenizer.json)" };
        var output = new Argument<string>("OUT") { Description = "GGUF file to write" };
        var type = new Option<string>("--type") { Description = "Weight type: F32, F16, BF16, Q8_0 or Q4_K_M", DefaultValueFactory = _ => "F16" };
        var cmd = new Command("convert", $"Convert a Hugging Face checkpoint ({string.Join(", ", HfConverter.Architectures.Values.Distinct())}) to GGUF") { dir, output, type };
        cmd.SetAction(r =>
        {
            string t = r.GetValue(type)!;
            if (!Enum.TryParse<ConvertType>(t, ignoreCase: true, out var ct) || int.TryParse(t, out _))
                throw new ArgumentException($"--type {t}: expected one of {string.Join(", ", Enum.GetNames<ConvertType>())}");
            string outPath = r.GetValue(output)!;
            var started = System.Diagnostics.Stopwatch.StartNew();
            ProgressBar.Run($"convert {ct}", report =>
            {
                HfConverter.Convert(r.GetValue(dir)!, outPath, ct, (done, total, name) => report(done, total, name));
                return 0;
            });
            Console.Error.WriteLine($"wrote {outPath} ({new FileInfo(outPath).Length / (1024.0 * 1024.0):F1} MiB, {ct}) in {started.Elapsed.TotalSeconds:F1} s");
            return 0;
        });
        return cmd;
    }
}
