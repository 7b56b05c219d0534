namespace Sputnik.Inference.Json;

/// <summary>
/// An incremental recogniser for JSON (optionally restricted by a compiled schema), fed one UTF-8 byte at a time:
/// a pushdown automaton whose stack holds one frame per open object, array, string, number or literal. Every prefix
/// it accepts can still be completed to a valid value, so constrained decoding never paints itself into a corner.
/// </summary>
/// <remarks>
/// Deliberate limits, so a model cannot loop forever on structure: at most <see cref="MaxWhitespace"/> consecutive
/// whitespace bytes between tokens, numbers of at most 20 integer / 20 fraction / 3 exponent digits (18 integer
/// digits for integer schemas), nesting at most <see cref="MaxDepth"/> deep. Enum, const and property-name matching
/// is on the compact JSON text (the model must write "é", not "\u00e9", where a schema names "é").
/// Accepted bytes allocate nothing; <see cref="CanAccept"/> tests on a scratch copy.
/// </remarks>
internal sealed class JsonRecognizer
{
    public const int MaxWhitespace = 4;
    public const int MaxDepth = 64;
    private const int MaxIntDigits = 20, MaxIntegerDigits = 18, MaxFracDigits = 20, MaxExpDigits = 3;

    private enum Kind : byte { Object, Array, String, Key, Number, Literal }

    private enum Result : byte { Reject, Ok, Retry }

    // Object steps.
    private const byte ObjOpen = 0, ObjAfterKey = 1, ObjBeforeValue = 2, ObjInValue = 3, ObjAfterValue = 4, ObjAfterComma = 5;
    // Array steps.
    private const byte ArrOpen = 0, ArrInValue = 1, ArrAfterValue = 2, ArrAfterComma = 3;
    // String steps (also used by keys).
    private const byte StrNormal = 0, StrEscape = 1, StrHex = 2, StrLowBackslash = 3, StrLowU = 4, StrUtf8 = 5;
    // Number steps.
    private const byte NumStart = 0, NumMinus = 1, NumZero = 2, NumInt = 3, NumDot = 4, NumFrac = 5, NumE = 6, NumESign = 7, NumExp = 8;

    private struct Frame
    {
        public SchemaNode Node;
        public Kind Kind;
        public byte Step;
        /// <summary>Array items, string code points, or digits of the current number part.</summary>
        public int Count;
        /// <summary>Literal or property-name range [Lo, Hi) still matching, and bytes matched.</summary>
        public int Lo, Hi, Pos;
        /// <summary>Object: properties present (bit i = PropertyNames[i]).</summary>
        public ulong Seen;
        /// <summary>Object: the property whose value is being read (-1: an additional one).</summary>
        public int Prop;
        /// <summary>String: hex digits read / UTF-8 continuation bytes still due; the partial \u code; whether it must be a low surrogate.</summary>
        public int Sub, Code;
        public bool LowSurrogate;
    }

    private readonly SchemaNode _root;
    private Frame[] _stack = new Frame[MaxDepth];
    private int _depth;
    private int _ws;
    private bool _rootDone;
    private JsonRecognizer? _scratch;

    public JsonRecognizer(SchemaNode root) => _root = root;

    /// <summary>The bytes so far form a complete value (trailing whitespace allowed); end of generation may come now.</summary>
    public bool IsComplete => _depth == 0 ? _rootDone : _depth == 1 && CanEnd(in _stack[0]);

    /// <summary>Complete, and nothing but whitespace could follow: generation can stop.</summary>
    public bool IsFinished => _depth == 0 && _rootDone;

    /// <summary>
    /// The fewest bytes that complete the value from here (0 when complete): what an answer that must end within a
    /// token budget has to leave room for.
    /// </summary>
    public int MinBytesToComplete()
    {
        if (_depth == 0) return _rootDone ? 0 : _root.MinBytes;
        long total = 0;
        for (int i = _depth - 1; i >= 0; i--) total += Rest(i);
        return (int)Math.Min(total, int.MaxValue / 2);
    }

    /// <summary>Bytes that finish frame <paramref name="i"/> once the frame above it (if any) is finished.</summary>
    private long Rest(int i)
    {
        ref var f = ref _stack[i];
        var n = f.Node;
        switch (f.Kind)
        {
            case Kind.Number: return f.Step is NumMinus or NumDot or NumE or NumESign ? 1 : 0;
            case Kind.Literal:
                int shortest = int.MaxValue;
                for (int l = f.Lo; l < f.Hi; l++) shortest = Math.Min(shortest, n.Literals[l].Length);
                return shortest - f.Pos;
            case Kind.String: return StringRest(in f) + Math.Max(0, n.MinLength - f.Count) + 1;
            case Kind.Key:
                int name = ShortestUnseenName(in f, _stack[i - 1].Seen);
                return name >= 0 ? n.PropertyNames[name].Length - f.Pos : StringRest(in f) + 1;
            case Kind.Array:
                int have = f.Step == ArrInValue ? f.Count + 1 : f.Count;
                int need = Math.Max(f.Step == ArrAfterComma ? 1 : 0, n.MinItems - have);
                return 1 + (long)need * (n.Items.MinBytes + 1) - (f.Step is ArrOpen or ArrAfterComma && need > 0 ? 1 : 0); // the first needs no comma, or has it
            default:
                return ObjectRest(i, in f);
        }
    }

    private long ObjectRest(int i, in Frame f)
    {
        var n = f.Node;
        ulong seen = f.Seen;
        long value = 0;
        int prop = f.Prop;
        if (f.Step == ObjAfterKey && i + 1 < _depth) prop = ShortestUnseenName(in _stack[i + 1], seen); // the key is still open
        if (f.Step is ObjAfterKey or ObjBeforeValue)
            value = (f.Step == ObjAfterKey ? 1 : 0) + (prop >= 0 ? n.PropertySchemas[prop].MinBytes : 1);
        if (f.Step is ObjAfterKey or ObjBeforeValue or ObjInValue && prop >= 0) seen |= 1UL << prop;
        long missing = 0;
        int count = 0;
        for (int p = 0; p < n.PropertyNames.Length; p++)
            if ((n.Required & ~seen & (1UL << p)) != 0) { missing += n.MemberBytes(p); count++; }
        if (f.Step == ObjOpen && count > 0) missing--; // the first member has no comma
        if (f.Step == ObjAfterComma)
        {
            // A comma is written: some member must follow; without a required one, the cheapest optional one.
            if (count > 0) missing--;
            else missing = CheapestOptional(n, seen) - 1;
        }
        return value + missing + 1;
    }

    private static long CheapestOptional(SchemaNode n, ulong seen)
    {
        long best = n.AdditionalProperties != null ? 1 + 2 + 1 + n.AdditionalProperties.MinBytes : int.MaxValue;
        for (int p = 0; p < n.PropertyNames.Length; p++)
            if ((seen & (1UL << p)) == 0) best = Math.Min(best, n.MemberBytes(p));
        return best;
    }

    /// <summary>The shortest declared name a key frame can still become, or −1 (then it ends as an additional property).</summary>
    private static int ShortestUnseenName(in Frame key, ulong seen)
    {
        int best = -1;
        for (int l = key.Lo; l < key.Hi; l++)
            if ((seen & (1UL << l)) == 0 && (best < 0 || key.Node.PropertyNames[l].Length < key.Node.PropertyNames[best].Length)) best = l;
        return best;
    }

    /// <summary>Bytes that finish an escape or multi-byte character in progress.</summary>
    private static int StringRest(in Frame f) => f.Step switch
    {
        StrEscape => 1,
        StrHex => 4 - f.Sub + (!f.LowSurrogate && f.Code << (4 * (4 - f.Sub)) is >= 0xD800 and <= 0xDBFF ? 6 : 0),
        StrLowBackslash => 6,
        StrLowU => 5,
        StrUtf8 => f.Sub,
        _ => 0,
    };

    /// <summary>Whether the bytes would keep the text a valid prefix; the state does not change.</summary>
    public bool CanAccept(ReadOnlySpan<byte> bytes, int maxBytesToComplete = int.MaxValue)
    {
        var s = _scratch ??= new JsonRecognizer(_root);
        CopyTo(s);
        foreach (byte b in bytes)
            if (!s.Push(b)) return false;
        return maxBytesToComplete == int.MaxValue || s.MinBytesToComplete() <= maxBytesToComplete;
    }

    /// <summary>Feeds bytes; false (and the state unchanged) when they would make the text invalid.</summary>
    public bool Accept(ReadOnlySpan<byte> bytes)
    {
        if (!CanAccept(bytes)) return false;
        var s = _scratch!;
        (_stack, s._stack) = (s._stack, _stack);
        (_depth, _ws, _rootDone) = (s._depth, s._ws, s._rootDone);
        return true;
    }

    private void CopyTo(JsonRecognizer other)
    {
        Array.Copy(_stack, other._stack, _depth);
        other._depth = _depth;
        other._ws = _ws;
        other._rootDone = _rootDone;
    }

    /// <summary>Feeds one byte; false means the text is no longer a valid prefix (the state is then undefined).</summary>
    public bool Push(byte b)
    {
        while (true)
        {
            if (_depth == 0)
            {
                if (IsWhitespace(b)) return Whitespace();
                _ws = 0;
                return !_rootDone && StartValue(_root, b);
            }
            ref var f = ref _stack[_depth - 1];
            var r = f.Kind switch
            {
                Kind.Object => ObjectStep(ref f, b),
                Kind.Array => ArrayStep(ref f, b),
                Kind.String => StringByte(ref f, b),
                Kind.Key => KeyStep(ref f, b),
                Kind.Number => NumberStep(ref f, b),
                _ => LiteralStep(ref f, b),
            };
            if (r != Result.Retry) return r == Result.Ok;
            // A complete number or literal that cannot take this byte ends here; its parent reads the byte.
            _depth--;
            ValueEnded();
        }
    }

    private static bool IsWhitespace(byte b) => b is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t';

    private bool Whitespace() => ++_ws <= MaxWhitespace;

    private bool StartValue(SchemaNode node, byte b)
    {
        if (node.Resolve(b) is not { } n || _depth == MaxDepth) return false;
        ref var f = ref _stack[_depth++];
        f = default;
        f.Node = n;
        switch (n.Kind)
        {
            case SchemaKind.Object:
                f.Kind = Kind.Object;
                return true;
            case SchemaKind.Array:
                f.Kind = Kind.Array;
                return true;
            case SchemaKind.String:
                f.Kind = Kind.String;
                return true;
            case SchemaKind.Number or SchemaKind.Integer:
                f.Kind = Kind.Number;
                return NumberStep(ref f, b) == Result.Ok;
            default:
                f.Kind = Kind.Literal;
                f.Hi = n.Literals.Length;
                return LiteralStep(ref f, b) == Result.Ok;
        }
    }

    /// <summary>The innermost value just ended: its container moves past it.</summary>
    private void ValueEnded()
    {
        if (_depth == 0)
        {
            _rootDone = true;
            return;
        }
        ref var p = ref _stack[_depth - 1];
        if (p.Kind == Kind.Object)
        {
            if (p.Prop >= 0) p.Seen |= 1UL << p.Prop;
            p.Step = ObjAfterValue;
        }
        else
        {
            p.Count++;
            p.Step = ArrAfterValue;
        }
    }

    private Result Close()
    {
        _depth--;
        ValueEnded();
        return Result.Ok;
    }

    private Result ObjectStep(ref Frame f, byte b)
    {
        if (IsWhitespace(b) && f.Step != ObjInValue) return Whitespace() ? Result.Ok : Result.Reject;
        _ws = 0;
        var n = f.Node;
        switch (f.Step)
        {
            case ObjOpen or ObjAfterValue when b == '}':
                return (n.Required & ~f.Seen) == 0 ? Close() : Result.Reject;
            case ObjOpen or ObjAfterComma when b == '"':
                if (!CanAddKey(in f)) return Result.Reject;
                f.Step = ObjAfterKey; // where the key frame leaves it
                ref var k = ref _stack[_depth++];
                k = default;
                k.Node = n;
                k.Kind = Kind.Key;
                k.Hi = n.PropertyNames.Length;
                return KeyMatch(ref k, b) ? Result.Ok : Result.Reject;
            case ObjAfterKey when b == ':':
                f.Step = ObjBeforeValue;
                return Result.Ok;
            case ObjBeforeValue:
                f.Step = ObjInValue;
                return StartValue(f.Prop >= 0 ? n.PropertySchemas[f.Prop] : n.AdditionalProperties!, b) ? Result.Ok : Result.Reject;
            case ObjAfterValue when b == ',':
                if (!CanAddKey(in f)) return Result.Reject;
                f.Step = ObjAfterComma;
                return Result.Ok;
            default:
                return Result.Reject;
        }
    }

    private static bool CanAddKey(in Frame f) => f.Node.AdditionalProperties != null || (f.Node.AllProperties & ~f.Seen) != 0;

    private Result ArrayStep(ref Frame f, byte b)
    {
        if (IsWhitespace(b)) return Whitespace() ? Result.Ok : Result.Reject;
        _ws = 0;
        var n = f.Node;
        switch (f.Step)
        {
            case ArrOpen or ArrAfterValue when b == ']':
                return f.Count >= n.MinItems ? Close() : Result.Reject;
            case ArrAfterValue when b == ',':
                if (f.Count >= n.MaxItems) return Result.Reject;
                f.Step = ArrAfterComma;
                return Result.Ok;
            case ArrOpen or ArrAfterComma:
                if (f.Count >= n.MaxItems) return Result.Reject;
                f.Step = ArrInValue;
                return StartValue(n.Items, b) ? Result.Ok : Result.Reject;
            default:
                return Result.Reject;
        }
    }

    private Result StringByte(ref Frame f, byte b)
    {
        _ws = 0;
        return StringStep(ref f, b, f.Node.MinLength, f.Node.MaxLength) switch
        {
            StringEvent.Reject => Result.Reject,
            StringEvent.Closed => Close(),
            _ => Result.Ok,
        };
    }

    private enum StringEvent : byte { Reject, Ok, Closed }

    /// <summary>String syntax after the opening quote: escapes (surrogate pairs paired), UTF-8 shape, no raw control bytes.</summary>
    private static StringEvent StringStep(ref Frame f, byte b, int minLength, int maxLength)
    {
        switch (f.Step)
        {
            case StrNormal:
                if (b == '"') return f.Count >= minLength ? StringEvent.Closed : StringEvent.Reject;
                if (b < 0x20) return StringEvent.Reject;
                int continuation = b switch { < 0x80 => 0, >= 0xC2 and <= 0xDF => 1, >= 0xE0 and <= 0xEF => 2, >= 0xF0 and <= 0xF4 => 3, _ => -1 };
                if (continuation < 0 || f.Count >= maxLength) return StringEvent.Reject;
                f.Count++; // one code point starts here
                if (b == '\\') f.Step = StrEscape;
                else if (continuation > 0)
                {
                    // The second byte's range rules out overlong forms, surrogates and code points past U+10FFFF.
                    f.Step = StrUtf8;
                    f.Sub = continuation;
                    f.Code = b switch { 0xE0 => 0xA0BF, 0xED => 0x809F, 0xF0 => 0x90BF, 0xF4 => 0x808F, _ => 0x80BF };
                }
                return StringEvent.Ok;
            case StrUtf8:
                if (b < f.Code >> 8 || b > (f.Code & 0xFF)) return StringEvent.Reject;
                f.Code = 0x80BF;
                if (--f.Sub == 0) f.Step = StrNormal;
                return StringEvent.Ok;
            case StrEscape:
                if (b == 'u') { f.Step = StrHex; f.Sub = 0; f.Code = 0; f.LowSurrogate = false; return StringEvent.Ok; }
                if (b is not ((byte)'"' or (byte)'\\' or (byte)'/' or (byte)'b' or (byte)'f' or (byte)'n' or (byte)'r' or (byte)'t')) return StringEvent.Reject;
                f.Step = StrNormal;
                return StringEvent.Ok;
            case StrHex:
                int d = HexValue(b);
                if (d < 0) return StringEvent.Reject;
                f.Code = f.Code * 16 + d;
                f.Sub++;
                int shift = 4 * (4 - f.Sub);
                int lo = f.Code << shift, hi = lo | ((1 << shift) - 1);
                // Only prefixes that can still end as a valid escape: a lone low surrogate never can, and after a
                // high surrogate only a low one may follow.
                bool ok = f.LowSurrogate ? hi >= 0xDC00 && lo <= 0xDFFF : !(lo >= 0xDC00 && hi <= 0xDFFF);
                if (!ok) return StringEvent.Reject;
                if (f.Sub == 4) f.Step = !f.LowSurrogate && f.Code is >= 0xD800 and <= 0xDBFF ? StrLowBackslash : StrNormal;
                return StringEvent.Ok;
            case StrLowBackslash:
                if (b != '\\') return StringEvent.Reject;
                f.Step = StrLowU;
                return StringEvent.Ok;
            default: // StrLowU
                if (b != 'u') return StringEvent.Reject;
                f.Step = StrHex;
                f.Sub = 0;
                f.Code = 0;
                f.LowSurrogate = true;
                return StringEvent.Ok;
        }
    }

    private static int HexValue(byte b) => b switch
    {
        >= (byte)'0' and <= (byte)'9' => b - '0',
        >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
        _ => -1,
    };

    /// <summary>A property name: string syntax, narrowed against the declared names not yet present.</summary>
    private Result KeyStep(ref Frame f, byte b)
    {
        _ws = 0;
        var ev = StringStep(ref f, b, 0, int.MaxValue);
        if (ev == StringEvent.Reject || !KeyMatch(ref f, b)) return Result.Reject;
        if (ev == StringEvent.Ok) return Result.Ok;
        // The closing quote: a declared name matched exactly, or an additional property.
        var n = f.Node;
        int prop = f.Lo < f.Hi && n.PropertyNames[f.Lo].Length == f.Pos ? f.Lo : -1;
        _depth--;
        ref var obj = ref _stack[_depth - 1];
        if (prop >= 0 && (obj.Seen & (1UL << prop)) != 0) return Result.Reject; // a duplicate
        if (prop < 0 && n.AdditionalProperties == null) return Result.Reject;
        obj.Prop = prop;
        return Result.Ok;
    }

    private bool KeyMatch(ref Frame f, byte b)
    {
        var names = f.Node.PropertyNames;
        Narrow(names, ref f.Lo, ref f.Hi, f.Pos, b);
        f.Pos++;
        if (f.Node.AdditionalProperties != null) return true;
        // Some name not yet present must still match.
        ref var obj = ref _stack[_depth - 2];
        return (RangeBits(f.Lo, f.Hi) & ~obj.Seen) != 0;
    }

    private static ulong RangeBits(int lo, int hi)
    {
        if (lo >= hi) return 0;
        ulong upTo = hi >= 64 ? ulong.MaxValue : (1UL << hi) - 1;
        return upTo & ~((1UL << lo) - 1);
    }

    /// <summary>Narrows a sorted range of byte strings to those with <paramref name="b"/> at <paramref name="pos"/>.</summary>
    private static void Narrow(byte[][] sorted, ref int lo, ref int hi, int pos, byte b)
    {
        int l = lo, h = hi;
        while (l < h && (sorted[l].Length <= pos || sorted[l][pos] < b)) l++;
        int e = l;
        while (e < h && sorted[e].Length > pos && sorted[e][pos] == b) e++;
        lo = l;
        hi = e;
    }

    private Result LiteralStep(ref Frame f, byte b)
    {
        _ws = 0;
        var lits = f.Node.Literals;
        int lo = f.Lo, hi = f.Hi;
        Narrow(lits, ref lo, ref hi, f.Pos, b);
        if (lo == hi) return CanEnd(in f) ? Result.Retry : Result.Reject;
        f.Lo = lo;
        f.Hi = hi;
        f.Pos++;
        // Only one literal left and it is complete: nothing can extend it.
        return hi - lo == 1 && lits[lo].Length == f.Pos ? Close() : Result.Ok;
    }

    private static bool CanEnd(in Frame f) => f.Kind switch
    {
        Kind.Number => f.Step is NumZero or NumInt or NumFrac or NumExp,
        Kind.Literal => f.Lo < f.Hi && f.Node.Literals[f.Lo].Length == f.Pos,
        _ => false,
    };

    private Result NumberStep(ref Frame f, byte b)
    {
        _ws = 0;
        bool digit = b is >= (byte)'0' and <= (byte)'9';
        bool integer = f.Node.Kind == SchemaKind.Integer;
        switch (f.Step)
        {
            case NumStart when b == '-':
                f.Step = NumMinus;
                return Result.Ok;
            case NumStart or NumMinus when digit:
                f.Step = b == '0' ? NumZero : NumInt;
                f.Count = 1;
                return Result.Ok;
            case NumInt when digit && f.Count < (integer ? MaxIntegerDigits : MaxIntDigits):
                f.Count++;
                return Result.Ok;
            case NumZero or NumInt when b == '.' && !integer:
                f.Step = NumDot;
                return Result.Ok;
            case NumZero or NumInt or NumFrac when (b is (byte)'e' or (byte)'E') && !integer:
                f.Step = NumE;
                return Result.Ok;
            case NumDot when digit:
                f.Step = NumFrac;
                f.Count = 1;
                return Result.Ok;
            case NumFrac when digit && f.Count < MaxFracDigits:
                f.Count++;
                return Result.Ok;
            case NumE when b is (byte)'+' or (byte)'-':
                f.Step = NumESign;
                return Result.Ok;
            case NumE or NumESign when digit:
                f.Step = NumExp;
                f.Count = 1;
                return Result.Ok;
            case NumExp when digit && f.Count < MaxExpDigits:
                f.Count++;
                return Result.Ok;
            default:
                return CanEnd(in f) ? Result.Retry : Result.Reject;
        }
    }
}
