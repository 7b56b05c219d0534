namespace Sputnik.Inference;

/// <summary>
/// Streams text through a set of stop strings: text is released only once it can no longer be the start of a
/// stop string, so a stop sequence split across tokens is never half-printed.
/// </summary>
internal sealed class StopMatcher(IReadOnlyList<string> stops)
{
    private readonly string[] _stops = stops.Where(s => s.Length > 0).ToArray();
    private string _pending = "";

    /// <summary>The stop string that ended the text, once one has been seen.</summary>
    public string? Matched { get; private set; }

    /// <summary>Adds text; returns what can be shown now. After a match, returns the text before it and ignores the rest.</summary>
    public string Push(string text)
    {
        if (Matched != null) return "";
        if (_stops.Length == 0) return text;
        _pending += text;
        int cut = -1;
        foreach (string s in _stops)
        {
            int i = _pending.IndexOf(s, StringComparison.Ordinal);
            if (i >= 0 && (cut < 0 || i < cut)) { cut = i; Matched = s; }
        }
        if (cut >= 0)
        {
            string before = _pending[..cut];
            _pending = "";
            return before;
        }
        int hold = 0;
        foreach (string s in _stops)
            for (int len = Math.Min(s.Length - 1, _pending.Length); len > hold; len--)
                if (_pending.AsSpan(_pending.Length - len).SequenceEqual(s.AsSpan(0, len))) { hold = len; break; }
        string ready = _pending[..^hold];
        _pending = _pending[^hold..];
        return ready;
    }

    /// <summary>Releases held-back text at the end of generation (it never became a stop string).</summary>
    public string Flush()
    {
        string rest = Matched == null ? _pending : "";
        _pending = "";
        return rest;
    }
}
