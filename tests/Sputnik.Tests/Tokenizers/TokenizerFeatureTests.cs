using System.Text;
using Sputnik.Tokenizers;
using Xunit;

namespace Sputnik.Tests.Tokenizers;

public class TokenizerFeatureTests
{
    private static Tokenizer Qwen2 => VocabFixtures.Get("qwen2");
    private static Tokenizer Llama3 => VocabFixtures.Get("llama-bpe");
    private static Tokenizer Spm => VocabFixtures.Get("llama-spm");
    private static Tokenizer Gpt2 => VocabFixtures.Get("gpt-2");

    [Fact]
    public void Special_tokens_are_parsed_only_when_asked()
    {
        var tok = Qwen2;
        int imStart = tok.FindToken("<|im_start|>")!.Value, imEnd = tok.FindToken("<|im_end|>")!.Value;
        Assert.Equal(151644, imStart);
        Assert.Equal(151645, imEnd);
        const string text = "<|im_start|>user\nHello<|im_end|>";

        int[] parsed = tok.Encode(text, addBos: false, parseSpecial: true);
        Assert.Equal(imStart, parsed[0]);
        Assert.Equal(imEnd, parsed[^1]);
        Assert.Equal(tok.Encode("user\nHello", addBos: false), parsed[1..^1]);

        int[] raw = tok.Encode(text, addBos: false, parseSpecial: false);
        Assert.DoesNotContain(imStart, raw);
        Assert.DoesNotContain(imEnd, raw);
        Assert.Equal(text, tok.Decode(raw));
    }

    [Fact]
    public void User_defined_tokens_are_matched_even_without_special_parsing()
    {
        var tok = Qwen2;
        int think = tok.FindToken("<think>")!.Value;
        Assert.Equal(TokenType.UserDefined, tok.GetTokenType(think));
        int[] ids = tok.Encode("<think>\nhmm</think>", addBos: false, parseSpecial: false);
        Assert.Equal(think, ids[0]);
        Assert.Equal(tok.FindToken("</think>")!.Value, ids[^1]);
        // user-defined tokens decode as their text
        Assert.Equal("<think>\nhmm</think>", tok.Decode(ids));
        // special-looking added tokens (not marked special in tokenizer.json) are control, like llama.cpp's converter makes them
        Assert.Equal(TokenType.Control, tok.GetTokenType(tok.FindToken("<|fim_prefix|>")!.Value));
    }

    [Fact]
    public void Spm_special_tokens_and_byte_fallback()
    {
        var tok = Spm;
        Assert.Equal(1, tok.BosId);
        Assert.Equal(2, tok.EosId);
        Assert.True(tok.AddBos);
        Assert.False(tok.AddEos);
        Assert.Equal(new[] { 1, 2 }, tok.Encode("<s></s>", addBos: false, parseSpecial: true));
        int[] raw = tok.Encode("<s>", addBos: false, parseSpecial: false);
        Assert.DoesNotContain(1, raw);
        Assert.Equal("<s>", tok.Decode(raw));
        // text after a special token gets the space prefix again (llama.cpp is_prev_special)
        Assert.Equal(tok.Encode("Hi", addBos: false), tok.Encode("<s>Hi", addBos: false, parseSpecial: true)[1..]);
        // a rare character falls back to <0xNN> byte tokens
        int[] bytes = tok.Encode("\U0001F999", addBos: false);
        Assert.Contains(bytes, id => tok.GetTokenType(id) == TokenType.Byte);
        Assert.Equal("\U0001F999", tok.Decode(bytes));
        Assert.Equal(new byte[] { 0xF0 }, tok.TokenBytes(tok.FindToken("<0xF0>")!.Value).ToArray());
        Assert.Equal(" the"u8.ToArray(), tok.TokenBytes(tok.FindToken("\u2581the")!.Value).ToArray());
    }

    [Fact]
    public void Bos_and_eos_follow_the_model_flags()
    {
        var spm = Spm;
        Assert.Equal(1, spm.Encode("Hello")[0]);
        Assert.NotEqual(1, spm.Encode("Hello", addBos: false)[0]);
        Assert.Equal(new[] { 1 }, spm.Encode(""));
        Assert.Empty(spm.Encode("", addBos: false));

        var llama3 = Llama3;
        Assert.True(llama3.AddBos);
        Assert.Equal(128000, llama3.BosId);
        Assert.Equal(128000, llama3.Encode("Hello")[0]);
        Assert.Equal(llama3.Encode("Hello", addBos: false), llama3.Encode("Hello")[1..]);

        var qwen = Qwen2;
        Assert.False(qwen.AddBos);
        Assert.Equal(qwen.Encode("Hello", addBos: false), qwen.Encode("Hello"));

        // a model that asks for EOS gets it appended; one that asks for no BOS gets none
        var data = VocabFixtures.LoadData("llama-spm") with { AddBos = false, AddEos = true };
        var eosTok = Tokenizer.Create(data);
        int[] ids = eosTok.Encode("Hello");
        Assert.NotEqual(1, ids[0]);
        Assert.Equal(2, ids[^1]);
        Assert.Equal(spm.Encode("Hello", addBos: false), ids[..^1]);
        Assert.Equal(spm.Encode("Hello", addBos: false), eosTok.Encode("Hello", addBos: false));
    }

    [Fact]
    public void End_of_generation_tokens()
    {
        var qwen = Qwen2;
        Assert.True(qwen.IsEndOfGeneration(qwen.FindToken("<|im_end|>")!.Value));
        Assert.True(qwen.IsEndOfGeneration(qwen.FindToken("<|endoftext|>")!.Value));
        Assert.False(qwen.IsEndOfGeneration(qwen.FindToken("<|im_start|>")!.Value));
        Assert.False(qwen.IsEndOfGeneration(qwen.Encode("Hello", addBos: false)[0]));

        var llama3 = Llama3;
        Assert.True(llama3.IsEndOfGeneration(llama3.FindToken("<|eot_id|>")!.Value));
        Assert.True(llama3.IsEndOfGeneration(llama3.FindToken("<|end_of_text|>")!.Value));
        Assert.False(llama3.IsEndOfGeneration(llama3.BosId));

        var ds = VocabFixtures.Get("deepseek-llm");
        int eos = ds.FindToken("<｜end▁of▁sentence｜>")!.Value;
        Assert.Equal(eos, ds.EosId);
        Assert.True(ds.IsEndOfGeneration(eos));

        Assert.True(Spm.IsEndOfGeneration(2));
        Assert.False(Spm.IsEndOfGeneration(1));
    }

    [Fact]
    public void Control_tokens_render_only_when_asked()
    {
        var qwen = Qwen2;
        int[] ids = qwen.Encode("<|im_start|>hi<|im_end|>", addBos: false, parseSpecial: true);
        Assert.Equal("hi", qwen.Decode(ids));
        Assert.Equal("<|im_start|>hi<|im_end|>", qwen.Decode(ids, renderSpecial: true));
        Assert.Equal("<|im_end|>", qwen.TokenPiece(qwen.FindToken("<|im_end|>")!.Value));
        Assert.Null(qwen.FindToken("no such token in the vocabulary"));
    }

    [Fact]
    public void Gpt2_clean_spaces_as_llama_cpp()
    {
        var tok = Gpt2;
        Assert.True(tok.CleanSpaces);
        int[] ids = tok.Encode("Hello , world ! It 's", addBos: false);
        Assert.Equal("Hello, world! It's", tok.Decode(ids));
        Assert.Equal("Hello , world ! It 's", tok.Decode(ids, cleanSpaces: false));
        Assert.False(Qwen2.CleanSpaces);
    }

    [Theory]
    [InlineData("gpt-2")]
    [InlineData("qwen2")]
    [InlineData("llama-spm")]
    public void Streaming_decoder_holds_split_utf8_until_complete(string name)
    {
        var tok = VocabFixtures.Get(name);
        const string text = "Hi \U0001F999 llama 🦙, 日本語 ok";
        int[] ids = tok.Encode(text, addBos: false);
        // the text really splits a character across tokens, so the test can fail
        Assert.Contains(ids, id => !IsCompleteUtf8(tok.TokenBytes(id)));

        var stream = tok.CreateStreamingDecoder();
        var sb = new StringBuilder();
        foreach (int id in ids)
        {
            string piece = stream.Add(id);
            Assert.DoesNotContain('\uFFFD', piece);
            if (piece.Length > 0) Assert.False(char.IsHighSurrogate(piece[^1]), "returned half a surrogate pair");
            sb.Append(piece);
        }
        sb.Append(stream.Flush());
        Assert.Equal(text, sb.ToString());
    }

    [Fact]
    public void Streaming_decoder_flushes_an_incomplete_sequence()
    {
        var tok = Spm;
        var stream = tok.CreateStreamingDecoder();
        Assert.Equal("", stream.Add(tok.FindToken("<0xF0>")!.Value));
        Assert.Equal("", stream.Add(tok.FindToken("<0x9F>")!.Value));
        Assert.Equal("\uFFFD", stream.Flush());
        // after a flush it starts over: the SentencePiece leading space is dropped again
        Assert.Equal("the", stream.Add(tok.FindToken("\u2581the")!.Value));
        Assert.Equal(" the", stream.Add(tok.FindToken("\u2581the")!.Value));
    }

    [Fact]
    public void Hf_loader_infers_pre_tokenizers_and_vocab()
    {
        var q = VocabFixtures.LoadData("qwen2");
        Assert.Equal("gpt2", q.Model);
        Assert.Equal("qwen2", q.Pre);
        Assert.Equal(151643, q.BosId);
        var l = VocabFixtures.LoadData("llama-bpe");
        Assert.Equal("llama-bpe", l.Pre);
        Assert.Equal(128256, l.Tokens.Length);
        Assert.Equal("llama3", ((BpeTokenizer)Llama3).PreTokenizerKind);
    }

    [Fact]
    public void Gguf_loader_reads_the_tokenizer_keys()
    {
        var d = VocabFixtures.LoadData("gpt-2");
        Assert.Equal("gpt2", d.Model);
        Assert.Equal("gpt-2", d.Pre);
        Assert.NotNull(d.Merges);
        Assert.Equal("gpt2", ((BpeTokenizer)Gpt2).PreTokenizerKind);
        var s = VocabFixtures.LoadData("llama-spm");
        Assert.Equal("llama", s.Model);
        Assert.NotNull(s.Scores);
        Assert.Equal(32000, Spm.VocabSize);
    }

    [Fact]
    public void Stories260K_prompt_tokenizes_like_the_golden_file()
    {
        // the model's GGUF lacks add_bos_token: the llama (SPM) default adds BOS
        var tok = Tokenizer.Create(TokenizerData.FromGguf(Fixtures.Require(Fixtures.Model("stories260K.gguf"))));
        Assert.True(tok.AddBos);
        Assert.Equal(new[] { 1, 403, 407, 261, 378 }, tok.Encode("Once upon a time"));
        Assert.Equal("Once upon a time", tok.Decode(tok.Encode("Once upon a time", addBos: false)));
    }

    private static bool IsCompleteUtf8(ReadOnlySpan<byte> bytes) =>
        System.Text.Unicode.Utf8.IsValid(bytes);
}
