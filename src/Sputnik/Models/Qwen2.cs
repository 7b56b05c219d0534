using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// `qwen2` (Qwen2/2.5, DeepSeek-R1-Distill-Qwen): llama blocks plus Q/K/V biases, NeoX RoPE pairing
/// (the converter does not permute Q/K), rope base 1e6 in the files.
/// </summary>
internal static class Qwen2
{
    public const string Name = "qwen2";

    public static LanguageModel Load(GgufFile file, WorkerPool pool) =>
        new LlamaDecoder(file, ModelConfig.FromGguf(file, Name, ropeNeox: true), pool);
}
