using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>
/// How deepseek2's MLA attention splits its work over threads (heads in one share per thread within a segment of
/// context, segments beyond it; token blocks × head shares in prefill) and its per-head matrices re-laid at load:
/// none of it may change a bit of the logits.
/// </summary>
public class DeepSeek2AttentionTests
{
    // The tiny preset with head matrices that fill whole Q8_0 blocks and 16-row groups, so they can be re-laid:
    // attn_k_b slices are 32 (rank) × 32 (nope), attn_v_b slices 16 (v) × 32 (rank).
    private static readonly DeepSeek2Config Shape = DeepSeek2Synth.Tiny with { QkNopeDim = 32, KvLoraRank = 32, VHeadDim = 16 };

    private static string Write(string dir)
    {
        string path = Path.Combine(dir, "mla.gguf");
        var w = new GgufWriter();
        DeepSeek2Synth.Write(w, Shape, GgmlType.Q8_0, seed: 5);
        w.Write(path);
        return path;
    }

    private static int[] Tokens(int n, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => rng.Next(Shape.VocabSize)).ToArray();
    }

    /// <summary>Logits of a prefill of <paramref name="prompt"/> (chunks of <paramref name="chunk"/>), then of each decode step.</summary>
    private static List<float[]> Run(string path, int threads, int[] prompt, int[] steps, int chunk, bool repack = true)
    {
        var file = GgufFile.Open(path);
        file.RepackWeights = repack;
        using var model = (DeepSeek2)ModelLoader.Load(file, threads);
        model.MaxBatch = chunk;
        var state = model.CreateState(prompt.Length + steps.Length + 1, KvCacheType.F16);
        var logits = new List<float[]> { model.Forward(state, prompt).ToArray() };
        foreach (int t in steps) logits.Add(model.Forward(state, [t]).ToArray());
        return logits;
    }

    [Fact]
    public void Decode_past_two_segments_matches_one_thread_bit_for_bit()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-mla-");
        try
        {
            string path = Write(dir.FullName);
            // 2·Segment + 40 positions: with two threads the last steps attend three segments, split over the threads
            // and merged; with one thread the same positions go through one call.
            int[] prompt = Tokens(2 * FlashAttention.Segment + 40, seed: 1), steps = [7, 19, 3];
            var one = Run(path, threads: 1, prompt, steps, chunk: 256);
            var two = Run(path, threads: 2, prompt, steps, chunk: 256);
            for (int i = 0; i < one.Count; i++) Assert.Equal(one[i], two[i]);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData(5)]   // one token block: the heads split in shares
    [InlineData(40)]  // three token blocks, the last one short
    public void Prefill_token_blocks_match_token_by_token_decode(int chunk)
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-mla-");
        try
        {
            string path = Write(dir.FullName);
            int[] prompt = Tokens(83, seed: 2);
            var batched = Run(path, threads: 2, prompt, [11], chunk);
            // Token by token: every position through the decode path.
            var stepped = Run(path, threads: 2, prompt[..1], prompt[1..].Append(11).ToArray(), chunk: 1);
            // The prefill's matrices multiply several rows at once, which may sum in another order on some kernel
            // paths: close, not equal (on the AVX-512 path here they were equal to the bit).
            AssertClose(stepped[^2], batched[0]);
            AssertClose(stepped[^1], batched[1]);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Head_matrices_are_relaid_and_give_the_file_layouts_logits()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-mla-");
        try
        {
            string path = Write(dir.FullName);
            using (var file = GgufFile.Open(path))
            {
                var kb = TensorSlices.Split3D(file, "blk.1.attn_k_b.weight", Shape.QkNopeDim, Shape.KvLoraRank, Shape.Heads, relayAtLoad: true);
                Assert.Equal(Interleaving.Supports(GgmlType.Q8_0, Shape.KvLoraRank, Shape.QkNopeDim), kb[1].IsInterleaved);
            }
            int[] prompt = Tokens(20, seed: 3);
            var relaid = Run(path, threads: 2, prompt, [5, 6], chunk: 8);
            var plain = Run(path, threads: 2, prompt, [5, 6], chunk: 8, repack: false);
            // The interleaved kernels sum in another order than the file layout's (measured max |Δlogit| 6e-8).
            for (int i = 0; i < relaid.Count; i++) AssertClose(plain[i], relaid[i]);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    // Logits here reach 0.82; the differences measured were at most 6e-8 (summation order only).
    private static void AssertClose(float[] want, float[] got)
    {
        Assert.Equal(want.Length, got.Length);
        for (int i = 0; i < want.Length; i++) Assert.True(Math.Abs(got[i] - want[i]) < 1e-5, $"logit {i}: {got[i]} vs {want[i]}");
    }
}
