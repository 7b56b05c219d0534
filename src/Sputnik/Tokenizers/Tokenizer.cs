using System.Text;

namespace Sputnik.Tokenizers;

/// <summary>
/// A tokenizer that reproduces llama.cpp's <c>llama_tokenize</c>/<c>llama_detokenize</c>: byte-level BPE
/// ("gpt2" model, <see cref="BpeTokenizer"/>), SentencePiece BPE ("llama" model, <see cref="SpmTokenizer"/>) or
/// WordPiece ("bert" model, <see cref="WpmTokenizer"/>).
/// Instances are immutable apart from internal caches and safe to use from several threads.
/// </summary>
internal abstract class Tokenizer
{
    // The vocabulary as a few flat arrays (not one string and one byte[] per token): a 151,936-token vocabulary
    // takes ≈ 6 MB instead of ≈ 25 MB of heap, and builds without allocating per token what it keeps.
    private readonly PieceTable _pieces;
    private readonly TokenType[] _types;
    private byte[] _bytes = [];             // every token's bytes (TokenBytes), token i at _byteStart[i] .. _byteStart[i + 1]
    private readonly int[] _byteStart;
    private readonly int[] _specialTokens; // control, user-defined and unknown tokens, longest first
    private readonly string[] _specialPieces; // their text, for matching in the input
    private readonly bool[]? _stripAfter; // per token: whitespace after it is dropped (TokenizerData.StripSpaceAfterSpecials)
    private readonly HashSet<int> _eog = [];

    /// <summary>Piece text → id, probed with spans.</summary>
    private protected PieceTable PieceLookup => _pieces;

    private protected Tokenizer(TokenizerData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        var settings = data.Resolve();
        Model = data.Model;
        int n = data.Tokens.Length;
        if (data.Scores != null && data.Scores.Length != n) throw new ArgumentException("Scores length differs from Tokens length", nameof(data));
        if (data.TokenTypes != null && data.TokenTypes.Length != n) throw new ArgumentException("TokenTypes length differs from Tokens length", nameof(data));

        _pieces = new PieceTable(data.Tokens); // an empty piece becomes [EMPTY_i]; last occurrence wins, as in llama.cpp
        _types = new TokenType[n];
        for (int i = 0; i < n; i++)
        {
            int t = data.TokenTypes?[i] ?? (int)TokenType.Normal;
            _types[i] = t is >= 1 and <= 6 ? (TokenType)t : TokenType.Undefined;
        }

        BosId = settings.Bos ?? -1;
        EosId = settings.Eos ?? -1;
        UnknownId = settings.Unk;
        PadId = settings.Pad;
        AddBos = settings.AddBos && BosId >= 0;
        AddEos = settings.AddEos && EosId >= 0;
        AddSpacePrefix = settings.AddSpacePrefix;
        CleanSpaces = settings.CleanSpaces;
        EotId = ValidId(data.EotId) ?? DetectAndMarkControl("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
            "<|end_of_text|>", "<EOT>", "_<EOT>", "<｜end▁of▁sentence｜>", "<end_of_utterance>");
        EomId = ValidId(data.EomId) ?? DetectAndMarkControl("<|eom_id|>");
        foreach (var fim in new[] { "<|fim_pad|>", "<|fim_repo|>", "<|repo_name|>", "<|file_sep|>" })
            if (_pieces.TryGetValue(fim, out int fimId)) _eog.Add(fimId);
        foreach (var text in new[] { "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>", "<|endoftext|>",
                     "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>" })
        {
            if (!_pieces.TryGetValue(text, out int id)) continue;
            _eog.Add(id);
            if (_types[id] != TokenType.Control) _types[id] = TokenType.Control;
        }
        if (EosId >= 0) _eog.Add(EosId);
        if (EotId is { } eot) _eog.Add(eot);
        if (EomId is { } eom) _eog.Add(eom);
        if (_pieces.TryGetValue("<|return|>", out int ret) && _pieces.TryGetValue("<|call|>", out _) &&
            _pieces.TryGetValue("<|end|>", out int end) && _eog.Contains(ret))
        {
            _eog.Remove(end);
            _types[end] = TokenType.UserDefined;
        }

        _specialTokens = Enumerable.Range(0, n)
            .Where(i => _types[i] is TokenType.Control or TokenType.UserDefined or TokenType.Unknown)
            .OrderByDescending(i => _pieces[i].Length).ThenBy(i => i).ToArray();
        _specialPieces = Array.ConvertAll(_specialTokens, i => new string(_pieces[i]));
        if (data.StripSpaceAfterSpecials)
        {
            _stripAfter = new bool[n];
            foreach (int id in _specialTokens) _stripAfter[id] = true;
            if (_pieces.TryGetValue("</s>", out int eosPiece)) _stripAfter[eosPiece] = true;
            foreach (var keep in new[] { "<unk>", "<s>", "<|endoftext|>" })
                if (_pieces.TryGetValue(keep, out int k)) _stripAfter[k] = false;
        }

        _byteStart = new int[n + 1];
    }

    private int? ValidId(int? id) => id is { } v && v >= 0 && v < _pieces.Count ? v : null;

    private int? DetectAndMarkControl(params string[] texts)
    {
        // llama.cpp walks its (unordered) text→id map; any match is acceptable, we take the lowest id.
        int? found = null;
        foreach (var t in texts)
            if (_pieces.TryGetValue(t, out int id) && (found == null || id < found)) found = id;
        if (found is { } f) _types[f] = TokenType.Control;
        return found;
    }

    /// <summary>Creates the tokenizer for <paramref name="data"/>'s model ("gpt2" → BPE, "llama" → SentencePiece, "bert" → WordPiece).</summary>
    public static Tokenizer Create(TokenizerData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        Tokenizer t = data.IsSpm ? new SpmTokenizer(data) : data.IsWordPiece ? new WpmTokenizer(data) : new BpeTokenizer(data);
        t.InitBytes();
        return t;
    }

    // Every token's bytes into one array (the per-token arrays ComputeTokenBytes returns are short-lived).
    private void InitBytes()
    {
        int n = _pieces.Count;
        var bytes = new byte[Math.Max(16, n * 4)];
        int at = 0;
        for (int i = 0; i < n; i++)
        {
            byte[] token = ComputeTokenBytes(i);
            if (at + token.Length > bytes.Length) Array.Resize(ref bytes, Math.Max(at + token.Length, bytes.Length * 2));
            _byteStart[i] = at;
            token.CopyTo(bytes, at);
            at += token.Length;
        }
        _byteStart[n] = at;
        _bytes = bytes.AsSpan(0, at).ToArray();
    }

    /// <summary>The tokenizer model it was built for: "gpt2" (byte-level BPE), "llama" (SentencePiece) or "bert" (WordPiece).</summary>
    public string Model { get; }

    public int VocabSize => _pieces.Count;

    /// <summary>BOS id, or -1 when the vocabulary has none.</summary>
    public int BosId { get; }

    /// <summary>EOS id, or -1 when the vocabulary has none.</summary>
    public int EosId { get; }

    public int? UnknownId { get; }
    public int? PadId { get; }
    public int? EotId { get; }
    public int? EomId { get; }

    /// <summary>Whether the model asks for BOS at the start of a prompt.</summary>
    public bool AddBos { get; }

    /// <summary>Whether the model asks for EOS at the end of a prompt.</summary>
    public bool AddEos { get; }

    /// <summary>
    /// The token tokenizing with special tokens appends after the text: EOS where the model asks for it, WordPiece's
    /// [SEP]; null when nothing is appended. An input cut to fit keeps it last (what last-token pooling reads).
    /// </summary>
    public virtual int? ClosingId => AddEos ? EosId : null;

    /// <summary>Whether a space is prepended to text at the start or after a special token (SentencePiece).</summary>
    public bool AddSpacePrefix { get; }

    /// <summary>Whether decoding removes spaces before punctuation as llama.cpp's clean_spaces does.</summary>
    public bool CleanSpaces { get; }

    /// <summary>The raw vocabulary string of a token (a new string each call; <see cref="PieceText"/> does not allocate).</summary>
    public string TokenPiece(int id) => new(_pieces[id]);

    /// <summary>The raw vocabulary text of a token.</summary>
    public ReadOnlySpan<char> PieceText(int id) => _pieces[id];

    public TokenType GetTokenType(int id) => _types[id];

    /// <summary>The id of a raw vocabulary string, or null.</summary>
    public int? FindToken(string piece) => _pieces.TryGetValue(piece, out int id) ? id : null;

    /// <summary>
    /// The bytes a token stands for: byte-level BPE characters unmapped, SentencePiece ▁ as space and &lt;0xNN&gt;
    /// byte tokens as that byte; control and user-defined tokens as their text.
    /// </summary>
    public ReadOnlySpan<byte> TokenBytes(int id) => _bytes.AsSpan(_byteStart[id], _byteStart[id + 1] - _byteStart[id]);

    /// <summary>End of generation: EOS, EOT, EOM and the control tokens llama.cpp treats as such.</summary>
    public bool IsEndOfGeneration(int id) => _eog.Contains(id);

    /// <summary>The ids treated as end of generation.</summary>
    public IReadOnlyCollection<int> EndOfGenerationIds => _eog;

    private protected abstract byte[] ComputeTokenBytes(int id);

    /// <summary>The UTF-8 encoding of <paramref name="text"/>.</summary>
    private protected static byte[] Utf8(ReadOnlySpan<char> text)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(text)];
        Encoding.UTF8.GetBytes(text, bytes);
        return bytes;
    }

    /// <summary>
    /// Tokenizes <paramref name="text"/>. <paramref name="addBos"/> adds BOS and EOS where the model asks for them
    /// (<see cref="AddBos"/>, <see cref="AddEos"/>; llama.cpp's add_special). With <paramref name="parseSpecial"/>
    /// control tokens written in the text (e.g. &lt;|im_start|&gt;) become their ids; user-defined tokens are always
    /// matched.
    /// </summary>
    public int[] Encode(string text, bool addBos = true, bool parseSpecial = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var output = new List<int>(text.Length / 3 + 4);
        var fragments = Partition(text, parseSpecial);
        EncodeFragments(text, fragments, addBos, output);
        return output.ToArray();
    }

    /// <summary>A piece of the input: raw text (Id &lt; 0) or an already matched special token.</summary>
    private protected readonly record struct Fragment(int Id, int Start, int Length)
    {
        public bool IsText => Id < 0;
    }

    private protected abstract void EncodeFragments(string text, List<Fragment> fragments, bool addSpecial, List<int> output);

    /// <summary>llama.cpp's tokenizer_st_partition: splits text on special tokens, longest first.</summary>
    private List<Fragment> Partition(string text, bool parseSpecial)
    {
        var fragments = new List<Fragment>();
        if (text.Length == 0) return fragments;
        fragments.Add(new Fragment(-1, 0, text.Length));
        var next = new List<Fragment>();
        for (int s = 0; s < _specialTokens.Length; s++)
        {
            int id = _specialTokens[s];
            if (!parseSpecial && _types[id] != TokenType.UserDefined) continue;
            string piece = _specialPieces[s];
            if (text.IndexOf(piece, StringComparison.Ordinal) < 0) continue;
            next.Clear();
            foreach (var f in fragments)
            {
                if (!f.IsText) { next.Add(f); continue; }
                int start = f.Start, end = f.Start + f.Length;
                while (start < end)
                {
                    int match = text.IndexOf(piece, start, end - start, StringComparison.Ordinal);
                    if (match < 0) break;
                    if (match > start) next.Add(new Fragment(-1, start, match - start));
                    next.Add(new Fragment(id, match, piece.Length));
                    start = match + piece.Length;
                    if (_stripAfter?[id] == true)
                        while (start < end && text[start] is ' ' or '\t' or '\n' or '\v' or '\f' or '\r') start++;
                }
                if (start < end) next.Add(new Fragment(-1, start, end - start));
            }
            (fragments, next) = (next, fragments);
        }
        return fragments;
    }

    /// <summary>Appends the bytes of one token as llama.cpp's token_to_piece renders it.</summary>
    private protected virtual void AppendPiece(int id, bool renderSpecial, bool stripLeadingSpace, List<byte> output)
    {
        var type = _types[id];
        bool render = type switch
        {
            TokenType.Normal or TokenType.UserDefined or TokenType.Byte => true,
            TokenType.Control or TokenType.Unknown => renderSpecial,
            _ => false,
        };
        if (!render) return;
        var bytes = TokenBytes(id);
        if (stripLeadingSpace && bytes.Length > 0 && bytes[0] == (byte)' ') bytes = bytes[1..];
        foreach (byte b in bytes) output.Add(b);
    }

    /// <summary>Renders one token as llama.cpp's token_to_piece (control tokens only with <paramref name="renderSpecial"/>).</summary>
    public ReadOnlySpan<byte> PieceBytes(int id, bool renderSpecial = false)
    {
        var type = _types[id];
        bool render = type is TokenType.Normal or TokenType.UserDefined or TokenType.Byte
            || (renderSpecial && type is TokenType.Control or TokenType.Unknown);
        return render ? TokenBytes(id) : [];
    }

    /// <summary>
    /// Detokenizes as llama.cpp's llama_detokenize (remove_special = false): with <see cref="AddSpacePrefix"/> the
    /// first token's leading space is dropped, and with <see cref="CleanSpaces"/> spaces before punctuation are removed
    /// unless <paramref name="cleanSpaces"/> says otherwise.
    /// </summary>
    public string Decode(ReadOnlySpan<int> ids, bool renderSpecial = false, bool? cleanSpaces = null) =>
        Encoding.UTF8.GetString(DecodeBytes(ids, renderSpecial, cleanSpaces));

    /// <summary>The UTF-8 bytes <see cref="Decode"/> would produce.</summary>
    public byte[] DecodeBytes(ReadOnlySpan<int> ids, bool renderSpecial = false, bool? cleanSpaces = null)
    {
        var output = new List<byte>(ids.Length * 4);
        bool removeSpace = AddSpacePrefix;
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)_pieces.Count) throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} out of range");
            AppendPiece(id, renderSpecial, removeSpace, output);
            removeSpace = false;
        }
        if (cleanSpaces ?? CleanSpaces) Clean(output);
        return output.ToArray();
    }

    private static void Clean(List<byte> text)
    {
        // " ?", " !", " .", " ,": drop the space
        int total = text.Count > 0 ? 1 : 0;
        for (int i = 1; i < text.Count; i++)
        {
            byte x = text[i];
            if (text[i - 1] == ' ' && x is (byte)'?' or (byte)'!' or (byte)'.' or (byte)',') total--;
            text[total++] = x;
        }
        text.RemoveRange(total, text.Count - total);
        // " ' ": drop both spaces
        int n = text.Count;
        total = n > 0 ? 1 : 0;
        for (int i = 1; i < n; i++)
        {
            byte x = text[i];
            if (x == '\'' && i + 1 < n && text[i - 1] == ' ' && text[i + 1] == ' ')
            {
                total--;
                text[++i] = 0; // llama.cpp blanks the following space in place
            }
            text[total++] = x;
        }
        text.RemoveRange(total, text.Count - total);
        // " 's", " 'm", " 're", " 've": drop the space
        n = text.Count;
        total = n > 0 ? 1 : 0;
        for (int i = 1; i < n; i++)
        {
            byte x = text[i];
            if (text[i - 1] == ' ' && x == '\'' && i + 1 < n)
            {
                byte x1 = text[i + 1];
                if (x1 is (byte)'s' or (byte)'m') total--;
                else if (i + 2 < n && ((x1 == 'r' && text[i + 2] == 'e') || (x1 == 'v' && text[i + 2] == 'e'))) total--;
            }
            text[total++] = x;
        }
        text.RemoveRange(total, text.Count - total);
    }

    /// <summary>A decoder that turns a stream of token ids into complete UTF-8 text.</summary>
    public StreamingDecoder CreateStreamingDecoder(bool renderSpecial = false) => new(this, renderSpecial);
}
