using System.Diagnostics;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;

// Single-threaded matvec throughput: dotnet run -c Release --project bench/Sputnik.Bench [rows] [cols] [types...]
// Multi-sequence decode:            dotnet run -c Release --project bench/Sputnik.Bench batch <model.gguf> [threads] [steps] [B...] [only]
// Server soak (exit 1 on failure):  dotnet run -c Release --project bench/Sputnik.Bench soak [--model m.gguf] [--seconds 60] [--clients 100] [--parallel 8] [--max-tokens 48] [--cache-mb 64]
// Tiny random HF checkpoint:        dotnet run -c Release --project bench/Sputnik.Bench hf llama|qwen2|deepseek-v2|deepseek-v3 OUT_DIR [seed]
// Whole-model prefill/decode:        dotnet run -c Release --project bench/Sputnik.Bench model [Q4_K|Q8_0] [threads] [pp] [tg] [F16|F32|Q8_0]
// Decode attention at depth:        dotnet run -c Release --project bench/Sputnik.Bench attn [depth] [F16|F32|Q8_0|Q4_0] [seconds]
// Prefill attention (one layer):    dotnet run -c Release --project bench/Sputnik.Bench attn prefill [depth] [type] [seconds] [tokens] [old,new]
// MLA decode attention (V2-Lite):  dotnet run -c Release --project bench/Sputnik.Bench attn mla [depth] [seconds] [passes]
// Logits along llama.cpp's path:   dotnet run -c Release --project bench/Sputnik.Bench logits MODEL.gguf LLAMA.json OUT.bin [ctx] [ctk] [ctv] [threads]
// Training step (fwd/bwd/opt):     dotnet run -c Release --project bench/Sputnik.Bench train [preset] [threads] [B] [T] [steps]
// Embeddings/s (embed-bench.sh):   dotnet run -c Release --project bench/Sputnik.Bench embed prepare|run ...
// Training trace lengths:           dotnet run -c Release --project bench/Sputnik.Bench train-traces [task] [n]
// Speculative decoding (bundled):   dotnet run -c Release --project bench/Sputnik.Bench spec TARGET.gguf [DRAFT.gguf|-] [prompts] [threads] [reps]
// Verification cost k = 1…16:       dotnet run -c Release --project bench/Sputnik.Bench verify MODEL.gguf [threads] [depth] [reps] [kmax]
// Quantized kernels vs ggml-cpu:   dotnet run -c Release --project bench/Sputnik.Bench quant-check write IN.bin | compare IN.bin GGML.bin (bench/check-quant-kernels.sh)
// Arithmetic ceilings (FMA, int8): dotnet run -c Release --project bench/Sputnik.Bench peak [seconds]
// Server speculation crossover:    dotnet run -c Release --project bench/Sputnik.Bench spec-batch TARGET.gguf [DRAFT.gguf|-] [threads] [reps] [B...]
Action<string[]>? mode = args.Length == 0 ? null : args[0] switch
{
    "matmul" => MatMulBench.Run,
    "q4kx" => InterleaveBench.Run,
    "dram" => DramBench.Run,
    "peak" => PeakBench.Run,
    "experts" => ExpertBench.Run,
    "batch" => BatchBench.Run,
    "model" => ModelBench.Run,
    "train" => TrainBench.Run,
    "train-traces" => TraceStats.Run,
    "hf" => HfCheckpoint.Run,
    "attn" => AttnBench.Run,
    "logits" => LogitsDump.Run,
    "embed" => EmbedBench.Run,
    "spec" => SpecBench.Run,
    "verify" => VerifyBench.Run,
    "spec-batch" => SpecBatchBench.Run,
    "quant-check" => QuantCheck.Run,
    _ => null,
};
if (args.Length > 0 && args[0] == "soak") Environment.Exit(await SoakBench.RunAsync(args[1..]));
if (mode != null)
{
    mode(args[1..]);
    return;
}
int rows = args.Length > 0 ? int.Parse(args[0]) : 1536;
int cols = args.Length > 1 ? int.Parse(args[1]) : 8960;
GgmlType[] types = args.Length > 2 ? args[2..].Select(Enum.Parse<GgmlType>).ToArray() : [GgmlType.Q4_K, GgmlType.Q8_0];
Console.WriteLine($"Vector512.IsHardwareAccelerated={Vector512.IsHardwareAccelerated} Avx512BW={Avx512BW.IsSupported} Vector256={Vector256.IsHardwareAccelerated} Avx2={Avx2.IsSupported} AvxVnni={AvxVnni.IsSupported}");

var rng = new Random(1);
float[] row = new float[cols];
float[] x = new float[cols];
for (int i = 0; i < cols; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
foreach (GgmlType t in types)
{
    int rb = (int)GgmlTypeInfo.RowBytes(t, cols);
    var w = new byte[(long)rb * rows];
    for (int r = 0; r < rows; r++)
    {
        for (int i = 0; i < cols; i++) row[i] = (float)(rng.NextDouble() * 2 - 1);
        Quant.Row(t, row, w.AsSpan(r * rb, rb));
    }
    var y = new float[rows];
    var scratch = new byte[MatVec.ScratchBytes(t, cols)];
    for (int i = 0; i < 20; i++) MatVec.Compute(t, w, rows, cols, x, y, scratch); // warm up / tier up
    int iters = 0;
    var sw = Stopwatch.StartNew();
    double best = double.MaxValue;
    while (sw.Elapsed.TotalSeconds < 2)
    {
        long t0 = Stopwatch.GetTimestamp();
        MatVec.Compute(t, w, rows, cols, x, y, scratch);
        best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds);
        iters++;
    }
    double avg = sw.Elapsed.TotalSeconds / iters;
    Console.WriteLine($"{t,-5} {rows}x{cols}: {w.Length / 1e6:F1} MB, avg {avg * 1e3:F3} ms ({w.Length / avg / 1e9:F2} GB/s), best {best * 1e3:F3} ms ({w.Length / best / 1e9:F2} GB/s), {iters} iters");
}
