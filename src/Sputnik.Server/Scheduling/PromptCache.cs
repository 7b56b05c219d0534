using System.Runtime.InteropServices;
using System.Text;
using Sputnik.Models;

namespace Sputnik.Server.Scheduling;

/// <summary>
/// Prompt-cache entries beyond the slots: when a slot is about to be overwritten, its cache prefix is snapshotted
/// here (RAM, LRU, bounded by --cache-ram); a later prompt that shares a longer prefix with an entry than with any
/// slot gets it copied back. With --cache-dir every entry is also written to disk (DeepSeek's "context caching on
/// disk") and reloaded after a restart, but only when the file's model identity and cache layout match. Entries
/// hold the cache's stored bytes (<see cref="ICacheRows"/>: K/V rows of llama/qwen2, MLA latent rows of deepseek2),
/// so a restore is bit-exact.
/// </summary>
internal sealed class PromptCache
{
    /// <summary>Shorter histories are not worth a snapshot.</summary>
    public const int MinTokens = 8;
    private const string Magic = "SPKV2";

    private readonly long _maxBytes;
    private readonly string? _dir;
    private readonly string _identity;
    private readonly string _layout;
    private readonly int _planes, _rowBytes;
    private readonly List<Entry> _entries = [];
    private long _clock, _bytes;

    /// <param name="shape">A slot's cache: entries are taken from and restored into caches of its layout.</param>
    public PromptCache(long maxBytes, string? dir, string modelIdentity, ICacheRows shape)
    {
        _maxBytes = maxBytes;
        _dir = dir;
        _identity = modelIdentity;
        _layout = shape.Layout;
        _planes = shape.Planes;
        _rowBytes = shape.RowBytes;
        if (_dir != null)
        {
            Directory.CreateDirectory(_dir);
            foreach (var file in Directory.EnumerateFiles(_dir, "*.kv"))
                if (ReadHeader(file) is { } tokens) _entries.Add(new Entry(tokens) { File = file });
        }
    }

    public int Count => _entries.Count;
    public long BytesInRam => _bytes;

    private sealed class Entry(int[] tokens)
    {
        public int[] Tokens { get; } = tokens;
        /// <summary>Per plane, the stored rows of every token; null while only on disk.</summary>
        public byte[][]? Planes { get; set; }
        public string? File { get; set; }
        public long LastUsed { get; set; }
        public long Bytes => Planes == null ? 0 : Planes.Sum(p => (long)p.Length);
    }

    /// <summary>Snapshots what <paramref name="slot"/> holds, unless an entry already covers it.</summary>
    public void Save(Slot slot)
    {
        int n = Math.Min(slot.History.Count, slot.State.Position);
        if (n < MinTokens) return;
        var tokens = CollectionsMarshal.AsSpan(slot.History)[..n].ToArray();
        foreach (var e in _entries)
            if (e.Tokens.Length >= n && e.Tokens.AsSpan(0, n).SequenceEqual(tokens)) { e.LastUsed = ++_clock; return; }
        // Entries that are a prefix of this one are superseded.
        _entries.RemoveAll(e => e.Tokens.Length < n && tokens.AsSpan(0, e.Tokens.Length).SequenceEqual(e.Tokens) && Drop(e));
        var rows = Rows(slot);
        var entry = new Entry(tokens) { Planes = new byte[_planes][], LastUsed = ++_clock };
        for (int p = 0; p < _planes; p++) entry.Planes[p] = rows.Rows(p, 0, n).ToArray();
        if (entry.Bytes > _maxBytes && _dir == null) return;
        _entries.Add(entry);
        _bytes += entry.Bytes;
        if (_dir != null) Write(entry);
        Trim();
    }

    /// <summary>The entry sharing the longest prefix with the prompt, if longer than <paramref name="atLeast"/>.</summary>
    public int BestPrefix(int[] prompt, int atLeast, out object? handle)
    {
        handle = null;
        int best = atLeast;
        foreach (var e in _entries)
        {
            int n = Math.Min(e.Tokens.Length, prompt.Length - 1); // the last prompt token is always recomputed
            int i = 0;
            while (i < n && e.Tokens[i] == prompt[i]) i++;
            if (i > best) { best = i; handle = e; }
        }
        return handle == null ? 0 : best;
    }

    /// <summary>Copies the first <paramref name="length"/> cached positions of an entry into the slot.</summary>
    public bool Restore(object handle, Slot slot, int length)
    {
        var e = (Entry)handle;
        if (e.Planes == null && !Load(e)) return false;
        var rows = Rows(slot);
        slot.Reset();
        for (int p = 0; p < _planes; p++) e.Planes![p].AsSpan(0, length * _rowBytes).CopyTo(rows.Rows(p, 0, length));
        slot.State.Cache.Length = length;
        slot.History.AddRange(e.Tokens.AsSpan(0, length));
        e.LastUsed = ++_clock;
        return true;
    }

    private ICacheRows Rows(Slot slot)
    {
        var rows = slot.State.Rows;
        if (rows == null || rows.Layout != _layout) throw new InvalidOperationException($"slot {slot.Id}'s cache does not have the layout '{_layout}'");
        return rows;
    }

    private bool Drop(Entry e)
    {
        _bytes -= e.Bytes;
        if (e.File != null) TryDelete(e.File);
        return true;
    }

    /// <summary>Keeps RAM under the bound: least recently used data goes first (its file stays when on disk).</summary>
    private void Trim()
    {
        while (_bytes > _maxBytes)
        {
            var victim = _entries.Where(e => e.Planes != null).MinBy(e => e.LastUsed);
            if (victim == null) break;
            _bytes -= victim.Bytes;
            victim.Planes = null;
            if (victim.File == null) _entries.Remove(victim);
        }
    }

    private void Write(Entry e)
    {
        string name = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(MemoryMarshal.AsBytes(e.Tokens.AsSpan())))[..24] + ".kv";
        string path = Path.Combine(_dir!, name), tmp = path + ".tmp";
        using (var w = new BinaryWriter(File.Create(tmp), Encoding.UTF8))
        {
            w.Write(Magic);
            w.Write(_identity);
            w.Write(_layout);
            w.Write(_planes);
            w.Write(_rowBytes);
            w.Write(e.Tokens.Length);
            foreach (int t in e.Tokens) w.Write(t);
            foreach (var plane in e.Planes!) w.Write(plane);
        }
        File.Move(tmp, path, overwrite: true);
        e.File = path;
    }

    private int[]? ReadHeader(string file)
    {
        try
        {
            using var r = new BinaryReader(File.OpenRead(file), Encoding.UTF8);
            return ReadHeader(r);
        }
        catch (Exception ex) when (ex is IOException or EndOfStreamException or FormatException)
        {
            return null;
        }
    }

    private int[]? ReadHeader(BinaryReader r)
    {
        if (r.ReadString() != Magic || r.ReadString() != _identity || r.ReadString() != _layout || r.ReadInt32() != _planes || r.ReadInt32() != _rowBytes)
            return null;
        int n = r.ReadInt32();
        if (n < 1 || n > 10_000_000) return null;
        var tokens = new int[n];
        for (int i = 0; i < n; i++) tokens[i] = r.ReadInt32();
        return tokens;
    }

    private bool Load(Entry e)
    {
        if (e.File == null) return false;
        try
        {
            using var r = new BinaryReader(File.OpenRead(e.File), Encoding.UTF8);
            if (ReadHeader(r) is not { } tokens || tokens.Length != e.Tokens.Length) return false;
            var planes = new byte[_planes][];
            for (int p = 0; p < _planes; p++)
            {
                planes[p] = new byte[tokens.Length * _rowBytes];
                r.BaseStream.ReadExactly(planes[p]);
            }
            e.Planes = planes;
            _bytes += e.Bytes;
            e.LastUsed = ++_clock;
            Trim();
            return e.Planes != null;
        }
        catch (Exception ex) when (ex is IOException or EndOfStreamException)
        {
            e.Planes = null;
            return false;
        }
    }

    private static void TryDelete(string file)
    {
        try { File.Delete(file); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
