using System.CommandLine;
using System.Globalization;

namespace Sputnik.Cli;

/// <summary>
/// LoRA adapter flags of run, chat and serve under llama.cpp's names: --lora FILE (scale 1) and
/// --lora-scaled FILE SCALE, both repeatable; the adapters get ids 0, 1, … in the order given (--lora ones first, as
/// llama.cpp's common_params collects them).
/// </summary>
internal sealed class LoraFlags
{
    private readonly Option<string[]> _lora = new("--lora")
    {
        Description = "LoRA adapter GGUF to apply at scale 1 (repeatable)",
        AllowMultipleArgumentsPerToken = false,
    };
    private readonly Option<string[]> _scaled = new("--lora-scaled")
    {
        Description = "LoRA adapter GGUF and its scale: --lora-scaled FILE SCALE (repeatable)",
        AllowMultipleArgumentsPerToken = true,
    };

    public void AddTo(Command command)
    {
        command.Options.Add(_lora);
        command.Options.Add(_scaled);
    }

    /// <summary>The adapters typed, in id order.</summary>
    public IReadOnlyList<LoraAdapterOptions> Read(ParseResult r)
    {
        var adapters = new List<LoraAdapterOptions>();
        foreach (string path in r.GetValue(_lora) ?? []) adapters.Add(new(path, 1f));
        var scaled = r.GetValue(_scaled) ?? [];
        if (scaled.Length % 2 != 0)
            throw new ArgumentException("--lora-scaled takes a file and a scale: --lora-scaled FILE SCALE");
        for (int i = 0; i < scaled.Length; i += 2)
        {
            if (!float.TryParse(scaled[i + 1], NumberStyles.Float, CultureInfo.InvariantCulture, out float scale) || !float.IsFinite(scale))
                throw new ArgumentException($"--lora-scaled {scaled[i]}: the scale '{scaled[i + 1]}' is not a number");
            adapters.Add(new(scaled[i], scale));
        }
        return adapters;
    }
}
