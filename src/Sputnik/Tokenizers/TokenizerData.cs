namespace Sputnik.Tokenizers;

/// <summary>llama.cpp token types (GGUF <c>tokenizer.ggml.token_type</c>).</summary>
internal enum TokenType : byte
{
    Undefined = 0,
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

/// <summary>
/// Everything a <see cref="Tokenizer"/> needs, as read from GGUF <c>tokenizer.ggml.*</c> keys or a Hugging Face
/// tokenizer.json. Missing values take the defaults llama.cpp applies (see <see cref="Resolve"/>).
/// </summary>
internal sealed partial record TokenizerData
{
    /// <summary>"gpt2" (byte-level BPE), "llama" (SentencePiece BPE) or "bert" (WordPiece).</summary>
    public required string Model { get; init; }

    /// <summary>Pre-tokenizer name ("default", "gpt2", "llama-bpe", "qwen2", "deepseek-llm", ...); BPE only.</summary>
    public string? Pre { get; init; }

    public required string[] Tokens { get; init; }
    public float[]? Scores { get; init; }

    /// <summary>llama.cpp token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.</summary>
    public int[]? TokenTypes { get; init; }

    /// <summary>BPE merges in "left right" form, in rank order.</summary>
    public string[]? Merges { get; init; }

    public int? BosId { get; init; }
    public int? EosId { get; init; }
    public int? UnknownId { get; init; }
    public int? PadId { get; init; }
    public int? EotId { get; init; }
    public int? EomId { get; init; }
    public bool? AddBos { get; init; }
    public bool? AddEos { get; init; }
    public bool? AddSpacePrefix { get; init; }

    /// <summary>WordPiece: the separator ([SEP]) that ends an input (tokenizer.ggml.seperator_token_id, llama.cpp's spelling; default 102).</summary>
    public int? SepId { get; init; }

    /// <summary>WordPiece's BertNormalizer: lowercase the text (tokenizer.ggml.normalizer.lowercase, default false).</summary>
    public bool? Lowercase { get; init; }

    /// <summary>WordPiece's BertNormalizer: drop accents after NFD (tokenizer.ggml.normalizer.strip_accents, default: as lowercase).</summary>
    public bool? StripAccents { get; init; }

    /// <summary>
    /// Whitespace right after a special token is dropped when encoding, as llama.cpp does for files whose general.name
    /// says Phi-3 (its LLAMA_TOKEN_ATTR_RSTRIP on every special token but &lt;unk&gt;, &lt;s&gt; and &lt;|endoftext|&gt;).
    /// </summary>
    public bool StripSpaceAfterSpecials { get; init; }

    /// <summary>True for the WordPiece ("bert") model.</summary>
    public bool IsWordPiece => string.Equals(Model, "bert", StringComparison.Ordinal);

    /// <summary>True for the SentencePiece ("llama") model.</summary>
    public bool IsSpm => string.Equals(Model, "llama", StringComparison.Ordinal);

    /// <summary>The pre-tokenizer name as llama.cpp would resolve it ("default" when missing).</summary>
    public string EffectivePre => string.IsNullOrEmpty(Pre) ? "default" : Pre;

    internal ResolvedSettings Resolve()
    {
        int n = Tokens.Length;
        int? Valid(int? id, int? fallback) => id is { } v && v >= 0 && v < n ? v : fallback is { } f && f >= 0 && f < n ? f : null;
        if (IsSpm)
        {
            return new ResolvedSettings(
                Valid(BosId, 1), Valid(EosId, 2), Valid(UnknownId, 0), Valid(PadId, null),
                AddBos ?? true, AddEos ?? false, AddSpacePrefix ?? true, CleanSpaces: false, IgnoreMerges: false);
        }
        if (IsWordPiece)
        {
            // llama.cpp's WPM defaults: [CLS] 101 first and [SEP] 102 last whenever special tokens are added.
            return new ResolvedSettings(
                Valid(BosId, 101), Valid(EosId, null), Valid(UnknownId, 100), Valid(PadId, 0),
                AddBos: true, AddEos: false, AddSpacePrefix: false, CleanSpaces: true, IgnoreMerges: false);
        }
        if (!string.Equals(Model, "gpt2", StringComparison.Ordinal))
            throw new Models.UnsupportedModelException($"tokenizer model '{Gguf.DisplayText.Name(Model)}' is not supported (expected 'gpt2', 'llama' or 'bert')");
        var pre = PreTokenizer.Resolve(EffectivePre);
        return new ResolvedSettings(
            Valid(BosId, pre.NoBos ? null : 11), Valid(EosId, 11), Valid(UnknownId, null), Valid(PadId, null),
            AddBos ?? pre.AddBos, AddEos ?? false, AddSpacePrefix ?? false, pre.CleanSpaces, pre.IgnoreMerges);
    }
}

internal readonly record struct ResolvedSettings(
    int? Bos, int? Eos, int? Unk, int? Pad, bool AddBos, bool AddEos, bool AddSpacePrefix, bool CleanSpaces, bool IgnoreMerges);
