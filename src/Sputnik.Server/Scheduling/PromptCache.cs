using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Sputnik.Models;

namespace Sputnik.Server.Scheduling;

/// <summary>
/// Prompt-cache entries beyond the slots: when a slot is about to be overwritten, its cache prefix is snapshotted
/// here (RAM, LRU, bounded by --cache-ram); a later prompt that shares a longer prefix with an entry than with any
/// slot gets it copied back. With --cache-dir every entry is also written to disk (DeepSeek's "context caching on
/// disk", LRU, bounded by --cache-disk-mb) and reloaded after a restart, but only when the file's model identity
/// and cache layout match and its checksum proves the rows are the ones written. Entries hold the cache's stored
/// bytes (<see cref="ICacheRows"/>: K/V rows of llama/qwen2, MLA latent rows of deepseek2), so a restore is bit-exact.
/// </summary>
/// <remarks>
/// The disk is an optimisation, never a dependency: a failed write or read (disk full, folder deleted, a corrupted
/// file) is logged once and the cache goes on without that entry. It runs on the scheduler thread, which must not die.
/// </remarks>
internal sealed class PromptCache
{
    /// <summary>Shorter histories are not worth a snapshot.</summary>
    public const int MinTokens = 8;
    private const string Magic = "SPKV3";
    private const int ChecksumBytes = 32;

    private readonly long _maxBytes, _maxDiskBytes;
    private readonly string? _dir;
    private readonly string _identity;
    private readonly string _layout;
    private readonly int _planes, _rowBytes;
    private readonly Action<string>? _log;
    private readonly List<Entry> _entries = [];
    private long _clock, _bytes, _diskBytes;
    private bool _diskErrorLogged;

    /// <param name="maxBytes">RAM for snapshots.</param>
    /// <param name="dir">Where snapshots persist; null keeps them in RAM only.</param>
    /// <param name="maxDiskBytes">Disk for snapshot files in <paramref name="dir"/>; least recently used files go first.</param>
    /// <param name="modelIdentity">Names the model and context the rows belong to; files of another identity are ignored.</param>
    /// <param name="shape">A slot's cache: entries are taken from and restored into caches of its layout.</param>
    /// <param name="log">Where disk faults are reported (once until the disk works again).</param>
    public PromptCache(long maxBytes, string? dir, long maxDiskBytes, string modelIdentity, ICacheRows shape, Action<string>? log = null)
    {
        _maxBytes = maxBytes;
        _maxDiskBytes = maxDiskBytes;
        _dir = dir;
        _identity = modelIdentity;
        _layout = shape.Layout;
        _planes = shape.Planes;
        _rowBytes = shape.RowBytes;
        _log = log;
        if (_dir != null) LoadIndex();
    }

    public int Count => _entries.Count;
    public long BytesInRam => _bytes;
    public long BytesOnDisk => _diskBytes;

    /// <summary>Opens a snapshot file for writing; tests swap it for a stream that fails like a full disk.</summary>
    internal Func<string, Stream> CreateFile { get; set; } = File.Create;

    private sealed class Entry(int[] tokens)
    {
        public int[] Tokens { get; } = tokens;
        /// <summary>
        /// The LoRA adapters the rows were computed under: a prompt under other adapters never reuses them. Only entries
        /// of the base model go to disk (adapter ids are this run's), so one read back from disk has none.
        /// </summary>
        public LoraSet Adapters { get; init; } = LoraSet.None;
        /// <summary>Per plane, the stored rows of every token; null while only on disk.</summary>
        public byte[][]? Planes { get; set; }
        public string? File { get; set; }
        public long FileBytes { get; set; }
        public long LastUsed { get; set; }
        public long Bytes => Planes == null ? 0 : Planes.Sum(p => (long)p.Length);
    }

    /// <summary>Snapshots what <paramref name="slot"/> holds, unless an entry already covers it.</summary>
    public void Save(Slot slot)
    {
        int n = Math.Min(slot.History.Count, slot.State.Position);
        if (n < MinTokens) return;
        var tokens = CollectionsMarshal.AsSpan(slot.History)[..n].ToArray();
        var adapters = slot.State.Adapters;
        foreach (var e in _entries)
            if (e.Adapters.Key == adapters.Key && e.Tokens.Length >= n && e.Tokens.AsSpan(0, n).SequenceEqual(tokens)) { e.LastUsed = ++_clock; return; }
        // Entries that are a prefix of this one are superseded.
        _entries.RemoveAll(e => e.Adapters.Key == adapters.Key && e.Tokens.Length < n && tokens.AsSpan(0, e.Tokens.Length).SequenceEqual(e.Tokens) && Drop(e));
        var rows = Rows(slot);
        var entry = new Entry(tokens) { Planes = new byte[_planes][], LastUsed = ++_clock, Adapters = adapters };
        for (int p = 0; p < _planes; p++) entry.Planes[p] = rows.Rows(p, 0, n).ToArray();
        if (entry.Bytes > _maxBytes && _dir == null) return;
        _entries.Add(entry);
        _bytes += entry.Bytes;
        if (_dir != null && adapters.IsEmpty) Write(entry);
        Trim();
    }

    /// <summary>The entry computed under <paramref name="adapters"/> sharing the longest prefix with the prompt, if longer than <paramref name="atLeast"/>.</summary>
    public int BestPrefix(int[] prompt, int atLeast, LoraSet adapters, out object? handle)
    {
        handle = null;
        int best = atLeast;
        foreach (var e in _entries)
        {
            if (e.Adapters.Key != adapters.Key) continue;
            int n = Math.Min(e.Tokens.Length, prompt.Length - 1); // the last prompt token is always recomputed
            int i = 0;
            while (i < n && e.Tokens[i] == prompt[i]) i++;
            if (i > best) { best = i; handle = e; }
        }
        return handle == null ? 0 : best;
    }

    /// <summary>
    /// Copies the first <paramref name="length"/> cached positions of an entry into the slot; false (the slot
    /// untouched) when the entry's file is gone or fails its checksum, in which case the entry is dropped.
    /// </summary>
    public bool Restore(object handle, Slot slot, int length)
    {
        var e = (Entry)handle;
        var planes = e.Planes ?? Load(e);
        if (planes == null)
        {
            _entries.Remove(e);
            return false;
        }
        var rows = Rows(slot);
        slot.Reset();
        slot.State.Adapters = e.Adapters;
        for (int p = 0; p < _planes; p++) planes[p].AsSpan(0, length * _rowBytes).CopyTo(rows.Rows(p, 0, length));
        slot.State.Cache.Length = length;
        slot.History.AddRange(e.Tokens.AsSpan(0, length));
        e.LastUsed = ++_clock;
        if (e.File != null) Touch(e.File);
        if (e.Planes == null)
        {
            // Kept in RAM while the bound allows (it may be dropped at once with --cache-ram 0; the file stays).
            e.Planes = planes;
            _bytes += e.Bytes;
            Trim();
        }
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
        DeleteFile(e);
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

    /// <summary>Keeps the files under --cache-disk-mb: least recently used first (their RAM copy, if any, stays).</summary>
    private void TrimDisk()
    {
        while (_diskBytes > _maxDiskBytes)
        {
            var victim = _entries.Where(e => e.File != null).MinBy(e => e.LastUsed);
            if (victim == null) break;
            DeleteFile(victim);
            if (victim.Planes == null) _entries.Remove(victim);
        }
    }

    private void DeleteFile(Entry e)
    {
        if (e.File == null) return;
        try
        {
            File.Delete(e.File);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            DiskFault($"cannot delete {e.File}", ex);
        }
        _diskBytes -= e.FileBytes;
        e.File = null;
        e.FileBytes = 0;
    }

    /// <summary>Writes the entry's file (to a temporary name, then renamed, so a crash leaves no half file); a failure leaves the entry in RAM only.</summary>
    private void Write(Entry e)
    {
        long size = HeaderBytes(e.Tokens.Length) + e.Bytes;
        if (size > _maxDiskBytes) return;
        string name = Convert.ToHexStringLower(SHA256.HashData(MemoryMarshal.AsBytes(e.Tokens.AsSpan())))[..24] + ".kv";
        string path = Path.Combine(_dir!, name), tmp = path + ".tmp";
        try
        {
            Directory.CreateDirectory(_dir!); // it may have been deleted under the running server
            using (var w = new BinaryWriter(CreateFile(tmp), Encoding.UTF8))
            {
                w.Write(Magic);
                w.Write(_identity);
                w.Write(_layout);
                w.Write(_planes);
                w.Write(_rowBytes);
                w.Write(e.Tokens.Length);
                foreach (int t in e.Tokens) w.Write(t);
                w.Write(Checksum(e.Tokens, e.Planes!));
                foreach (var plane in e.Planes!) w.Write(plane);
            }
            File.Move(tmp, path, overwrite: true);
            size = new FileInfo(path).Length;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            DiskFault($"cannot write {path}", ex);
            TryDelete(tmp);
            return;
        }
        _diskErrorLogged = false; // the disk works again: the next fault is news
        e.File = path;
        e.FileBytes = size;
        _diskBytes += size;
        TrimDisk();
    }

    private static long HeaderBytes(int tokens) => 256 + tokens * 4L + ChecksumBytes;

    /// <summary>SHA-256 of the tokens and every plane's rows: a flipped byte or a NaN written into a file is caught before it is used.</summary>
    private static byte[] Checksum(int[] tokens, byte[][] planes)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        h.AppendData(MemoryMarshal.AsBytes(tokens.AsSpan()));
        foreach (var p in planes) h.AppendData(p);
        return h.GetHashAndReset();
    }

    /// <summary>Indexes the files of this model and layout (oldest first in the LRU order) and enforces the disk bound.</summary>
    private void LoadIndex()
    {
        try
        {
            Directory.CreateDirectory(_dir!);
            foreach (var tmp in Directory.EnumerateFiles(_dir!, "*.kv.tmp")) TryDelete(tmp); // left by a crash mid-write
            var files = Directory.EnumerateFiles(_dir!, "*.kv").Select(f => new FileInfo(f)).OrderBy(f => f.LastWriteTimeUtc).ToList();
            foreach (var file in files)
            {
                if (ReadHeader(file.FullName) is not { } tokens) continue;
                _entries.Add(new Entry(tokens) { File = file.FullName, FileBytes = file.Length, LastUsed = ++_clock });
                _diskBytes += file.Length;
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            DiskFault($"cannot read {_dir}", ex);
        }
        TrimDisk();
    }

    private int[]? ReadHeader(string file)
    {
        try
        {
            using var r = new BinaryReader(File.OpenRead(file), Encoding.UTF8);
            return ReadHeader(r);
        }
        catch (Exception ex) when (ex is IOException or EndOfStreamException or FormatException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private int[]? ReadHeader(BinaryReader r)
    {
        if (r.ReadString() != Magic || r.ReadString() != _identity || r.ReadString() != _layout || r.ReadInt32() != _planes || r.ReadInt32() != _rowBytes)
            return null;
        int n = r.ReadInt32();
        if (n < 1 || n > 10_000_000 || r.BaseStream.Length < HeaderBytes(n) - 256) return null;
        var tokens = new int[n];
        for (int i = 0; i < n; i++) tokens[i] = r.ReadInt32();
        return tokens;
    }

    /// <summary>Reads an entry's rows back; null (and the file deleted) when it is gone, short or fails its checksum.</summary>
    private byte[][]? Load(Entry e)
    {
        if (e.File == null) return null;
        byte[][] planes;
        try
        {
            using var r = new BinaryReader(File.OpenRead(e.File), Encoding.UTF8);
            if (ReadHeader(r) is not { } tokens || !tokens.AsSpan().SequenceEqual(e.Tokens)) throw new InvalidDataException("its header changed");
            if (r.BaseStream.Length - r.BaseStream.Position != ChecksumBytes + (long)_planes * tokens.Length * _rowBytes)
                throw new InvalidDataException("it has the wrong length");
            var expected = r.ReadBytes(ChecksumBytes);
            planes = new byte[_planes][];
            for (int p = 0; p < _planes; p++)
            {
                planes[p] = new byte[tokens.Length * _rowBytes];
                r.BaseStream.ReadExactly(planes[p]);
            }
            if (!CryptographicOperations.FixedTimeEquals(expected, Checksum(tokens, planes))) throw new InvalidDataException("its checksum does not match");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException or FormatException)
        {
            DiskFault($"dropped {e.File}", ex);
            DeleteFile(e);
            return null;
        }
        return planes;
    }

    private void Touch(string file)
    {
        try
        {
            File.SetLastWriteTimeUtc(file, DateTime.UtcNow); // the LRU order survives a restart
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
    }

    private void DiskFault(string what, Exception ex)
    {
        if (_diskErrorLogged) return;
        _diskErrorLogged = true;
        _log?.Invoke($"prompt cache: {what}: {ex.Message}; going on without it (further disk errors are not logged until a write succeeds)");
    }

    private static void TryDelete(string file)
    {
        try { File.Delete(file); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
