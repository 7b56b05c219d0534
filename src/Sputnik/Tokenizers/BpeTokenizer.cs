using System.Text;

namespace Sputnik.Tokenizers;

/// <summary>
/// Byte-level BPE ("gpt2" model): regex pre-tokenization per llama.cpp pre-tokenizer, GPT-2 byte mapping, and
/// merges applied lowest rank first (leftmost on ties), as llama.cpp's llm_tokenizer_bpe_session.
/// </summary>
internal sealed class BpeTokenizer : Tokenizer
{
    private readonly Dictionary<long, (int Rank, int Merged)> _merges;
    private readonly int[] _byteTokens = new int[256];
    private readonly bool _ignoreMerges;
    // Built on first use: its compiled regexes cost time and a few MB of generated code, which a model only
    // loaded to be measured (bench) or to embed token ids never needs. PreTokenizer.For caches one per kind.
    private PreTokenizer? _pre;
    private readonly string _preName;
    private readonly Dictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private readonly Lock _cacheLock = new();
    private const int MaxCacheEntries = 65536;
    private const int MaxCachedWordLength = 256;

    internal BpeTokenizer(TokenizerData data) : base(data)
    {
        var settings = data.Resolve();
        _ignoreMerges = settings.IgnoreMerges;
        _preName = data.EffectivePre;
        var merges = data.Merges ?? throw new ArgumentException("BPE tokenizer needs merges", nameof(data));
        _merges = new Dictionary<long, (int, int)>(merges.Length);
        char[] joined = new char[2 * PieceLookup.MaxLength];
        for (int rank = 0; rank < merges.Length; rank++)
        {
            string m = merges[rank];
            int sep = m.IndexOf(' ', 1);
            if (sep < 0) continue;
            var left = m.AsSpan(0, sep);
            var right = m.AsSpan(sep + 1);
            if (!PieceLookup.TryGetValue(left, out int l) || !PieceLookup.TryGetValue(right, out int r)) continue;
            // Both halves are pieces, so the pair fits in twice the longest piece; no string per merge.
            left.CopyTo(joined);
            right.CopyTo(joined.AsSpan(left.Length));
            int merged = PieceLookup.TryGetValue(joined.AsSpan(0, left.Length + right.Length), out int id) ? id : -1;
            _merges.TryAdd(Key(l, r), (rank, merged));
        }
        for (int b = 0; b < 256; b++)
            _byteTokens[b] = PieceLookup.TryGetValue([ByteLevel.ByteToChar((byte)b)], out int id) ? id : -1;
    }

    /// <summary>The pre-tokenizer regex family in use ("gpt2", "llama3", "qwen2", "deepseek-llm", ...).</summary>
    public string PreTokenizerKind => PreTokenizer.Resolve(_preName).Kind;

    private static long Key(int left, int right) => ((long)left << 32) | (uint)right;

    private protected override byte[] ComputeTokenBytes(int id)
    {
        var piece = PieceText(id);
        return GetTokenType(id) is TokenType.Normal ? ByteLevel.Decode(piece) : Utf8(piece);
    }

    private protected override void EncodeFragments(string text, List<Fragment> fragments, bool addSpecial, List<int> output)
    {
        if (addSpecial && AddBos) output.Add(BosId);
        foreach (var f in fragments)
        {
            if (!f.IsText) { output.Add(f.Id); continue; }
            foreach (var word in (_pre ??= PreTokenizer.For(_preName)).Split(text.Substring(f.Start, f.Length)))
                EncodeWord(word, output);
        }
        if (addSpecial && AddEos) output.Add(EosId);
    }

    private void EncodeWord(string word, List<int> output)
    {
        byte[] utf8 = Encoding.UTF8.GetBytes(word);
        string mapped = ByteLevel.Encode(utf8);
        if (mapped.Length <= MaxCachedWordLength)
        {
            lock (_cacheLock)
            {
                if (_cache.TryGetValue(mapped, out var cached)) { output.AddRange(cached); return; }
            }
        }
        int start = output.Count;
        if (_ignoreMerges && PieceLookup.TryGetValue(mapped, out int whole)) output.Add(whole);
        else Merge(mapped, utf8, output);
        if (mapped.Length <= MaxCachedWordLength)
        {
            var ids = output.GetRange(start, output.Count - start).ToArray();
            lock (_cacheLock)
            {
                if (_cache.Count >= MaxCacheEntries) _cache.Clear();
                _cache[mapped] = ids;
            }
        }
    }

    private struct Symbol
    {
        public int Start, Length, Prev, Next, Id;
    }

    private void Merge(string mapped, byte[] utf8, List<int> output)
    {
        int n = mapped.Length; // one mapped char per byte
        var symbols = new Symbol[n];
        for (int i = 0; i < n; i++)
            symbols[i] = new Symbol { Start = i, Length = 1, Prev = i - 1, Next = i + 1 < n ? i + 1 : -1, Id = _byteTokens[utf8[i]] };

        var queue = new PriorityQueue<(int Left, int Right, int LeftLen, int RightLen, int Merged), (int Rank, int Left)>();
        void TryAdd(int left, int right)
        {
            if (left < 0 || right < 0) return;
            ref var l = ref symbols[left];
            ref var r = ref symbols[right];
            if (l.Id < 0 || r.Id < 0) return;
            if (_merges.TryGetValue(Key(l.Id, r.Id), out var m))
                queue.Enqueue((left, right, l.Length, r.Length, m.Merged), (m.Rank, left));
        }
        for (int i = 1; i < n; i++) TryAdd(i - 1, i);

        while (queue.TryDequeue(out var bigram, out _))
        {
            ref var l = ref symbols[bigram.Left];
            ref var r = ref symbols[bigram.Right];
            if (l.Length == 0 || r.Length == 0 || l.Length != bigram.LeftLen || r.Length != bigram.RightLen || l.Next != bigram.Right)
                continue; // outdated
            l.Length += r.Length;
            l.Id = bigram.Merged;
            r.Length = 0;
            l.Next = r.Next;
            if (r.Next >= 0) symbols[r.Next].Prev = bigram.Left;
            TryAdd(l.Prev, bigram.Left);
            TryAdd(bigram.Left, l.Next);
        }

        for (int i = 0; i >= 0; i = symbols[i].Next)
        {
            ref var s = ref symbols[i];
            if (s.Id >= 0) { output.Add(s.Id); continue; }
            if (PieceLookup.TryGetValue(mapped.AsSpan(s.Start, s.Length), out int id)) { output.Add(id); continue; }
            for (int k = 0; k < s.Length; k++)
                if (_byteTokens[utf8[s.Start + k]] is var b && b >= 0) output.Add(b);
        }
    }
}
