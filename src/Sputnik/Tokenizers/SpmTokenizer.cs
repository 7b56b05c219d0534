using System.Globalization;
using System.Text;

namespace Sputnik.Tokenizers;

/// <summary>
/// SentencePiece BPE ("llama" model) as llama.cpp's llm_tokenizer_spm: spaces become ▁, a space is prepended at
/// the start and after special tokens (add_space_prefix), adjacent symbols are merged highest score first (leftmost
/// on ties) while the merged text is a vocabulary token, and leftovers fall back to &lt;0xNN&gt; byte tokens.
/// </summary>
internal sealed class SpmTokenizer : Tokenizer
{
    private const char Space = '\u2581'; // ▁
    private readonly float[] _scores;
    private readonly int[] _byteTokens = new int[256];

    internal SpmTokenizer(TokenizerData data) : base(data)
    {
        _scores = data.Scores ?? new float[data.Tokens.Length];
        for (int b = 0; b < 256; b++)
        {
            string hex = $"<0x{b:X2}>";
            if (PieceLookup.TryGetValue(hex, out int id)) _byteTokens[b] = id;
            else if (b < 0x80 && PieceLookup.TryGetValue([(char)b], out int raw)) _byteTokens[b] = raw;
            else _byteTokens[b] = UnknownId ?? -1;
        }
    }

    private protected override byte[] ComputeTokenBytes(int id)
    {
        var piece = PieceText(id);
        switch (GetTokenType(id))
        {
            case TokenType.Byte:
                if (piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>' &&
                    byte.TryParse(piece.Slice(3, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out byte b))
                    return [b];
                return Utf8(piece);
            case TokenType.Normal:
                return Encoding.UTF8.GetBytes(piece.ToString().Replace(Space, ' '));
            default:
                return Utf8(piece);
        }
    }

    private protected override void EncodeFragments(string text, List<Fragment> fragments, bool addSpecial, List<int> output)
    {
        bool prevSpecial = true; // the first text fragment gets the space prefix
        if (addSpecial && AddBos) output.Add(BosId);
        var sb = new StringBuilder();
        foreach (var f in fragments)
        {
            if (!f.IsText) { output.Add(f.Id); prevSpecial = true; continue; }
            sb.Clear();
            if (AddSpacePrefix && prevSpecial) sb.Append(' ');
            sb.Append(text, f.Start, f.Length);
            sb.Replace(' ', Space);
            EncodeText(sb.ToString(), output);
            prevSpecial = false;
        }
        if (addSpecial && AddEos) output.Add(EosId);
    }

    private struct Symbol
    {
        public int Start, Length, Prev, Next;
    }

    private void EncodeText(string text, List<int> output)
    {
        if (text.Length == 0) return;
        var symbols = new List<Symbol>(text.Length);
        for (int i = 0; i < text.Length;)
        {
            int len = char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]) ? 2 : 1;
            symbols.Add(new Symbol { Start = i, Length = len, Prev = symbols.Count - 1, Next = i + len < text.Length ? symbols.Count + 1 : -1 });
            i += len;
        }
        var sym = symbols.ToArray();

        // max-heap on score, then leftmost: PriorityQueue is a min-heap, so negate the score
        var queue = new PriorityQueue<(int Left, int Right, int Size), (float NegScore, int Left)>();
        void TryAdd(int left, int right)
        {
            if (left < 0 || right < 0) return;
            int size = sym[left].Length + sym[right].Length;
            if (!PieceLookup.TryGetValue(text.AsSpan(sym[left].Start, size), out int id)) return;
            queue.Enqueue((left, right, size), (-_scores[id], left));
        }
        for (int i = 1; i < sym.Length; i++) TryAdd(i - 1, i);

        while (queue.TryDequeue(out var bigram, out _))
        {
            ref var l = ref sym[bigram.Left];
            ref var r = ref sym[bigram.Right];
            if (l.Length == 0 || r.Length == 0 || l.Length + r.Length != bigram.Size) continue;
            l.Length += r.Length;
            r.Length = 0;
            l.Next = r.Next;
            if (r.Next >= 0) sym[r.Next].Prev = bigram.Left;
            TryAdd(l.Prev, bigram.Left);
            TryAdd(bigram.Left, l.Next);
        }

        Span<byte> buf = stackalloc byte[4];
        for (int i = 0; i >= 0; i = sym[i].Next)
        {
            var s = sym[i];
            if (PieceLookup.TryGetValue(text.AsSpan(s.Start, s.Length), out int id)) { output.Add(id); continue; }
            int n = Encoding.UTF8.GetBytes(text.AsSpan(s.Start, s.Length), buf);
            for (int k = 0; k < n; k++)
            {
                int t = _byteTokens[buf[k]];
                if (t < 0) throw new InvalidOperationException($"no byte token for 0x{buf[k]:X2} and no unknown token");
                output.Add(t);
            }
        }
    }
}
