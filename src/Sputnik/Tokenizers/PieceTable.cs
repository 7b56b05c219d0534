namespace Sputnik.Tokenizers;

/// <summary>
/// The vocabulary's pieces (raw token strings) in one char array with offsets, and an open-addressing hash from a
/// piece's text to its id. A 151,936-token vocabulary (qwen2) takes ≈ 3.5 MB this way, against ≈ 11 MB as one
/// string per token plus a Dictionary&lt;string, int&gt;; lookups take a span, so the tokenizers probe substrings
/// without allocating. Where a piece occurs twice the last id wins, as in llama.cpp's text→id map.
/// </summary>
internal sealed class PieceTable
{
    private readonly char[] _text;
    private readonly int[] _start;   // piece i is _text[_start[i] .. _start[i + 1])
    private readonly int[] _slots;   // id + 1 of the piece hashed there, 0 for an empty slot; length a power of two
    private readonly int _mask;

    /// <summary>Builds the table; a null or empty piece is stored as "[EMPTY_i]" (never matched by real text).</summary>
    public PieceTable(IReadOnlyList<string?> pieces)
    {
        ArgumentNullException.ThrowIfNull(pieces);
        int n = pieces.Count;
        _start = new int[n + 1];
        long chars = 0;
        for (int i = 0; i < n; i++) chars += pieces[i] is { Length: > 0 } p ? p.Length : $"[EMPTY_{i}]".Length;
        if (chars > Array.MaxLength) throw new ArgumentException($"the vocabulary's {n} pieces hold {chars} characters, too many", nameof(pieces));
        _text = new char[chars];
        int at = 0;
        for (int i = 0; i < n; i++)
        {
            string piece = pieces[i] is { Length: > 0 } p ? p : $"[EMPTY_{i}]";
            _start[i] = at;
            piece.CopyTo(_text.AsSpan(at));
            at += piece.Length;
            MaxLength = Math.Max(MaxLength, piece.Length);
        }
        _start[n] = at;
        // At most 60 % full, so a miss ends after a probe or two.
        long wanted = Math.Max(16, (long)n * 5 / 3);
        if (wanted > 1 << 30) throw new ArgumentException($"a vocabulary of {n} pieces is too large", nameof(pieces));
        int size = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)wanted);
        _slots = new int[size];
        _mask = size - 1;
        for (int id = 0; id < n; id++)
        {
            int slot = Find(this[id]);
            _slots[slot] = id + 1; // a repeated piece: the later id replaces the earlier
        }
    }

    /// <summary>Number of pieces (the vocabulary size).</summary>
    public int Count => _start.Length - 1;

    /// <summary>Characters of the longest piece.</summary>
    public int MaxLength { get; }

    /// <summary>The text of piece <paramref name="id"/>.</summary>
    public ReadOnlySpan<char> this[int id] => _text.AsSpan(_start[id], _start[id + 1] - _start[id]);

    /// <summary>The id of the piece whose text is <paramref name="piece"/>, if any.</summary>
    public bool TryGetValue(ReadOnlySpan<char> piece, out int id)
    {
        id = _slots[Find(piece)] - 1;
        return id >= 0;
    }

    // The slot holding piece, or the empty slot where it would go.
    private int Find(ReadOnlySpan<char> piece)
    {
        int slot = string.GetHashCode(piece) & _mask;
        while (true)
        {
            int entry = _slots[slot];
            if (entry == 0 || this[entry - 1].SequenceEqual(piece)) return slot;
            slot = (slot + 1) & _mask;
        }
    }
}
