using Sputnik.Models;

namespace Sputnik.Conversion;

/// <summary>
/// How `sputnik convert` turns a Hugging Face checkpoint into one architecture's GGUF, as llama.cpp's converter for it
/// does, declared next to the architecture (<see cref="ArchitectureInfo.Convert"/>): config.json → the family's
/// hyper-parameter record (whose WriteKeys writes the `{arch}.*` keys, as for `synth` and the training export), and
/// the checkpoint's tensors → the GGUF tensors in file order, with any layout or value transform (llama's Q/K
/// permutation, gemma's 1 + w norms, deepseek2's kv_b split). Everything else (general.* keys, types, the tokenizer,
/// streaming) is <see cref="HfConverter"/>'s, the same for every architecture.
/// </summary>
internal sealed record HfConversion(Func<HfCheckpoint, IArchConfig> ReadConfig, Action<HfTensorPlan, IArchConfig> PlanTensors)
{
    /// <summary>A conversion whose plan takes the config record its reader returns.</summary>
    public static HfConversion Of<TConfig>(Func<HfCheckpoint, TConfig> readConfig, Action<HfTensorPlan, TConfig> planTensors)
        where TConfig : IArchConfig =>
        new(ck => readConfig(ck), (plan, c) => planTensors(plan, (TConfig)c));
}
