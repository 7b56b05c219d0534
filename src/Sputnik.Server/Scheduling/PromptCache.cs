using System.Runtime.InteropServices;
using System.Text;
using Sputnik.Models;

namespace Sputnik.Server.Scheduling;

/// <summary>
/// Prompt-cache entries beyond the slots: when a slot is about to be overwritten, its KV prefix is snapshotted
/// here (RAM, LRU, bounded by --cache-ram); a later prompt that shares a longer prefix with an entry than with any
/// slot gets it copied back. With --cache-dir every entry is also written to disk (DeepSeek's "context caching on
/// disk") and reloaded after a restart, but only when the file's model identity matches the loaded model.
/// </summary>
public sealed class PromptCache
{
    /// <summary>Shorter histories are not worth a snapshot.</summary>
    public const int MinTokens = 8;
    private const string Magic = "SPKV1";

    private readonly long _maxBytes;
    private readonly string? _dir;
    private readonly string _identity;
    private readonly int _layers, _kvDim;
    private readonly List<Entry> _entries = [];
    private long _clock, _bytes;

    public PromptCache(long maxBytes, string? dir, string modelIdentity, int layers, int kvDim)
    {
        _maxBytes = maxBytes;
        _dir = dir;
        _identity = modelIdentity;
        _layers = layers;
        _kvDim = kvDim;
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
        public float[][]? Keys { get; set; }
        public float[][]? Values { get; set; }
        public string? File { get; set; }
        public long LastUsed { get; set; }
        public long Bytes => Keys == null ? 0 : 2L * Keys.Length * Keys[0].Length * sizeof(float);
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
        var cache = slot.State.Cache;
        var entry = new Entry(tokens) { Keys = new float[_layers][], Values = new float[_layers][], LastUsed = ++_clock };
        for (int l = 0; l < _layers; l++)
        {
            entry.Keys[l] = new float[n * _kvDim];
            entry.Values[l] = new float[n * _kvDim];
            cache.ReadKeys(l, 0, n, 0, _kvDim, entry.Keys[l]);
            cache.ReadValues(l, 0, n, 0, _kvDim, entry.Values[l]);
        }
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
        if (e.Keys == null && !Load(e)) return false;
        var cache = slot.State.Cache;
        slot.Reset();
        for (int l = 0; l < _layers; l++)
            for (int p = 0; p < length; p++)
            {
                cache.Write(l, p, e.Keys![l].AsSpan(p * _kvDim, _kvDim), e.Values![l].AsSpan(p * _kvDim, _kvDim));
            }
        cache.Length = length;
        slot.History.AddRange(e.Tokens.AsSpan(0, length));
        e.LastUsed = ++_clock;
        return true;
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
            var victim = _entries.Where(e => e.Keys != null).MinBy(e => e.LastUsed);
            if (victim == null) break;
            _bytes -= victim.Bytes;
            victim.Keys = victim.Values = null;
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
            w.Write(_layers);
            w.Write(_kvDim);
            w.Write(e.Tokens.Length);
            foreach (int t in e.Tokens) w.Write(t);
            for (int l = 0; l < _layers; l++)
            {
                w.Write(MemoryMarshal.AsBytes(e.Keys![l].AsSpan()));
                w.Write(MemoryMarshal.AsBytes(e.Values![l].AsSpan()));
            }
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
        if (r.ReadString() != Magic || r.ReadString() != _identity || r.ReadInt32() != _layers || r.ReadInt32() != _kvDim) return null;
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
            e.Keys = new float[_layers][];
            e.Values = new float[_layers][];
            for (int l = 0; l < _layers; l++)
            {
                e.Keys[l] = new float[tokens.Length * _kvDim];
                e.Values[l] = new float[tokens.Length * _kvDim];
                r.BaseStream.ReadExactly(MemoryMarshal.AsBytes(e.Keys[l].AsSpan()));
                r.BaseStream.ReadExactly(MemoryMarshal.AsBytes(e.Values[l].AsSpan()));
            }
            _bytes += e.Bytes;
            e.LastUsed = ++_clock;
            Trim();
            return e.Keys != null;
        }
        catch (Exception ex) when (ex is IOException or EndOfStreamException)
        {
            e.Keys = e.Values = null;
            return false;
        }
    }

    private static void TryDelete(string file)
    {
        try { File.Delete(file); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
