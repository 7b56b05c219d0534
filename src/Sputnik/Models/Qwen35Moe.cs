using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// `qwen35moe` (Qwen3.5-35B-A3B and larger) as llama.cpp's src/models/qwen35moe.cpp: qwen35's hybrid layers with a
/// routed FFN in every layer (qwen3moe's routing: softmax, top-k, weights renormalised, no scale) plus a shared expert
/// (expert_shared_feed_forward_length wide) whose output is scaled per token by sigmoid(ffn_gate_inp_shexp · x).
/// </summary>
internal static class Qwen35Moe
{
    public const string Name = "qwen35moe";

    public static ModelConfig Config(GgufFile file) => Qwen35.Read(file, Name, Qwen3Moe.Routing).Config;

    public static LanguageModel Load(GgufFile file, WorkerPool pool)
    {
        var (c, p) = Qwen35.Read(file, Name, Qwen3Moe.Routing);
        return new Qwen35Decoder(file, c, p, pool);
    }

    private static ModelConfig Shape(int dim, int layers, int heads, int kvHeads, int vocab, int context, int keyHeads, int valueHeads,
        int experts, int used, int expertFfn, int sharedFfn, int headDim = 256, int ropeDims = 64, int stateSize = 128, int interval = 4) =>
        Qwen35.Shape(Name, dim, layers, expertFfn, heads, kvHeads, vocab, context, keyHeads, valueHeads, headDim, ropeDims, stateSize, interval, sharedFfn) with
        {
            Moe = Qwen3Moe.Routing with { ExpertCount = experts, ExpertsUsed = used }, ExpertFfnDim = expertFfn,
        };

    public static readonly ArchitectureInfo Info = new(Name, Load)
    {
        RopeNeox = true,
        HfArchitectures = ["Qwen3_5MoeForCausalLM", "Qwen3_5MoeForConditionalGeneration"],
        Convert = Qwen35Hf.Conversion,
        Synth = new SynthStyle("qwen35", AddBos: false, Qwen35.ChatTemplate),
        Tensors = Qwen35.Tensors,
        SynthPresets =
        [
            new("qwen35moe-tiny", Shape(256, 4, 4, 2, 1000, 4096, keyHeads: 2, valueHeads: 4, experts: 16, used: 4, expertFfn: 128, sharedFfn: 256,
                headDim: 64, ropeDims: 16, stateSize: 32, interval: 2), TiedEmbeddings: false),
            // Qwen3.5-35B-A3B: 40 layers of width 2048, 256 experts of 512 (8 used) and a shared one of 512.
            new("qwen3.5-35b-a3b", Shape(2048, 40, 16, 2, 248320, 262144, keyHeads: 16, valueHeads: 32, experts: 256, used: 8, expertFfn: 512, sharedFfn: 512), TiedEmbeddings: false),
        ],
    };
}
