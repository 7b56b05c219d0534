using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// `llama` (Llama 2/3, Mistral, R1-Distill-Llama, llama2.c models). The GGUF converter permutes Q/K rows so
/// RoPE uses adjacent pairs (normal pairing). Llama 3.1 frequency scaling arrives as a `rope_freqs` tensor.
/// </summary>
internal static class Llama
{
    public const string Name = "llama";

    public static LanguageModel Load(GgufFile file, WorkerPool pool) =>
        new DecoderModel(file, ModelConfig.FromGguf(file, Name, ropeNeox: false), pool);
}
