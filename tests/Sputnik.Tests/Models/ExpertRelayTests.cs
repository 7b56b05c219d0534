using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;
using Sputnik.Tools;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>
/// MoE routed experts re-laid into the interleaved layout at their first use (<see cref="WeightMatrix.EnsureRelaid"/>):
/// nothing is re-laid at load, a used expert is, an unused one stays in the mapping, the products match the file
/// layout's, and threads that first use one matrix together get the re-laid rows once.
/// </summary>
public sealed class ExpertRelayTests : IClassFixture<ExpertRelayTests.TinyMoe>
{
    /// <summary>qwen3moe-tiny at Q4_K_M: gate/up experts Q4_K (256 columns, 128 rows), down experts Q8_0 or Q5_0.</summary>
    public sealed class TinyMoe : IDisposable
    {
        private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("sputnik-expert-relay-");

        public TinyMoe()
        {
            string f32 = System.IO.Path.Combine(_dir.FullName, "f32.gguf");
            SyntheticModel.Write(f32, new SynthOptions { Preset = SyntheticModel.FindPreset("qwen3moe-tiny"), FileType = FileType.AllF32, Seed = 5, Threads = 2 });
            Path = System.IO.Path.Combine(_dir.FullName, "q4km.gguf");
            GgufQuantizer.Quantize(f32, Path, FileType.Q4_K_M, threads: 2);
        }

        public string Path { get; }

        public void Dispose() => _dir.Delete(recursive: true);
    }

    private readonly TinyMoe _moe;

    public ExpertRelayTests(TinyMoe moe) => _moe = moe;

    private static void SkipWithoutInterleaving()
    {
        if (!Interleaving.Supports(GgmlType.Q4_K, 128, 256)) Assert.Skip("no 16-row interleaved Q4_K kernel on this CPU (AVX-512 off or absent)");
    }

    [Fact]
    public void An_expert_is_re_laid_at_its_first_product_and_agrees_with_the_file_layout()
    {
        SkipWithoutInterleaving();
        using var file = GgufFile.Open(_moe.Path);
        using var plainFile = GgufFile.Open(_moe.Path);
        plainFile.RelayExperts = false;
        const string name = "blk.1.ffn_gate_exps.weight";
        var info = file.GetTensor(name);
        int cols = (int)info.Dims[0], rows = (int)info.Dims[1], count = (int)info.Dims[2];
        Assert.True(TensorSlices.ExpertsRelay(file));
        var experts = TensorSlices.Split3D(file, name, cols, rows, count, experts: true);
        var plain = TensorSlices.Split3D(plainFile, name, cols, rows, count, experts: true);
        Assert.All(experts, e => Assert.True(e.RelayPending && !e.IsInterleaved));
        Assert.All(plain, e => Assert.False(e.RelayPending || e.IsInterleaved));

        var rng = new Random(3);
        var x = new float[cols * 3];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var input = new byte[3 * experts[0].InputBytes];
        experts[0].PrepareInputs(x, input, 0, 3);
        foreach (int e in new[] { 2, 9 })
            foreach (int tokens in new[] { 1, 3 })
            {
                var want = new float[tokens * rows];
                var got = new float[tokens * rows];
                plain[e].MatMulRows(input, tokens, want, 0, rows);
                experts[e].MatMulRows(input, tokens, got, 0, rows);
                for (int i = 0; i < want.Length; i++)
                    Assert.True(Math.Abs(want[i] - got[i]) <= 1e-5f * Math.Abs(want[i]) + 1e-5f, $"expert {e}, {tokens} tokens, [{i}]: {got[i]} vs {want[i]}");
            }
        for (int e = 0; e < count; e++)
        {
            bool used = e is 2 or 9;
            Assert.Equal(!used, experts[e].RelayPending);
            Assert.Equal(used, experts[e].IsInterleaved);
        }

        // A row read is a first use too, and decodes the same row.
        var a = new float[cols];
        var b = new float[cols];
        plain[5].GetRow(77, a);
        experts[5].GetRow(77, b);
        Assert.Equal(a, b);
        Assert.False(experts[5].RelayPending);
    }

    [Fact]
    public void Threads_that_first_use_one_expert_together_get_the_same_products()
    {
        SkipWithoutInterleaving();
        using var file = GgufFile.Open(_moe.Path);
        const string name = "blk.0.ffn_up_exps.weight";
        var info = file.GetTensor(name);
        int cols = (int)info.Dims[0], rows = (int)info.Dims[1], count = (int)info.Dims[2];
        var expert = TensorSlices.Split3D(file, name, cols, rows, count, experts: true)[4];
        var eager = new WeightMatrix(file, new GgufTensorInfo("eager", [cols, rows], info.Type, info.Offset + 4L * rows * expert.RowBytes, (long)rows * expert.RowBytes) { Shard = info.Shard });
        Assert.True(eager.IsInterleaved && expert.RelayPending);

        var x = new float[cols];
        var rng = new Random(8);
        for (int i = 0; i < cols; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var input = new byte[expert.InputBytes];
        expert.PrepareInput(x, input);
        var want = new float[rows];
        eager.MatVecRows(input, want, 0, rows);

        // Eight threads of their own (not pool tasks, which could queue behind the barrier), each its own row range,
        // released at once onto the pending matrix.
        const int threads = 8;
        var got = new float[rows];
        using var start = new Barrier(threads);
        Exception? error = null; // an exception escaping a thread of its own would end the test process
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            try
            {
                start.SignalAndWait();
                int r0 = t * rows / threads, r1 = (t + 1) * rows / threads;
                expert.MatVecRows(input, got, r0, r1);
            }
            catch (Exception e) { Interlocked.CompareExchange(ref error, e, null); }
        })).ToArray();
        foreach (var w in workers) w.Start();
        foreach (var w in workers) Assert.True(w.Join(TimeSpan.FromMinutes(2)), "a thread did not finish its rows");
        Assert.Null(error);
        Assert.False(expert.RelayPending);
        for (int r = 0; r < rows; r++)
            Assert.True(BitConverter.SingleToInt32Bits(want[r]) == BitConverter.SingleToInt32Bits(got[r]), $"row {r}: {got[r]} vs {want[r]}");
    }

    [Fact]
    public void A_model_with_experts_re_laid_as_used_gives_the_file_layouts_logits()
    {
        SkipWithoutInterleaving();
        using var relaid = ModelLoader.Load(GgufFile.Open(_moe.Path), 2);
        var plainFile = GgufFile.Open(_moe.Path);
        plainFile.RelayExperts = false; // the dense weights re-laid in both: only the experts' layout differs
        using var plain = ModelLoader.Load(plainFile, 2);
        LogitAgreement.AssertAgree(relaid, plain, [1, 7, 42, 99, 3, 250, 17, 8, 64, 5, 300, 12], steps: 4, firstNext: 11);
    }
}
