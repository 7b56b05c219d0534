using Sputnik.Gguf;
using Sputnik.Inference;
using Sputnik.Models;
using Sputnik.Server.Scheduling;
using Sputnik.Tensors;
using Sputnik.Tokenizers;
using Sputnik.Tools;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>
/// `qwen35` / `qwen35moe` (Gated DeltaNet hybrids): the engine against <see cref="TinyQwen35"/>'s scalar forward pass,
/// prefill in chunks and multi-sequence decode against token-by-token runs, the recurrent state's checkpoints, prompt
/// reuse through them, and the synthetic files' keys and template.
/// </summary>
public class Qwen35Tests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("sputnik-qwen35-");

    public void Dispose()
    {
        _dir.Delete(recursive: true);
        GC.SuppressFinalize(this);
    }

    private string Write(string preset, FileType type = FileType.AllF32)
    {
        string path = Path.Combine(_dir.FullName, $"{preset}-{type}.gguf");
        if (!File.Exists(path))
            SyntheticModel.Write(path, new SynthOptions { Preset = SyntheticModel.FindPreset(preset), FileType = type, Seed = 5, Threads = 2, Sigma = 0.1f });
        return path;
    }

    private static int[] Tokens(int n, int seed) => Enumerable.Range(0, n).Select(i => (i * 37 + seed * 11 + 5) % 900 + 10).ToArray();

    private static void Near(ReadOnlySpan<float> got, double[] want, string what)
    {
        double spread = want.Max() - want.Min(), err = 0;
        for (int i = 0; i < want.Length; i++) err = Math.Max(err, Math.Abs(got[i] - want[i]));
        Assert.True(err < 2e-4 * spread + 1e-5, $"{what}: max error {err} against a logit spread of {spread}");
    }

    private static void Same(ReadOnlySpan<float> a, ReadOnlySpan<float> b, string what, double tolerance = 1e-4)
    {
        double err = 0, spread = 0;
        for (int i = 0; i < a.Length; i++)
        {
            err = Math.Max(err, Math.Abs(a[i] - b[i]));
            spread = Math.Max(spread, Math.Abs(b[i]));
        }
        Assert.True(err <= tolerance * spread, $"{what}: max difference {err} (largest logit {spread})");
    }

    [Fact]
    public void Engine_logits_match_a_plain_scalar_forward_pass()
    {
        string path = Write("qwen35-tiny");
        using var file = GgufFile.Open(path);
        var reference = new TinyQwen35(file).Logits(Tokens(21, 1));
        int[] tokens = Tokens(21, 1);
        using var model = ModelLoader.Load(GgufFile.Open(path), threads: 2);
        var c = model.Config;
        var p = (Qwen35.Params)c.ArchParams!;
        Assert.Equal(("qwen35", 4, 64, 16), (c.Architecture, c.Layers, c.HeadDim, c.RopeDims));
        Assert.Equal([true, true, false, true], p.Recurrent);
        Assert.Equal([4, 2, 2, 0], p.RopeSections); // the eighth pair falls in no t/h/w section: it stays unrotated
        // One token at a time (every position), the whole prompt as one batch, and in chunks of 5.
        var state = model.CreateState(64, KvCacheType.F32);
        for (int n = 0; n < tokens.Length; n++) Near(model.Forward(state, tokens.AsSpan(n, 1)), reference[n], $"position {n}");
        Near(model.Forward(model.CreateState(64, KvCacheType.F32), tokens), reference[^1], "batched");
        ((DecoderModel)model).MaxBatch = 5;
        Near(model.Forward(model.CreateState(64, KvCacheType.F32), tokens), reference[^1], "chunked");
    }

    /// <summary>
    /// A decode token past one attention segment splits its attention over threads (segmented decode); with only
    /// some layers holding a cache plane, each must read its own plane (SlotOf), as the batched forward does.
    /// </summary>
    [Fact]
    public void Segmented_decode_reads_each_layer_s_own_cache_plane()
    {
        using var model = ModelLoader.Load(GgufFile.Open(Write("qwen35-tiny")), threads: 2);
        var tokens = Tokens(FlashAttention.Segment + 45, 3);
        Assert.True(FlashAttention.Segments(tokens.Length - 1, 0) > 1);
        var whole = model.Forward(model.CreateState(512, KvCacheType.F32), tokens).ToArray();
        var state = model.CreateState(512, KvCacheType.F32);
        model.Forward(state, tokens.AsSpan(0, tokens.Length - 1));
        Same(model.Forward(state, tokens.AsSpan(tokens.Length - 1, 1)), whole, "the last token decoded alone");
    }

    [Fact]
    public void Chunked_prefill_agrees_with_the_token_by_token_recurrence()
    {
        using var model = ModelLoader.Load(GgufFile.Open(Write("qwen35-tiny")), threads: 2);
        var decoder = (Qwen35Decoder)model;
        var tokens = Tokens(150, 6); // two full chunks of 64 and a partial one
        float[] Run(bool chunked, out InferenceState state)
        {
            decoder.ChunkedPrefill = chunked;
            state = model.CreateState(256, KvCacheType.F32);
            state.RequestCheckpoint(70); // mid-chunk: the chunk ends there
            return model.Forward(state, tokens).ToArray();
        }
        var byToken = Run(false, out var a);
        var byChunk = Run(true, out var b);
        Same(byChunk, byToken, "150-token prefill");
        Assert.Equal(70, b.Restorable(100));
        a.Truncate(70);
        b.Truncate(70);
        decoder.ChunkedPrefill = true;
        Same(model.Forward(b, tokens.AsSpan(70, 40)), model.Forward(a, tokens.AsSpan(70, 40)), "resumed at the mid-chunk checkpoint");
    }

    [Theory]
    [InlineData("qwen35-tiny")]
    [InlineData("qwen35moe-tiny")]
    public void Multi_sequence_decode_gives_each_sequence_its_own_logits(string preset)
    {
        using var model = ModelLoader.Load(GgufFile.Open(Write(preset)), threads: 2);
        int[][] prompts = [Tokens(9, 1), Tokens(23, 2), Tokens(4, 3)];
        var solo = prompts.Select(_ => model.CreateState(64, KvCacheType.F32)).ToArray();
        var batched = prompts.Select(_ => model.CreateState(64, KvCacheType.F32)).ToArray();
        for (int i = 0; i < prompts.Length; i++)
        {
            model.Forward(solo[i], prompts[i]);
            model.Forward(batched[i], prompts[i]);
        }
        for (int step = 0; step < 6; step++)
        {
            int[] next = [100 + step, 200 + step, 300 + step];
            model.ForwardBatch(batched, next);
            for (int i = 0; i < prompts.Length; i++)
            {
                var want = model.Forward(solo[i], next.AsSpan(i, 1)).ToArray();
                Same(batched[i].Logits, want, $"{preset} sequence {i} step {step}");
                Assert.Equal(solo[i].Position, batched[i].Position);
            }
        }
    }

    [Fact]
    public void Moe_file_reads_its_shared_expert_and_routes()
    {
        string path = Write("qwen35moe-tiny");
        using (var f = GgufFile.Open(path))
        {
            Assert.True(f.TryGetInt64("qwen35moe.expert_shared_feed_forward_length", out long sh) && sh == 256);
            Assert.True(f.TryGetInt64("qwen35moe.full_attention_interval", out long iv) && iv == 2);
            Assert.Equal(GgmlType.F32, f.GetTensor("blk.0.ssm_conv1d.weight").Type);
            Assert.NotNull(f.FindTensor("blk.1.ffn_gate_inp_shexp.weight"));
            Assert.Null(f.FindTensor("blk.1.ffn_gate.weight"));
        }
        using var model = ModelLoader.Load(GgufFile.Open(path), threads: 2);
        Assert.Equal((16, 4, 128), (model.Config.Moe!.ExpertCount, model.Config.Moe.ExpertsUsed, model.Config.ExpertFfnDim));
        Assert.Equal(256, ((Qwen35.Params)model.Config.ArchParams!).SharedExpertFfn);
        var tokens = Tokens(30, 4);
        var whole = model.Forward(model.CreateState(64, KvCacheType.F32), tokens).ToArray();
        Assert.All(whole, v => Assert.True(float.IsFinite(v)));
        var s = model.CreateState(64, KvCacheType.F32);
        foreach (int t in tokens) model.Forward(s, [t]);
        Same(s.Logits, whole, "token by token against one batch", 2e-4);
    }

    [Fact]
    public void Recurrent_state_goes_back_only_to_its_checkpoints()
    {
        using var model = ModelLoader.Load(GgufFile.Open(Write("qwen35-tiny")), threads: 2);
        var tokens = Tokens(30, 5);
        var s = model.CreateState(64, KvCacheType.F32);
        Assert.Null(s.Rows); // no raw-row snapshots for the prompt cache: the recurrent part is not positional
        s.RequestCheckpoint(12);
        s.RequestCheckpoint(25);
        model.Forward(s, tokens.AsSpan(0, 20)); // reaches 12 inside the batch; 25 stays pending
        model.Forward(s, tokens.AsSpan(20, 10));
        Assert.Equal(30, s.Restorable(40));
        Assert.Equal(30, s.Restorable(30));
        Assert.Equal(25, s.Restorable(29));
        Assert.Equal(12, s.Restorable(24));
        Assert.Equal(0, s.Restorable(11));
        Assert.Throws<InvalidOperationException>(() => s.Truncate(20));

        // Resuming at a checkpoint gives what a fresh run of the same tokens gives.
        var fresh = model.CreateState(64, KvCacheType.F32);
        int[] other = [.. tokens[..12], 7, 8, 9, 10];
        var want = model.Forward(fresh, other).ToArray();
        s.Truncate(12);
        Assert.Equal(12, s.Position);
        Same(model.Forward(s, other.AsSpan(12)), want, "resumed at 12");
        Assert.Equal(12, s.Restorable(15)); // the checkpoint at 12 stays; the one at 25 belonged to the history that was cut

        // A checkpoint taken where the state already is, then back to it after more tokens.
        s.RequestCheckpoint(s.Position);
        model.Forward(s, [11, 12, 13]);
        s.Truncate(16);
        Same(model.Forward(s, [11, 12, 13]), model.Forward(fresh, [11, 12, 13]), "resumed at 16");

        // Back to 0 always works: the state starts over.
        s.Truncate(0);
        Same(model.Forward(s, other), want, "from scratch");
    }

    [Fact]
    public void Generator_reuses_a_prompt_prefix_at_the_checkpoint_of_its_last_turn_header()
    {
        using var m = SputnikModel.Load(Write("qwen35-tiny"), new ModelOptions { Threads = 2, ContextLength = 256 });
        var gen = new Generator(m.Model, m.Tokenizer);
        var builder = new ChatPromptBuilder(m.Tokenizer, ((DecoderModel)m.Model).File.GetStringOrNull("tokenizer.chat_template"));
        var options = new GenerationOptions { MaxTokens = 6, Sampling = SamplingOptions.Greedy };
        var turn1 = builder.Build([ChatMessage.User("say something short")]).Tokens;
        var state = m.CreateState();
        var history = new List<int>();
        var first = gen.Generate(state, turn1, options, new GenerationStats(), history).Select(t => t.Text).ToList();
        // The next turn repeats turn 1 up to its assistant header, then the reply without its reasoning.
        var turn2 = builder.Build([ChatMessage.User("say something short"), ChatMessage.Assistant(string.Concat(first)), ChatMessage.User("again")]).Tokens;
        int header = Array.LastIndexOf(turn1, m.Tokenizer.FindToken("<|im_start|>")!.Value);
        Assert.True(turn2.AsSpan(0, header + 1).SequenceEqual(turn1.AsSpan(0, header + 1)));
        var stats = new GenerationStats();
        var reused = gen.Generate(state, turn2, options, stats, history).Select(t => t.Id).ToArray();
        Assert.Equal(header, stats.CachedPromptTokens);
        var fresh = gen.Generate(m.CreateState(), turn2, options, new GenerationStats()).Select(t => t.Id).ToArray();
        Assert.Equal(fresh, reused);
        // The same prompt again resumes just before its last token.
        var again = new GenerationStats();
        Assert.Equal(fresh, gen.Generate(state, turn2, options, again, history).Select(t => t.Id).ToArray());
        Assert.Equal(turn2.Length - 1, again.CachedPromptTokens);
    }

    [Fact]
    public void Batched_server_steps_give_each_sequence_the_tokens_it_gets_alone()
    {
        using var m = SputnikModel.Load(Write("qwen35-tiny"), new ModelOptions { Threads = 2, ContextLength = 128 });
        var gen = new Generator(m.Model, m.Tokenizer);
        string[] prompts = ["once upon a time", "the quick brown fox jumps over the lazy dog and then"];
        var options = new GenerationOptions { MaxTokens = 12, Sampling = SamplingOptions.Greedy };
        var solo = prompts.Select(p => gen.Generate(m.CreateState(), m.Tokenizer.Encode(p), options, new GenerationStats()).Select(t => t.Id).ToArray()).ToArray();

        var executor = new BatchedStepExecutor(m.Model);
        var active = new List<ActiveSequence>();
        var outputs = new Dictionary<ActiveSequence, List<int>>();
        for (int i = 0; i < prompts.Length; i++)
        {
            var job = new InferenceJob(m.Tokenizer.Encode(prompts[i]), options, CancellationToken.None);
            var slot = new Slot(i, m.CreateState());
            var handoff = new DecodeHandoff { PrefillChunk = 5 };
            var seq = new ActiveSequence(job, slot, gen.Generate(slot.State, job.Prompt, job.Options, job.Stats, slot.History, default, handoff).GetEnumerator(), handoff);
            active.Add(seq);
            outputs[seq] = [];
        }
        var all = active.ToList();
        int widest = 0;
        while (active.Count > 0)
        {
            widest = Math.Max(widest, active.Count(a => a.Handoff.PendingToken >= 0));
            var done = new List<ActiveSequence>();
            executor.Step(active, a =>
            {
                if (!a.Steps.MoveNext()) done.Add(a);
                else if (!a.Handoff.Prefilling) outputs[a].Add(a.Steps.Current.Id);
            });
            active.RemoveAll(done.Contains);
        }
        Assert.Equal(prompts.Length, widest); // both decoded in one batched forward at least once
        for (int i = 0; i < all.Count; i++) Assert.Equal(solo[i], outputs[all[i]].ToArray());
    }

    [Fact]
    public void Presets_have_qwen3_5s_shapes_and_template()
    {
        var c4 = SyntheticModel.FindPreset("qwen3.5-4b").Config;
        var p4 = (Qwen35.Params)c4.ArchParams!;
        Assert.Equal((2560, 32, 9216, 16, 4, 256, 64, 248320), (c4.Dim, c4.Layers, c4.FfnDim, c4.Heads, c4.KvHeads, c4.HeadDim, c4.RopeDims, c4.VocabSize));
        Assert.Equal((16, 32, 128, 4, 24), (p4.KeyHeads, p4.ValueHeads, p4.HeadSize, p4.ConvKernel, p4.Recurrent.Count(r => r)));
        var c9 = SyntheticModel.FindPreset("qwen3.5-9b").Config;
        Assert.Equal((4096, 32, 12288), (c9.Dim, c9.Layers, c9.FfnDim));

        using var f = GgufFile.Open(Write("qwen35-tiny"));
        Assert.Equal("qwen35", f.GetStringOrNull("tokenizer.ggml.pre"));
        using (var keys = WriteKeysOf(c4)) Assert.Equal(p4, Qwen35.Params.FromGguf(keys, c4, c4.Layers)); // the keys read back as written
        var tok = Tokenizer.Create(TokenizerData.FromGguf(f));
        var builder = new ChatPromptBuilder(tok, f.GetStringOrNull("tokenizer.chat_template"));
        Assert.True(builder.SupportsThinking);
        ChatMessage[] chat = [ChatMessage.System("Be brief."), ChatMessage.User("hi"), ChatMessage.Assistant("<think>\nhm\n</think>\n\nHello."), ChatMessage.User("2+2?")];
        var on = builder.Build(chat);
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n" +
            "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n", on.Text);
        Assert.True(on.StartsInThinking);
        var off = builder.Build(chat, thinking: false);
        Assert.EndsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n", off.Text);
        Assert.False(off.StartsInThinking);
    }

    [Fact]
    public void Qwen3_5_xml_tool_calls_parse_as_openai_calls()
    {
        string text = "Let me check.\n\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n" +
            "<parameter=opts>\n{\"unit\": \"C\"}\n</parameter>\n</function>\n</tool_call>";
        Assert.True(ToolCallParser.TryParse(text, out var calls, out var rest));
        var call = Assert.Single(calls);
        Assert.Equal("get_weather", call.Name);
        using var args = System.Text.Json.JsonDocument.Parse(call.ArgumentsJson);
        Assert.Equal("Paris", args.RootElement.GetProperty("city").GetString());
        Assert.Equal(3, args.RootElement.GetProperty("days").GetInt32());
        Assert.Equal("C", args.RootElement.GetProperty("opts").GetProperty("unit").GetString());
        Assert.Equal("Let me check.", rest);
        Assert.False(ToolCallParser.TryParse("<tool_call>\n<function=f>\n<parameter=x>\n1\n</parameter>\n", out _, out _)); // unfinished
    }

    /// <summary>Qwen3.5's own template (llama.cpp's models/templates/Qwen3.5-4B.jinja): tools, thinking, a tool round trip.</summary>
    [Fact]
    public void Qwen3_5s_own_template_renders_tools_and_thinking_and_its_calls_parse_back()
    {
        string path = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "sputnik-bench", "llama.cpp-npm", "models", "templates", "Qwen3.5-4B.jinja");
        if (!File.Exists(path)) Assert.Skip($"llama.cpp's template collection is not on this machine ({path})");
        using var f = GgufFile.Open(Write("qwen35-tiny"));
        var builder = new ChatPromptBuilder(Tokenizer.Create(TokenizerData.FromGguf(f)), File.ReadAllText(path));
        var tool = new Dictionary<string, object?>
        {
            ["type"] = "function",
            ["function"] = new Dictionary<string, object?> { ["name"] = "get_weather", ["parameters"] = new Dictionary<string, object?> { ["type"] = "object" } },
        };
        ChatMessage[] chat =
        [
            ChatMessage.User("Weather in Paris?"),
            new("assistant", "") { ToolCalls = [new ToolCall("call_1", "get_weather", "{\"city\": \"Paris\", \"days\": 2}")] },
            new("tool", "sunny") { ToolCallId = "call_1" },
        ];
        var p = builder.Build(chat, tools: [tool]);
        Assert.StartsWith("<|im_start|>system\n# Tools\n\nYou have access to the following functions:", p.Text);
        Assert.Contains("<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n", p.Text);
        Assert.EndsWith("<|im_start|>assistant\n<think>\n", p.Text);
        Assert.True(p.StartsInThinking);
        // The system prompt shows the format with an example call; the assistant turn holds the real one.
        int turn = p.Text.IndexOf("<|im_start|>assistant", StringComparison.Ordinal);
        int start = p.Text.IndexOf("<tool_call>", turn, StringComparison.Ordinal), end = p.Text.IndexOf("</tool_call>", turn, StringComparison.Ordinal);
        Assert.Contains("<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n2\n</parameter>\n</function>\n</tool_call>", p.Text);
        Assert.True(ToolCallParser.TryParse(p.Text[start..(end + "</tool_call>".Length)], out var calls, out _));
        Assert.Equal("get_weather", calls[0].Name);
        using var args = System.Text.Json.JsonDocument.Parse(calls[0].ArgumentsJson);
        Assert.Equal(("Paris", 2), (args.RootElement.GetProperty("city").GetString(), args.RootElement.GetProperty("days").GetInt32()));
        Assert.EndsWith("<think>\n\n</think>\n\n", builder.Build(chat, tools: [tool], thinking: false).Text);
    }

    // A file holding just a config's keys, for reading them back.
    private GgufFile WriteKeysOf(ModelConfig c)
    {
        var w = new GgufWriter();
        w.Set(GgufKeys.GeneralArchitecture, c.Architecture);
        c.WriteKeys(w);
        w.AddTensor("token_embd.weight", new float[c.Dim * 2], c.Dim, 2);
        string path = Path.Combine(_dir.FullName, "keys.gguf");
        w.Write(path);
        return GgufFile.Open(path);
    }
}
