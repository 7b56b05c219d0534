using System.Diagnostics;
using Sputnik.Models;
using Sputnik.Training;
using Sputnik.Training.Tasks;

/// <summary>
/// Training-step throughput for a preset on a fixed batch shape, split into forward / backward / optimizer, plus the
/// GEMM rate at the model's own shapes: `dotnet run -c Release --project bench/Sputnik.Bench train [preset] [threads] [B] [T] [steps]`.
/// </summary>
internal static class TrainBench
{
    public static void Run(string[] args)
    {
        string preset = args.Length > 0 ? args[0] : "tiny-r1";
        Par.Threads = args.Length > 1 ? int.Parse(args[1]) : 2;
        int b = args.Length > 2 ? int.Parse(args[2]) : 16, t = args.Length > 3 ? int.Parse(args[3]) : 160, steps = args.Length > 4 ? int.Parse(args[4]) : 20;
        var cfg = TrainConfig.Preset(preset, R1Format.Tokenizer.VocabSize);
        var model = new TransformerModel(cfg, 1);
        var opt = new AdamW(model.P.Count);
        var rng = new Random(1);
        var tokens = Enumerable.Range(0, b * t).Select(_ => rng.Next(cfg.VocabSize)).ToArray();
        var targets = Enumerable.Range(0, b * t).Select(i => i % t < 20 ? -1 : tokens[(i + 1) % tokens.Length]).ToArray();
        var w = model.MeanLossWeights();
        double fwd = 0, bwd = 0, upd = 0;
        for (int s = -3; s < steps; s++)
        {
            var sw = Stopwatch.StartNew();
            model.Forward(tokens, targets, b, t);
            double f = sw.Elapsed.TotalSeconds;
            model.P.ZeroGrad();
            if (s == -3) w = model.MeanLossWeights();
            model.Backward(w);
            double g = sw.Elapsed.TotalSeconds;
            Schedule.ClipGlobalNorm(model.P.Grad, 1f);
            opt.Update(model.P.Data, model.P.Grad, 1e-3f, model.DecayMask);
            model.UpdateRouterBias();
            double u = sw.Elapsed.TotalSeconds;
            if (s < 0) continue;
            fwd += f; bwd += g - f; upd += u - g;
        }
        double total = fwd + bwd + upd;
        Console.WriteLine($"{preset} params {model.P.Count:N0} B {b} T {t} threads {Par.Threads}: {b * t * steps / total:F0} tokens/s  " +
            $"fwd {fwd / steps * 1e3:F1} ms bwd {bwd / steps * 1e3:F1} ms opt {upd / steps * 1e3:F1} ms per step");
        if (cfg is DeepSeek2Config ds) SublayerTimes(ds, b, t);
        else OpTimes((ModelConfig)cfg, b, t);
        GemmRate(b * t, cfg.Dim, cfg.FfnDim);
        GemmRate(b * t, cfg.FfnDim, cfg.Dim);
        GemmRate(cfg.FfnDim, cfg.Dim, b * t);
    }

    /// <summary>Per-step time of each op family at the model's shapes (all layers), to see where a step goes.</summary>
    private static void OpTimes(ModelConfig c, int b, int t)
    {
        int n = b * t, L = c.Layers;
        var rng = new Random(2);
        float[] R(int len) { var a = new float[len]; for (int i = 0; i < len; i++) a[i] = (float)(rng.NextDouble() - 0.5); return a; }
        var x = R(n * c.Dim); var q = R(n * c.QDim); var k = R(n * c.KvDim); var v = R(n * c.KvDim); var o = R(n * c.QDim);
        var att = new float[b * c.Heads * t * t]; var dq = new float[q.Length]; var dk = new float[k.Length]; var dv = new float[v.Length];
        var w1 = R(c.FfnDim * c.Dim); var h = R(n * c.FfnDim); var dw = new float[w1.Length]; var dx = new float[x.Length];
        var logits = R(n * c.VocabSize); var probs = new float[logits.Length]; var losses = new float[n]; var tg = new int[n];
        float scale = 1f / MathF.Sqrt(c.HeadDim);
        void Time(string name, int perStep, Action a)
        {
            a();
            var sw = Stopwatch.StartNew(); int reps = 0;
            while (sw.Elapsed.TotalSeconds < 0.3) { a(); reps++; }
            Console.WriteLine($"  {name,-28} {sw.Elapsed.TotalMilliseconds / reps * perStep,8:F1} ms/step");
        }
        Time("attention fwd", L, () => Attention.Forward(o, att, q, k, v, b, t, c.Heads, c.KvHeads, c.HeadDim, c.HeadDim, scale));
        Time("attention bwd", L, () => Attention.Backward(dq, dk, dv, o, q, k, v, att, b, t, c.Heads, c.KvHeads, c.HeadDim, c.HeadDim, scale));
        Time("matmul fwd (ffn-sized)", 3 * L, () => TrainOps.MatMulForward(h, x, w1, n, c.Dim, c.FfnDim));
        Time("matmul bwd (ffn-sized)", 3 * L, () => TrainOps.MatMulBackward(dx, dw, h, x, w1, n, c.Dim, c.FfnDim));
        var wd = R(c.Dim); var dwd = new float[c.Dim]; var rstd = new float[n];
        Time("rmsnorm fwd+bwd", 2 * L + 1, () => { TrainOps.RmsNormForward(dx, rstd, x, wd, n, c.Dim, 1e-5f); TrainOps.RmsNormBackward(dx, dwd, x, x, wd, rstd, n, c.Dim); });
        var g = R(h.Length); var u = R(h.Length); var dg = new float[h.Length]; var du = new float[h.Length];
        Time("swiglu fwd+bwd", L, () => { TrainOps.SwiGluForward(h, g, u); TrainOps.SwiGluBackward(dg, du, h, g, u); });
        Time("cross-entropy fwd", 1, () => TrainOps.CrossEntropyForward(losses, probs, logits, tg, n, c.VocabSize));
        var (cos, sin) = TrainOps.RopeTable(c.ContextLength, c.HeadDim, c.RopeBase);
        Time("rope fwd+bwd (q and k)", 2 * L, () => { TrainOps.RopeForward(q, n, t, c.Heads, c.HeadDim, 0, c.HeadDim, cos, sin); TrainOps.RopeForward(k, n, t, c.KvHeads, c.HeadDim, 0, c.HeadDim, cos, sin); });
    }

    /// <summary>DeepSeek layout: forward and backward time of each kind of sub-layer at the preset's shapes, times its layer count.</summary>
    private static void SublayerTimes(DeepSeek2Config ds, int b, int t)
    {
        int n = b * t, moeLayers = Enumerable.Range(0, ds.Layers).Count(ds.IsMoeLayer);
        var p = new ParameterBuffer();
        var mla = new MlaAttention(p, 0, ds.Dim, ds.Heads, ds.KvLoraRank, ds.QkNopeDim, ds.QkRopeDim, ds.VHeadDim, ds.ContextLength, ds.RmsEps, ds.RopeBase);
        var moe = new MoeFeedForward(p, 1, ds.Dim, ds.ExpertCount, ds.ExpertsUsed, ds.ExpertFfnDim, ds.SharedExperts * ds.ExpertFfnDim, ds.ExpertWeightsScale);
        var dense = new SwiGluFeedForward(p, 2, ds.Dim, ds.FfnDim);
        p.Allocate();
        var rng = new Random(2);
        for (int i = 0; i < p.Count; i++) p.Data[i] = (float)(rng.NextDouble() - 0.5) * 0.1f;
        var x = new float[n * ds.Dim]; for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() - 0.5);
        var y = new float[x.Length]; var dx = new float[x.Length];
        void Time(string name, int perStep, ITrainSublayer layer)
        {
            layer.Forward(y, x, b, t); layer.Backward(dx, x);
            double f = 0, g = 0; int reps = 0;
            var total = Stopwatch.StartNew();
            while (total.Elapsed.TotalSeconds < 0.5)
            {
                var sw = Stopwatch.StartNew();
                layer.Forward(y, x, b, t);
                f += sw.Elapsed.TotalMilliseconds;
                layer.Backward(dx, x);
                g += sw.Elapsed.TotalMilliseconds;
                reps++;
            }
            Console.WriteLine($"  {name,-28} fwd {f / reps * perStep,7:F1} bwd {(g - f) / reps * perStep,7:F1} ms/step");
        }
        Time($"MLA attention x{ds.Layers}", ds.Layers, mla);
        Time($"dense SwiGLU x{ds.Layers - moeLayers}", ds.Layers - moeLayers, dense);
        Time($"MoE x{moeLayers}", moeLayers, moe);
    }

    private static unsafe void GemmRate(int m, int n, int k)
    {
        var a = new float[m * k]; var bb = new float[n * k]; var c = new float[m * n];
        fixed (float* pa = a, pb = bb, pc = c)
        {
            for (int i = 0; i < 3; i++) Gemm.ABt(pc, pa, pb, m, n, k, false);
            int reps = 0;
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed.TotalSeconds < 0.5) { Gemm.ABt(pc, pa, pb, m, n, k, false); reps++; }
            Console.WriteLine($"  gemm m {m} n {n} k {k}: {2.0 * m * n * k * reps / sw.Elapsed.TotalSeconds / 1e9:F1} GFLOP/s");
        }
    }
}

/// <summary>`train-traces [task] [n]`: one sample trace per task and the token-length distribution of full sequences.</summary>
internal static class TraceStats
{
    public static void Run(string[] args)
    {
        string name = args.Length > 0 ? args[0] : "arithmetic";
        int n = args.Length > 1 ? int.Parse(args[1]) : 2000;
        var task = ReasoningTask.Create(name);
        var rng = new Random(3);
        var byTask = new Dictionary<string, List<int>>();
        for (int i = 0; i < n; i++)
        {
            var p = task.Sample(rng, heldOut: false);
            int len = R1Format.EncodePrompt(p.Prompt).Length + R1Format.EncodeCompletion(p).Length;
            if (!byTask.TryGetValue(p.Task, out var l)) { byTask[p.Task] = l = []; Console.WriteLine($"--- {p.Task}: {p.Prompt}\n{p.Trace}{p.Answer}"); }
            l.Add(len);
        }
        foreach (var (t, l) in byTask) Console.WriteLine($"{t}: tokens mean {l.Average():F0} max {l.Max()}");
    }
}
