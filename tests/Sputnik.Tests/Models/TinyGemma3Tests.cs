using Sputnik.Gguf;
using Sputnik.Models;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>`gemma3` through the engine against <see cref="TinyGemma3"/>'s double-precision forward pass, and its sliding-window attention.</summary>
public class TinyGemma3Tests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("sputnik-gemma3-");

    public void Dispose()
    {
        _dir.Delete(recursive: true);
        GC.SuppressFinalize(this);
    }

    private static void Near(ReadOnlySpan<float> got, double[] want, string what)
    {
        for (int i = 0; i < want.Length; i++) Assert.True(Math.Abs(got[i] - want[i]) < 1e-4, $"{what} logit {i}: {got[i]} vs {want[i]}");
    }

    private static int[] Tokens(int n) => Enumerable.Range(0, n).Select(i => (i * 7 + 3) % TinyGemma3.Vocab).ToArray();

    private (DecoderModel Model, TinyDeepSeek2Tests.Weights W) Load(float softcap = 0f, bool allLocal = false)
    {
        var (path, w) = TinyGemma3.WriteModel(Path.Combine(_dir.FullName, $"m{softcap}-{allLocal}.gguf"), softcap, allLocal);
        return ((DecoderModel)ModelLoader.Load(GgufFile.Open(path), threads: 2), w);
    }

    [Fact]
    public void Hyper_parameters_come_from_llama_cpp_keys()
    {
        var (model, _) = Load();
        using var _m = model;
        var c = model.Config;
        Assert.Equal("gemma3", c.Architecture);
        Assert.True(c.QkNorm && c.RopeNeox);
        Assert.Equal(TinyGemma3.RopeFactor, c.RopeScalingFactor);
        var p = ((Gemma3Decoder)model).Params;
        Assert.Equal(TinyGemma3.Window, p.SlidingWindow);
        Assert.Equal([true, false], p.SlidingLayers);
        Assert.Equal(10000f, p.RopeBaseSliding);
        Assert.Equal(1f / MathF.Sqrt(TinyGemma3.HeadDim), p.AttentionScale);
        Assert.Equal(0f, p.FinalLogitSoftcap);
        // llama.cpp's default pattern (no key): five local layers, then a global one.
        Assert.Equal([true, true, true, true, true, false, true], Gemma3.Params.Pattern(7, Gemma3.Params.DefaultPattern));
    }

    [Theory]
    [InlineData(3)]   // shorter than the 4-token window
    [InlineData(13)]  // three times longer
    public void Engine_logits_match_a_plain_scalar_forward_pass(int promptLength)
    {
        var (model, w) = Load();
        using var _m = model;
        var tokens = Tokens(promptLength);
        // Decode one token at a time (every position checked), the window sliding past its start.
        model.MaxBatch = 4;
        var state = model.CreateState(64, KvCacheType.F32);
        for (int n = 1; n <= tokens.Length; n++)
            Near(model.Forward(state, tokens.AsSpan(n - 1, 1)), TinyGemma3.ReferenceLogits(w, tokens[..n]), $"pos {n - 1}");
        // The prompt in chunks of 4, then in one batch.
        Near(model.Forward(model.CreateState(64, KvCacheType.F32), tokens), TinyGemma3.ReferenceLogits(w, tokens), "chunked");
        model.MaxBatch = 512;
        var whole = model.CreateState(64, KvCacheType.F32);
        Near(model.Forward(whole, tokens), TinyGemma3.ReferenceLogits(w, tokens), "batched");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Window_masks_exactly_as_llama_cpp(bool allLocal)
    {
        // Position p sees p − window + 1 … p in a local layer. With both layers local the last token (p = 11) reaches
        // back to p − 2·(window − 1) = 5: the token at 4 must not change its logits by a single bit, the one at 5 must.
        // With layer 1 global, the token at 4 reaches it through that layer.
        var (model, w) = Load(allLocal: allLocal);
        using var _m = model;
        var a = Tokens(12);
        float[] Logits(int[] t) => model.Forward(model.CreateState(32, KvCacheType.F32), t).ToArray();
        int[] Changed(int at)
        {
            var b = (int[])a.Clone();
            b[at] = (b[at] + 1) % TinyGemma3.Vocab;
            return b;
        }
        var la = Logits(a);
        Near(la, TinyGemma3.ReferenceLogits(w, a, allLocal: allLocal), "reference");
        var beyond = Logits(Changed(4));
        var inside = Logits(Changed(5));
        Assert.True(Enumerable.Range(0, la.Length).Max(i => Math.Abs(la[i] - inside[i])) > 1e-4, "a token inside the reach should matter");
        if (allLocal) Assert.Equal(la, beyond);
        else Assert.True(Enumerable.Range(0, la.Length).Max(i => Math.Abs(la[i] - beyond[i])) > 1e-4, "the global layer should see every position");
    }

    [Fact]
    public void Batched_prefill_and_multi_sequence_decode_match_token_by_token()
    {
        var (model, _) = Load();
        using var _m = model;
        model.MaxBatch = 5;
        var tokens = Tokens(17);
        var single = model.CreateState(64, KvCacheType.F32);
        float[] one = [];
        foreach (int t in tokens) one = model.Forward(single, [t]).ToArray();
        var batched = model.Forward(model.CreateState(64, KvCacheType.F32), tokens).ToArray();
        Assert.True(Enumerable.Range(0, one.Length).Max(i => Math.Abs(one[i] - batched[i])) < 1e-5, "batched prefill differs from token by token");

        // Two sequences decoded together past the window, each against its own cache.
        var s1 = model.CreateState(64, KvCacheType.F32);
        var s2 = model.CreateState(64, KvCacheType.F32);
        var solo1 = model.CreateState(64, KvCacheType.F32);
        var solo2 = model.CreateState(64, KvCacheType.F32);
        for (int i = 0; i < tokens.Length; i++)
        {
            int t1 = tokens[i], t2 = tokens[tokens.Length - 1 - i];
            model.ForwardBatch([s1, s2], [t1, t2]);
            var e1 = model.Forward(solo1, [t1]).ToArray();
            var e2 = model.Forward(solo2, [t2]).ToArray();
            for (int j = 0; j < e1.Length; j++)
            {
                Assert.True(Math.Abs(s1.Logits[j] - e1[j]) < 1e-5, $"step {i} seq 1 logit {j}");
                Assert.True(Math.Abs(s2.Logits[j] - e2[j]) < 1e-5, $"step {i} seq 2 logit {j}");
            }
        }
    }

    [Fact]
    public void Context_shift_rerotates_local_layer_keys_with_the_local_table()
    {
        // Layer 0 is local (RoPE base 10000, no scaling; the global layer's base and linear ×8 differ), so its keys
        // after a shift equal a fresh prefill's only when the shift rotates them with the local table.
        var (model, _) = Load();
        using var _m = model;
        ContextShiftTests.ShiftedMatchesFresh(model);
    }

    [Fact]
    public void Truncating_keeps_a_prefix_while_the_ring_holds_its_window_and_recomputes_otherwise()
    {
        // MaxBatch 4 and window 4: the local layer keeps a ring of 7 rows, so after 12 tokens it holds positions 5 … 11.
        var (model, w) = Load();
        using var _m = model;
        model.MaxBatch = 4;
        var state = model.CreateState(256, KvCacheType.F32);
        Assert.Null(state.Rows); // no prefix rows for the server's prompt cache to snapshot

        var tokens = Tokens(12);
        model.Forward(state, tokens);
        // 10 and 8: their windows (7 …, 5 …) are still in the ring; 5 and 1 reach positions it dropped: from 0.
        foreach (var (keep, kept) in new[] { (10, 10), (8, 8), (5, 0), (1, 0) })
        {
            Assert.Equal(kept, state.Truncate(keep));
            Assert.Equal(kept, state.Position);
            Near(model.Forward(state, tokens.AsSpan(kept)), TinyGemma3.ReferenceLogits(w, tokens), $"after truncating to {keep}");
        }
        // Setting the length past the ring's reach by hand is refused, not answered from overwritten rows.
        state.Cache.Length = 4;
        Assert.Throws<InvalidOperationException>(() => model.Forward(state, tokens.AsSpan(4, 1)));

        // A context that fits window + batch keeps every position: any prefix, and prompt-cache snapshots.
        var roomy = model.CreateState(7, KvCacheType.F32);
        Assert.NotNull(roomy.Rows);
        model.Forward(roomy, tokens.AsSpan(0, 7));
        Assert.Equal(1, roomy.Truncate(1));
    }

    [Theory]
    [InlineData(KvCacheType.F32)]
    [InlineData(KvCacheType.F16)]
    public void A_ring_decodes_the_bits_of_a_whole_context_cache(KvCacheType type)
    {
        // Token by token, a state whose local layer keeps a 4-row ring (MaxBatch 1) against one that keeps every
        // position (MaxBatch 512 over a context of 64): the same logits bit for bit, through many wraps. (Heads of 16
        // take no Q8_0/Q4_0 cache; FlashAttentionTests covers rings of those.)
        var (model, _) = Load();
        using var _m = model;
        var whole = model.CreateState(64, type);
        model.MaxBatch = 1;
        var ring = model.CreateState(64, type);
        Assert.Equal(TinyGemma3.Window, ring.Cache.LayerRows(0));
        Assert.Equal(64, whole.Cache.LayerRows(0));
        foreach (int t in Tokens(40))
        {
            var a = model.Forward(whole, [t]).ToArray();
            var b = model.Forward(ring, [t]).ToArray();
            Assert.Equal(a, b);
        }
    }

    [Fact]
    public void Local_layers_allocate_only_their_ring()
    {
        // Window W = 4, MaxBatch B = 8, context C = 4096: layer 0 (local) holds W + B − 1 = 11 rows, layer 1 the
        // context; a row is keys and values of KvDim F16 values.
        var (model, _) = Load();
        using var _m = model;
        model.MaxBatch = 8;
        const int context = 4096, ring = TinyGemma3.Window + 8 - 1;
        long rowBytes = 2L * TinyGemma3.KvHeads * TinyGemma3.HeadDim * 2;
        var s = model.CreateState(context, KvCacheType.F16);
        Assert.Equal((ring + context) * rowBytes, s.Cache.CapacityBytes);
        model.Forward(s, Tokens(1000).Select(t => t % TinyGemma3.Vocab).ToArray());
        Assert.Equal((ring + s.Cache.Reserved) * rowBytes, s.Cache.Bytes);
        Assert.True(s.Cache.Reserved >= 1000);
    }

    [Fact]
    public void Context_shift_of_a_ring_continues_as_a_whole_cache_does()
    {
        // The same shift on a ring (MaxBatch 4: 7 rows) and on a cache holding every position: the rows the ring
        // holds are moved and re-rotated alike, so the next tokens' logits agree bit for bit.
        var (model, _) = Load();
        using var _m = model;
        var whole = model.CreateState(64, KvCacheType.F32);
        model.MaxBatch = 4;
        var ring = model.CreateState(64, KvCacheType.F32);
        Assert.True(ring.Cache.HasRing && !whole.Cache.HasRing);
        var prompt = Tokens(45);
        model.Forward(whole, prompt);
        model.Forward(ring, prompt);
        model.ShiftContext(whole, 3, 17);
        model.ShiftContext(ring, 3, 17);
        Assert.Equal(28, ring.Truncate(ring.Position)); // its next window (25 …) was in the ring: nothing to recompute
        foreach (int t in new[] { 7, 8, 9 })
            Assert.Equal(model.Forward(whole, [t]).ToArray(), model.Forward(ring, [t]).ToArray());

        // Too short a shift for the window: the kept positions it reaches back to had left the ring.
        var tight = model.CreateState(64, KvCacheType.F32);
        model.Forward(tight, prompt.AsSpan(0, 12));
        model.ShiftContext(tight, 3, 7);
        Assert.Equal(0, tight.Truncate(tight.Position));
    }

    [Fact]
    public void Final_logit_softcapping_applies_when_the_file_sets_it()
    {
        var (model, w) = Load(softcap: 0.5f);
        using var _m = model;
        var tokens = Tokens(6);
        var got = model.Forward(model.CreateState(16, KvCacheType.F32), tokens);
        Near(got, TinyGemma3.ReferenceLogits(w, tokens, softcap: 0.5f), "soft-capped");
        Assert.True(TensorMax(got) <= 0.5f);
    }

    private static float TensorMax(ReadOnlySpan<float> x)
    {
        float m = float.MinValue;
        foreach (float v in x) m = Math.Max(m, Math.Abs(v));
        return m;
    }

    [Fact]
    public void Decode_steps_allocate_nothing()
    {
        var (model, _) = Load();
        using var _m = model;
        model.MaxBatch = 4;
        var s = model.CreateState(256, KvCacheType.F16);
        model.Forward(s, Tokens(10));
        int[] token = [5];
        for (int i = 0; i < 5; i++) model.Forward(s, token);
        Assert.Equal(0, Allocations.FewestBytes(() => model.Forward(s, token), steps: 30));
    }
}
