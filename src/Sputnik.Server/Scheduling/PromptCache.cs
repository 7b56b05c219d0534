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
/// <para>
/// Several replicas (processes, or servers in one process) may share one --cache-dir: a file is written under a
/// temporary name and renamed, so a reader sees either no file or a whole one; its name starts with a digest of the
/// model identity and layout, so replicas of other models skip it unread; a replica rescans the folder before a
/// lookup when the folder's time changed (or could have changed unseen), so one replica's snapshot is another's hit; a file that is short, long or fails its checksum is skipped, counted in
/// <see cref="RejectedFiles"/> and deleted; a file another replica deleted is simply forgotten. The disk cap is the
/// folder's: whoever exceeds it deletes the least recently used files of any replica (the file time is the shared
/// LRU clock, set on every write and hit) while holding evict.lock, and skips the sweep when another replica holds it.
/// </para>
/// </remarks>
internal sealed class PromptCache
{
    /// <summary>Shorter histories are not worth a snapshot.</summary>
    public const int MinTokens = 8;
    private const string Magic = "SPKV4";
    private const int ChecksumBytes = 32;
    private const string LockName = "evict.lock";
    /// <summary>A temporary file older than this was left by a writer that died (a live one renames within seconds).</summary>
    private static readonly TimeSpan StaleTemp = TimeSpan.FromMinutes(15);
    /// <summary>A rescan at least this often, whatever the folder time says (a network file system's clock may differ from ours).</summary>
    private const long RescanMs = 1000;
    /// <summary>
    /// Coarser than any folder-time granularity (the kernel stamps times from its tick, ~4 ms): a scan this close to the
    /// folder's last change is "racy" (as git calls it) and the next lookup scans again.
    /// </summary>
    private static readonly TimeSpan FolderTimeResolution = TimeSpan.FromMilliseconds(100);

    private readonly long _maxBytes, _maxDiskBytes;
    private readonly string? _dir;
    private readonly string _identity;
    private readonly string _layout;
    /// <summary>Starts the names of this model's files: other models' files in a shared folder are never opened.</summary>
    private readonly string _filePrefix;
    private readonly int _planes;
    // Bytes of one position in each plane, and in all of them.
    private readonly int[] _rowBytes;
    private readonly long _positionBytes;
    private readonly Action<string>? _log;
    private readonly Action? _onRejected;
    private readonly List<Entry> _entries = [];
    /// <summary>The entries that have a file, by its full path.</summary>
    private readonly Dictionary<string, Entry> _byFile = new(StringComparer.Ordinal);
    /// <summary>Bad files that could not be deleted, by path, with the length and time they were rejected at.</summary>
    private readonly Dictionary<string, (long Length, DateTime Time)> _rejected = new(StringComparer.Ordinal);
    private long _clock, _bytes, _diskBytes, _lastScanMs = long.MinValue / 2;
    private DateTime _dirTime;
    /// <summary>The last scan came so soon after the folder's last change that a later change may carry the same folder time.</summary>
    private bool _racyScan;
    private bool _diskErrorLogged;

    /// <param name="maxBytes">RAM for snapshots.</param>
    /// <param name="dir">Where snapshots persist; null keeps them in RAM only.</param>
    /// <param name="maxDiskBytes">Disk for snapshot files in <paramref name="dir"/>; least recently used files go first.</param>
    /// <param name="modelIdentity">Names the model and context the rows belong to; files of another identity are ignored.</param>
    /// <param name="shape">A slot's cache: entries are taken from and restored into caches of its layout.</param>
    /// <param name="log">Where disk faults are reported (once until the disk works again).</param>
    /// <param name="rejected">Called for each bad file skipped (the server's /metrics counter, which outlives this cache).</param>
    public PromptCache(long maxBytes, string? dir, long maxDiskBytes, string modelIdentity, ICacheRows shape, Action<string>? log = null, Action? rejected = null)
    {
        _maxBytes = maxBytes;
        _maxDiskBytes = maxDiskBytes;
        _dir = dir;
        _identity = modelIdentity;
        _layout = shape.Layout;
        _planes = shape.Planes;
        _rowBytes = [.. Enumerable.Range(0, _planes).Select(shape.RowBytes)];
        _positionBytes = shape.PositionBytes;
        _log = log;
        _onRejected = rejected;
        _filePrefix = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{_identity}\n{_layout}\n{_planes}\n{string.Join(',', _rowBytes)}")))[..12] + "-";
        if (_dir != null) LoadIndex();
    }

    public int Count => _entries.Count;
    public long BytesInRam => _bytes;
    /// <summary>Bytes of snapshot files in the folder (every replica's and model's), as of the last scan or write.</summary>
    public long BytesOnDisk => _diskBytes;
    /// <summary>Files skipped because they were short, long, unreadable or failed their checksum (each was deleted).</summary>
    public long RejectedFiles { get; private set; }

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
        Refresh(); // another replica may have written it already
        var tokens = CollectionsMarshal.AsSpan(slot.History)[..n].ToArray();
        var adapters = slot.State.Adapters;
        foreach (var e in _entries)
            if (e.Adapters.Key == adapters.Key && e.Tokens.Length >= n && e.Tokens.AsSpan(0, n).SequenceEqual(tokens))
            {
                e.LastUsed = ++_clock;
                if (e.File != null) Touch(e.File);
                return;
            }
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
        Refresh();
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
        for (int p = 0; p < _planes; p++) rows.WriteRows(p, 0, planes[p].AsSpan(0, length * _rowBytes[p]));
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

    /// <summary>
    /// Keeps the folder under --cache-disk-mb: the files least recently written or hit go first, whichever replica wrote
    /// them (an entry's RAM copy stays). One replica sweeps at a time; another that finds evict.lock held skips its sweep.
    /// </summary>
    private void TrimDisk()
    {
        _diskBytes = SnapshotFiles().Sum(f => f.Length); // other replicas' writes count against the same cap
        if (_diskBytes <= _maxDiskBytes) return;
        FileStream sweepLock;
        try
        {
            // FileShare.None is an exclusive flock on Unix: it excludes other processes and other opens in this one.
            sweepLock = new FileStream(Path.Combine(_dir!, LockName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return; // another replica is sweeping, or the folder is gone (the next write recreates it)
        }
        using (sweepLock)
        {
            var files = SnapshotFiles(); // again: another replica may have swept just before
            long total = files.Sum(f => f.Length);
            foreach (var f in files.OrderBy(f => f.Time))
            {
                if (total <= _maxDiskBytes) break;
                if (!TryDelete(f.Path)) continue;
                total -= f.Length;
                if (_byFile.TryGetValue(f.Path, out var e))
                {
                    Unlink(e);
                    if (e.Planes == null) _entries.Remove(e);
                }
            }
            _diskBytes = total;
        }
    }

    private readonly record struct SnapshotFile(string Path, string Name, long Length, DateTime Time);

    /// <summary>The snapshot files in the folder now, of every model; a file deleted while it is listed is left out.</summary>
    private List<SnapshotFile> SnapshotFiles()
    {
        var files = new List<SnapshotFile>();
        try
        {
            foreach (var f in new DirectoryInfo(_dir!).EnumerateFiles("*.kv"))
            {
                if (!f.Name.EndsWith(".kv", StringComparison.Ordinal)) continue;
                try
                {
                    files.Add(new SnapshotFile(f.FullName, f.Name, f.Length, f.LastWriteTimeUtc));
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { } // deleted by another replica meanwhile
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            DiskFault($"cannot read {_dir}", ex);
        }
        return files;
    }

    /// <summary>
    /// Indexes the files of this model that other replicas wrote and forgets those they deleted — when the folder
    /// changed since the last scan, or that scan was racy, or a second has passed, or when forced.
    /// </summary>
    private void Refresh(bool force = false)
    {
        if (_dir == null) return;
        long now = Environment.TickCount64;
        DateTime dirTime;
        try
        {
            dirTime = Directory.GetLastWriteTimeUtc(_dir);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return;
        }
        if (!force && !_racyScan && dirTime == _dirTime && now - _lastScanMs < RescanMs) return;
        _dirTime = dirTime;
        _lastScanMs = now;
        _racyScan = DateTime.UtcNow - dirTime < FolderTimeResolution;
        var files = SnapshotFiles();
        _diskBytes = files.Sum(f => f.Length);
        var present = new HashSet<string>(StringComparer.Ordinal);
        foreach (var f in files.Where(f => f.Name.StartsWith(_filePrefix, StringComparison.Ordinal)).OrderBy(f => f.Time))
        {
            present.Add(f.Path);
            if (_byFile.ContainsKey(f.Path) || _rejected.TryGetValue(f.Path, out var bad) && bad == (f.Length, f.Time)) continue;
            if (ReadHeader(f.Path, out string? fault) is { } tokens)
            {
                var entry = new Entry(tokens) { LastUsed = ++_clock };
                Link(entry, f.Path, f.Length);
                _entries.Add(entry);
            }
            else if (fault != null) Reject(f.Path, f.Length, f.Time, fault);
        }
        foreach (var gone in _byFile.Values.Where(e => !present.Contains(e.File!)).ToList())
        {
            Unlink(gone); // another replica evicted it
            if (gone.Planes == null) _entries.Remove(gone);
        }
        foreach (string path in _rejected.Keys.Where(p => !present.Contains(p)).ToList()) _rejected.Remove(path);
    }

    private void Link(Entry e, string path, long bytes)
    {
        e.File = path;
        e.FileBytes = bytes;
        _byFile[path] = e;
    }

    private void Unlink(Entry e)
    {
        if (e.File != null) _byFile.Remove(e.File);
        e.File = null;
        e.FileBytes = 0;
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
        Unlink(e);
    }

    /// <summary>Counts and deletes a file that is not a whole snapshot of this model (one that cannot be deleted is remembered, not reread).</summary>
    private void Reject(string path, long length, DateTime time, string why)
    {
        RejectedFiles++;
        _onRejected?.Invoke();
        DiskFault($"skipped {path}: {why}");
        if (!TryDelete(path)) _rejected[path] = (length, time);
    }

    /// <summary>
    /// Writes the entry's file under a name of its own (this model's prefix and a digest of the tokens): first to a
    /// temporary file private to this writer, then renamed over the name, so a reader — in this process or another —
    /// sees no file or a whole one, and two replicas writing the same snapshot at once both leave a whole file. A
    /// failure leaves the entry in RAM only.
    /// </summary>
    private void Write(Entry e)
    {
        long size = HeaderBytes(e.Tokens.Length) + e.Bytes;
        if (size > _maxDiskBytes) return;
        string path = Path.Combine(_dir!, _filePrefix + Convert.ToHexStringLower(SHA256.HashData(MemoryMarshal.AsBytes(e.Tokens.AsSpan())))[..24] + ".kv");
        string tmp = $"{path}.{Environment.ProcessId}-{Random.Shared.Next():x8}.tmp";
        try
        {
            Directory.CreateDirectory(_dir!); // it may have been deleted under the running server
            if (!File.Exists(path)) // else another replica wrote this snapshot since the last scan
            {
                using (var w = new BinaryWriter(CreateFile(tmp), Encoding.UTF8))
                {
                    w.Write(Magic);
                    w.Write(_identity);
                    w.Write(_layout);
                    w.Write(_planes);
                    foreach (int rowBytes in _rowBytes) w.Write(rowBytes);
                    w.Write(e.Tokens.Length);
                    foreach (int t in e.Tokens) w.Write(t);
                    w.Write(Checksum(e.Tokens, e.Planes!));
                    foreach (var plane in e.Planes!) w.Write(plane);
                }
                File.Move(tmp, path, overwrite: true); // rename(2): atomic
            }
            size = new FileInfo(path).Length;
            Touch(path); // the fine clock, not the kernel's coarse one: the LRU order of files written in quick succession holds
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            DiskFault($"cannot write {path}", ex);
            TryDelete(tmp);
            return;
        }
        _diskErrorLogged = false; // the disk works again: the next fault is news
        Link(e, path, size);
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

    /// <summary>Indexes the folder's files of this model and layout (oldest first in the LRU order) and enforces the disk bound.</summary>
    private void LoadIndex()
    {
        try
        {
            Directory.CreateDirectory(_dir!);
            foreach (var tmp in new DirectoryInfo(_dir!).EnumerateFiles("*.tmp"))
                if (DateTime.UtcNow - tmp.LastWriteTimeUtc > StaleTemp) TryDelete(tmp.FullName); // left by a writer that died; a live replica's are young
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            DiskFault($"cannot read {_dir}", ex);
        }
        Refresh(force: true);
        TrimDisk();
    }

    /// <summary>The tokens of a whole snapshot file of this model; null with no fault when the file is gone (deleted by another replica).</summary>
    private int[]? ReadHeader(string file, out string? fault)
    {
        fault = null;
        try
        {
            using var r = new BinaryReader(File.OpenRead(file), Encoding.UTF8);
            return ReadHeader(r);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (Exception ex) when (ex is IOException or FormatException or UnauthorizedAccessException or InvalidDataException)
        {
            fault = ex.Message;
            return null;
        }
    }

    /// <summary>
    /// The tokens in a header of this model and layout, when the file is exactly as long as that header says (a
    /// truncated or padded file is refused before anything is allocated for it); throws InvalidDataException otherwise.
    /// </summary>
    private int[] ReadHeader(BinaryReader r)
    {
        if (ShortString(r) != Magic) throw new InvalidDataException("it is not a prompt-cache snapshot of this version");
        if (ShortString(r) != _identity || ShortString(r) != _layout || r.ReadInt32() != _planes || _rowBytes.Any(rowBytes => r.ReadInt32() != rowBytes))
            throw new InvalidDataException("its header names another model or cache layout");
        int n = r.ReadInt32();
        long rest = r.BaseStream.Length - r.BaseStream.Position;
        if (n < 1 || rest != n * 4L + ChecksumBytes + n * _positionBytes)
            throw new InvalidDataException($"its length does not match its header ({n} tokens)");
        var tokens = new int[n];
        for (int i = 0; i < n; i++) tokens[i] = r.ReadInt32();
        return tokens;
    }

    /// <summary>A string as BinaryWriter writes it, refused above 64 KiB (a damaged length must not make a huge read).</summary>
    private static string ShortString(BinaryReader r)
    {
        int length = r.Read7BitEncodedInt();
        if (length is < 0 or > 1 << 16) throw new InvalidDataException($"a header string claims {length} bytes");
        var bytes = r.ReadBytes(length);
        if (bytes.Length != length) throw new InvalidDataException("its header is cut short");
        return Encoding.UTF8.GetString(bytes);
    }

    /// <summary>
    /// Reads an entry's rows back; null when its file is gone (another replica evicted it: forgotten quietly) or is
    /// not whole or fails its checksum (counted, logged and deleted).
    /// </summary>
    private byte[][]? Load(Entry e)
    {
        if (e.File == null) return null;
        string file = e.File;
        try
        {
            using var r = new BinaryReader(File.OpenRead(file), Encoding.UTF8);
            if (!ReadHeader(r).AsSpan().SequenceEqual(e.Tokens)) throw new InvalidDataException("its tokens changed");
            var expected = r.ReadBytes(ChecksumBytes);
            var planes = new byte[_planes][];
            for (int p = 0; p < _planes; p++)
            {
                planes[p] = new byte[e.Tokens.Length * _rowBytes[p]];
                r.BaseStream.ReadExactly(planes[p]);
            }
            if (!CryptographicOperations.FixedTimeEquals(expected, Checksum(e.Tokens, planes))) throw new InvalidDataException("its checksum does not match");
            return planes;
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            _diskBytes -= e.FileBytes;
            Unlink(e);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException or FormatException)
        {
            _diskBytes -= e.FileBytes;
            Unlink(e);
            var info = new FileInfo(file);
            if (info.Exists) Reject(file, info.Length, info.LastWriteTimeUtc, ex.Message);
        }
        return null;
    }

    private static void Touch(string file)
    {
        try
        {
            File.SetLastWriteTimeUtc(file, DateTime.UtcNow); // the LRU order across replicas and restarts
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
    }

    private void DiskFault(string what, Exception ex) => DiskFault($"{what}: {ex.Message}");

    private void DiskFault(string what)
    {
        if (_diskErrorLogged) return;
        _diskErrorLogged = true;
        _log?.Invoke($"prompt cache: {what}; going on without it (further disk errors are not logged until a write succeeds)");
    }

    /// <summary>Deletes a file; true when it is gone (already gone counts: another replica may have deleted it first).</summary>
    private static bool TryDelete(string file)
    {
        try
        {
            File.Delete(file);
            return true;
        }
        catch (DirectoryNotFoundException)
        {
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
