using System.Text;

namespace Sputnik.Tokenizers;

/// <summary>
/// Turns token ids into text one at a time, returning only complete UTF-8 characters and holding back a
/// multi-byte sequence split across tokens until it completes. Follows <see cref="Tokenizer.Decode"/>'s rules for
/// special tokens and the SentencePiece leading space (but does not apply clean_spaces). Not thread-safe.
/// </summary>
internal sealed class StreamingDecoder
{
    private readonly Tokenizer _tokenizer;
    private readonly bool _renderSpecial;
    private readonly Decoder _decoder = new UTF8Encoding(false, false).GetDecoder();
    private char[] _chars = new char[64];
    private bool _first = true;

    public StreamingDecoder(Tokenizer tokenizer, bool renderSpecial = false)
    {
        _tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        _renderSpecial = renderSpecial;
    }

    /// <summary>Feeds one token; returns the text that became complete (possibly empty).</summary>
    public string Add(int id)
    {
        var bytes = _tokenizer.PieceBytes(id, _renderSpecial);
        if (_first)
        {
            _first = false;
            if (_tokenizer.AddSpacePrefix && bytes.Length > 0 && bytes[0] == (byte)' ') bytes = bytes[1..];
        }
        if (bytes.IsEmpty) return string.Empty;
        int max = _decoder.GetCharCount(bytes, flush: false);
        if (_chars.Length < max) _chars = new char[Math.Max(max, _chars.Length * 2)];
        int n = _decoder.GetChars(bytes, _chars, flush: false); // a partial sequence stays in the decoder
        return n == 0 ? string.Empty : new string(_chars, 0, n);
    }

    /// <summary>Returns whatever is held back (incomplete sequences become U+FFFD) and resets.</summary>
    public string Flush()
    {
        int n = _decoder.GetChars(ReadOnlySpan<byte>.Empty, _chars, flush: true);
        _decoder.Reset();
        _first = true;
        return new string(_chars, 0, n);
    }

    /// <summary>Forgets held-back bytes and starts over as at the beginning of a text.</summary>
    public void Reset()
    {
        _decoder.Reset();
        _first = true;
    }
}
