using System.Diagnostics;
using Sputnik.Gguf;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;

/// <summary>
/// Decode's routed-expert products on a real MoE file, one thread, the file-layout rows kernels against the
/// row-by-row path, alternating in one process: per token and MoE layer, k random experts' gate and up slices
/// (memory-mapped, as a model reads them) times one activation.
/// dotnet run -c Release --project bench/Sputnik.Bench -- experts MODEL.gguf [k] [tokens] [tensor]
/// </summary>
internal static unsafe class ExpertBench
{
    public static void Run(string[] args)
    {
        using var file = GgufFile.Open(args[0]);
        int k = args.Length > 1 ? int.Parse(args[1]) : 6, tokens = args.Length > 2 ? int.Parse(args[2]) : 8;
        string part = args.Length > 3 ? args[3] : "ffn_gate_exps";
        var mats = new List<(nint W, GgmlType Type, int Rows, int Cols, int Count)>();
        for (int l = 0; ; l++)
        {
            var t = file.FindTensor($"blk.{l}.{part}.weight");
            if (t == null) { if (l > 3) break; continue; }
            mats.Add(((nint)file.DataPointer(t), t.Type, (int)t.Dims[1], (int)t.Dims[0], (int)t.Dims[2]));
        }
        var (_, type, rows, cols, count) = mats[0];
        long rb = GgmlTypeInfo.RowBytes(type, cols);
        var rng = new Random(1);
        var x = new float[cols];
        for (int i = 0; i < cols; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var act = new byte[MatVec.ScratchBytes(type, cols)];
        MatVec.QuantizeActivation(type, x, act);
        var y = new float[rows];
        // The same experts for both kernels: a token's picks, drawn once.
        var picks = new int[tokens, mats.Count, k];
        for (int t = 0; t < tokens; t++) for (int m = 0; m < mats.Count; m++) for (int j = 0; j < k; j++) picks[t, m, j] = rng.Next(count);
        double bytesPerToken = (double)mats.Count * k * rows * rb;
        Console.WriteLine($"{part}: {mats.Count} layers, {type} {rows}x{cols}, {count} experts, k = {k}: {bytesPerToken / 1e6:F0} MB per token");
        for (int round = 0; round < 6; round++)
            foreach (bool four in round % 2 == 0 ? new[] { true, false } : new[] { false, true }) // alternating who reads first (page-cache refills)
            {
                MatVec.KFourRows = four;
                long t0 = Stopwatch.GetTimestamp();
                for (int t = 0; t < tokens; t++)
                    for (int m = 0; m < mats.Count; m++)
                        for (int j = 0; j < k; j++)
                        {
                            var w = new ReadOnlySpan<byte>((byte*)mats[m].W + picks[t, m, j] * rows * rb, (int)(rows * rb));
                            MatVec.ComputeRows(type, w, cols, act, y, 0, rows);
                        }
                double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                Console.WriteLine($"  round {round} {(four ? "four-row" : "row-by-row")}: {tokens * bytesPerToken / s / 1e9:F1} GB/s ({s / tokens * 1e3:F2} ms per token)");
            }
        MatVec.KFourRows = true;
    }
}
