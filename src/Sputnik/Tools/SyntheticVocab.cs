using Sputnik.Tokenizers;

namespace Sputnik.Tools;

/// <summary>
/// A made-up byte-level BPE vocabulary of any size: the 256 byte tokens (GPT-2 byte↔char mapping), then merges that
/// grow lowercase words letter by letter ("Ġ t" → "Ġt", "Ġt h" → "Ġth", …, most frequent letters first), then the
/// family's special tokens at the end. Every text round-trips (any byte has a token), so real-size models can be
/// tokenized and benchmarked without downloading a vocabulary.
/// </summary>
internal static class SyntheticVocab
{
    private const string Letters = "etaoinshrdlcumwfgypbvkjxqz";

    public static readonly string[] Qwen2Specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

    public static readonly string[] Llama3Specials =
    [
        "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
        "<|finetune_right_pad_id|>", "<|step_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>",
        "<|python_tag|>",
    ];

    /// <summary>
    /// Phi-3/Phi-4-mini's chat markers, after the SentencePiece trio llama.cpp looks up (and fails to load without)
    /// when a phi3 file's name says "phi3".
    /// </summary>
    public static readonly string[] Phi3Specials = ["<unk>", "<s>", "</s>", "<|endoftext|>", "<|assistant|>", "<|end|>", "<|system|>", "<|user|>"];

    /// <summary>Gemma's control tokens: BOS, EOS, padding and the chat turn markers (end_of_turn ends a reply).</summary>
    /// <summary>o200k_harmony's specials (gpt-oss): the harmony format's message framing and channel tokens.</summary>
    public static readonly string[] HarmonySpecials =
        ["<|startoftext|>", "<|endoftext|>", "<|return|>", "<|constrain|>", "<|channel|>", "<|start|>", "<|end|>", "<|message|>", "<|call|>"];

    public static readonly string[] GemmaSpecials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"];

    /// <summary>
    /// Builds a vocabulary of exactly <paramref name="size"/> tokens for the "qwen2" or "llama-bpe" pre-tokenizer, with
    /// the Llama 3 specials for "llama-bpe", Qwen2's otherwise, or Phi-3's when <paramref name="phi3"/>, Gemma's
    /// (<see cref="GemmaSpecials"/>) when <paramref name="gemma"/>.
    /// </summary>
    public static TokenizerData Create(int size, string pre, bool phi3 = false, bool gemma = false, bool harmony = false)
    {
        if ((phi3 ? 1 : 0) + (gemma ? 1 : 0) + (harmony ? 1 : 0) > 1) throw new ArgumentException("a vocabulary is phi3's, gemma's or harmony's, not several");
        bool llama = pre == "llama-bpe" && !phi3 && !gemma && !harmony;
        string[] specials = phi3 ? Phi3Specials : gemma ? GemmaSpecials : harmony ? HarmonySpecials : llama ? Llama3Specials : Qwen2Specials;
        int merges = size - 256 - specials.Length;
        if (merges < 0) throw new ArgumentException($"vocabulary size {size} is too small (needs at least {256 + specials.Length})");

        var tokens = new List<string>(size);
        for (int b = 0; b < 256; b++) tokens.Add(ByteLevel.ByteToChar((byte)b).ToString());
        var mergeList = new List<string>(merges);
        var frontier = new List<string> { ByteLevel.ByteToChar((byte)' ').ToString() };
        frontier.AddRange(Letters.Select(c => c.ToString()));
        while (mergeList.Count < merges)
        {
            var next = new List<string>(frontier.Count * Letters.Length);
            foreach (string stem in frontier)
            {
                foreach (char c in Letters)
                {
                    if (mergeList.Count == merges) break;
                    mergeList.Add($"{stem} {c}");
                    tokens.Add(stem + c);
                    next.Add(stem + c);
                }
                if (mergeList.Count == merges) break;
            }
            frontier = next;
        }
        int firstSpecial = tokens.Count;
        tokens.AddRange(specials);
        var types = new int[size];
        for (int i = 0; i < size; i++) types[i] = (int)(i >= firstSpecial ? TokenType.Control : TokenType.Normal);
        int Id(string s) => firstSpecial + Array.IndexOf(specials, s);
        if (phi3)
            return new TokenizerData
            {
                Model = "gpt2", Pre = pre, Tokens = [.. tokens], TokenTypes = types, Merges = [.. mergeList],
                BosId = Id("<|endoftext|>"), EosId = Id("<|endoftext|>"), EotId = Id("<|end|>"), PadId = Id("<|endoftext|>"), AddBos = false,
            };
        if (harmony) // <|return|> ends a reply; <|end|> only ends a message (the tokenizer drops it from end-of-generation)
            return new TokenizerData
            {
                Model = "gpt2", Pre = pre, Tokens = [.. tokens], TokenTypes = types, Merges = [.. mergeList],
                BosId = Id("<|startoftext|>"), EosId = Id("<|return|>"), PadId = Id("<|endoftext|>"), AddBos = false,
            };
        if (gemma)
            return new TokenizerData
            {
                Model = "gpt2", Pre = pre, Tokens = [.. tokens], TokenTypes = types, Merges = [.. mergeList],
                BosId = Id("<bos>"), EosId = Id("<eos>"), PadId = Id("<pad>"), AddBos = true,
            };
        return llama
            ? new TokenizerData
            {
                Model = "gpt2", Pre = pre, Tokens = [.. tokens], TokenTypes = types, Merges = [.. mergeList],
                BosId = Id("<|begin_of_text|>"), EosId = Id("<|eot_id|>"), PadId = Id("<|finetune_right_pad_id|>"), AddBos = true,
            }
            : new TokenizerData
            {
                Model = "gpt2", Pre = pre, Tokens = [.. tokens], TokenTypes = types, Merges = [.. mergeList],
                BosId = Id("<|endoftext|>"), EosId = Id("<|im_end|>"), PadId = Id("<|endoftext|>"), AddBos = false,
            };
    }

    /// <summary>
    /// A made-up WordPiece ("bert") vocabulary of exactly <paramref name="size"/> tokens in llama.cpp's phantom-space
    /// form, laid out as BERT's: [PAD] 0, [unused…] 1–99, [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103, then every
    /// lowercase letter, digit and ASCII punctuation mark as a word start (▁x) and a continuation (x), then longer
    /// starts and continuations letter by letter, most frequent letters first (so words split into several pieces), lowercasing on.
    /// </summary>
    public static TokenizerData CreateWordPiece(int size)
    {
        const int Specials = 104;
        var singles = Letters + "0123456789" + ".,!?'\"-:;()/&";
        if (size < Specials + 2 * singles.Length) throw new ArgumentException($"vocabulary size {size} is too small (needs at least {Specials + 2 * singles.Length})");
        var tokens = new List<string>(size) { "[PAD]" };
        for (int i = 1; i < 100; i++) tokens.Add($"[unused{i - 1}]");
        tokens.AddRange(["[UNK]", "[CLS]", "[SEP]", "[MASK]"]);
        foreach (char c in singles) tokens.Add("\u2581" + c);
        foreach (char c in singles) tokens.Add(c.ToString());
        // Longer pieces, letter by letter (a 30,522-token vocabulary reaches three letters).
        var stems = Letters.Select(c => c.ToString()).ToList();
        while (tokens.Count < size)
        {
            var longer = new List<string>(stems.Count * Letters.Length);
            foreach (string stem in stems)
                foreach (char c in Letters)
                {
                    longer.Add(stem + c);
                    if (tokens.Count < size) tokens.Add("\u2581" + stem + c);
                    if (tokens.Count < size) tokens.Add(stem + c);
                }
            stems = longer;
        }
        var types = new int[size];
        for (int i = 0; i < size; i++) types[i] = (int)(i < Specials ? TokenType.Control : TokenType.Normal);
        return new TokenizerData
        {
            Model = "bert", Pre = "default", Tokens = [.. tokens], TokenTypes = types,
            BosId = 101, UnknownId = 100, SepId = 102, PadId = 0, Lowercase = true,
        };
    }

    /// <summary>
    /// Pads a real tokenizer's vocabulary to <paramref name="size"/> with unused "[PADn]" tokens, as llama.cpp's
    /// converter does when the embedding matrix is larger than the tokenizer.
    /// </summary>
    public static TokenizerData PadTo(TokenizerData data, int size)
    {
        int n = data.Tokens.Length;
        if (n >= size) return data;
        var tokens = new string[size];
        var types = new int[size];
        data.Tokens.CopyTo(tokens, 0);
        for (int i = 0; i < n; i++) types[i] = data.TokenTypes?[i] ?? (int)TokenType.Normal;
        for (int i = n; i < size; i++)
        {
            tokens[i] = $"[PAD{i}]";
            types[i] = (int)TokenType.Unused;
        }
        return data with { Tokens = tokens, TokenTypes = types, Scores = null };
    }
}
