using System.IO.Hashing;
using System.IO.MemoryMappedFiles;
using System.Text;
using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// The re-laid weights of a model file (16-row interleaved groups, scaled F16 rows), written once to a cache file and
/// memory-mapped by later loads.
/// </summary>
/// <remarks>
/// Re-laying at load writes every weight into fresh anonymous memory, and on this project's virtual machines the
/// first touch of such memory (the kernel zeroing it, the hypervisor backing it) costs ≈ 3 s per GB of CPU time,
/// far more than the re-lay itself. A mapped cache file whose pages are in the page cache costs only the mapping:
/// the first load re-lays as before and then writes the re-laid tensors to
/// <c>$XDG_CACHE_HOME/sputnik/relaid/&lt;path hash&gt;-&lt;name&gt;.relaid</c> (fsync'd temporary file, then renamed),
/// and later loads map it. The data region starts 2 MiB into the file and is advised MADV_HUGEPAGE, so on a
/// kernel with large page-cache folios (Linux ≥ 6.x on ext4/xfs) decode streams it through 2 MiB pages, as it does the
/// anonymous copy. A cache file is used only when it names the same source (path, size and modification time of
/// every shard, and a SHA-256 of the GGUF header and the last MiB of each shard), its header checksum holds, its
/// length is what the header says, and each tensor's entry has the type, shape and byte count asked for; anything
/// else (missing, stale, torn, foreign) is ignored and the tensors are re-laid and the file rewritten.
/// SPUTNIK_RELAID_CACHE=0 turns it off; SPUTNIK_RELAID_CACHE=DIR puts the files in DIR.
/// </remarks>
internal sealed unsafe class RelaidCache : IDisposable
{
    private const ulong Magic = 0x3159414C_524B5053; // "SPKRLAY1"
    // Bump when an interleaved layout or the digest changes (2: Q8_0 quants stored plus 128; 3: XxHash128 digests;
    // 4: Q5_0 re-laid too). F16 rows scaled by 2^10 (ScaledHalves) came later without a bump: no earlier version
    // wrote or asks for F16 entries, so files of either kind read right in both.
    private const int FormatVersion = 4;
    // The digests guard against a stale or torn file, not an attacker (the cache directory is the user's own), so a
    // fast managed non-cryptographic hash does: .NET's SHA-256 maps OpenSSL, ≈ 5 MB resident in every model load.
    private const int DigestBytes = 16;
    private const long DataAlignment = 2L << 20;      // the data region starts on a huge-page boundary
    private const int TensorAlignment = 64;
    private const long MaxHeaderBytes = 64L << 20;
    private const int WriteChunk = 16 << 20;          // large aligned writes: the page cache keeps large folios

    /// <summary>Re-laid bytes below which no cache file is written (small models load fast anyway; tests stay out of the user's cache).</summary>
    internal const long DefaultMinBytes = 256L << 20;

    /// <summary>Where cache files live by default; null when SPUTNIK_RELAID_CACHE turns the cache off.</summary>
    internal static string? DefaultDirectory { get; } = DirectoryFromEnvironment();

    private readonly record struct Entry(GgmlType Type, int Rows, int Cols, long Offset, long Length);
    private readonly record struct Made(string Key, GgmlType Type, int Rows, int Cols, byte[] Owner, nint Data, long Length);

    private readonly string? _path;
    private readonly byte[] _identity = [];
    private readonly Dictionary<string, Entry>? _entries; // non-null when a valid cache file is mapped
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private byte* _base;
    private readonly List<Made> _made = [];
    private readonly Lock _lock = new();
    private readonly long _minBytes;
    private long _madeBytes;

    /// <summary>Why the last cache file looked at was not used (tests and diagnostics); null when it was, or none existed.</summary>
    public string? Rejected { get; }

    /// <summary>The cache of <paramref name="file"/>, opened (and its file validated and mapped) on first use.</summary>
    public static RelaidCache Of(GgufFile file) => file.Relaid ??= new RelaidCache(file, DefaultDirectory, DefaultMinBytes);

    /// <summary>Gives <paramref name="file"/> a cache in <paramref name="directory"/> (null: none) before its model loads.</summary>
    internal static RelaidCache Attach(GgufFile file, string? directory, long minBytes)
    {
        file.Relaid?.Dispose();
        return file.Relaid = new RelaidCache(file, directory, minBytes);
    }

    /// <summary>The cache file's path; null when the cache is off.</summary>
    public string? Path => _path;

    /// <summary>True when a valid cache file is mapped: re-laid weights then come from the page cache, not fresh memory.</summary>
    public bool IsMapped => _entries != null;

    /// <summary>Tensors handed out from the mapped cache file.</summary>
    public int Hits { get; private set; }

    private RelaidCache(GgufFile file, string? directory, long minBytes)
    {
        _minBytes = minBytes;
        if (directory == null) return;
        string path;
        try
        {
            string full = System.IO.Path.GetFullPath(file.Path);
            string tag = Convert.ToHexStringLower(XxHash128.Hash(Encoding.UTF8.GetBytes(full)))[..16];
            path = System.IO.Path.Combine(directory, $"{tag}-{System.IO.Path.GetFileNameWithoutExtension(full)}.relaid");
            _identity = Identity(file, full);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            Rejected = e.Message; // the source cannot be identified: no cache at all
            return;
        }
        _path = path;
        try
        {
            if (!File.Exists(path)) return;
            var entries = ReadHeader(path, _identity, out long length, out string? why);
            if (entries == null)
            {
                Rejected = why;
                return;
            }
            _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            _base = p + _view.PointerOffset;
            // Before the first touch: the page cache then brings the data in (and maps it) as 2 MiB folios.
            HugePages.Advise(_base + DataAlignment, length - DataAlignment);
            _entries = entries;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            Rejected = e.Message;
            Dispose();
            _base = null;
        }
    }

    /// <summary>The mapped re-laid rows of the tensor at <paramref name="key"/>, when the cache file holds them as asked.</summary>
    public bool TryGet(string key, GgmlType type, int rows, int cols, long bytes, out byte* data)
    {
        data = null;
        if (_entries == null || _base == null || !_entries.TryGetValue(key, out var e)) return false;
        if (e.Type != type || e.Rows != rows || e.Cols != cols || e.Length != bytes) return false;
        data = _base + e.Offset;
        Hits++;
        return true;
    }

    /// <summary>Remembers a tensor re-laid at this load, for <see cref="Save"/>; <paramref name="owner"/> (pinned) holds <paramref name="data"/>.</summary>
    public void Add(string key, GgmlType type, int rows, int cols, byte[] owner, byte* data, long bytes)
    {
        if (_path == null || _entries != null) return; // off, or a valid file is mapped (a partial one is not rewritten)
        lock (_lock)
        {
            _made.Add(new Made(key, type, rows, cols, owner, (nint)data, bytes));
            _madeBytes += bytes;
        }
    }

    /// <summary>
    /// Writes the tensors re-laid at this load to the cache file when there are enough of them; best effort (a
    /// read-only or full disk leaves no file and the next load re-lays again). Call once the model is built.
    /// </summary>
    public void Save()
    {
        List<Made> made;
        lock (_lock)
        {
            made = [.. _made];
            _made.Clear(); // the model keeps its buffers; the cache no longer needs to
        }
        if (_path == null || made.Count == 0 || _madeBytes < _minBytes) return;
        string tmp = $"{_path}.{Environment.ProcessId}-{Random.Shared.Next():x8}.tmp";
        try
        {
            System.IO.Directory.CreateDirectory(System.IO.Path.GetDirectoryName(_path)!);
            byte[] header = BuildHeader(made, out long[] offsets, out long total);
            if (!LeavesRoom(System.IO.Path.GetDirectoryName(_path)!, total)) return;
            using (var f = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.None))
            {
                f.Write(header);
                // The data goes out in whole, aligned chunks, assembled from the tensors (and the padding between
                // them): the page cache then holds it in 2 MiB folios, which a mapping can map as huge pages. Writes
                // that start and end at tensor boundaries leave small folios at every edge.
                var chunk = GC.AllocateUninitializedArray<byte>(WriteChunk);
                for (long at = offsets.Length > 0 ? offsets[0] : total; at < total; at += WriteChunk)
                {
                    int n = (int)Math.Min(WriteChunk, total - at);
                    chunk.AsSpan(0, n).Clear();
                    for (int i = 0; i < made.Count; i++)
                    {
                        long lo = Math.Max(at, offsets[i]), hi = Math.Min(at + n, offsets[i] + made[i].Length);
                        if (lo < hi)
                            new ReadOnlySpan<byte>((byte*)made[i].Data + (lo - offsets[i]), (int)(hi - lo)).CopyTo(chunk.AsSpan((int)(lo - at)));
                    }
                    f.Position = at;
                    f.Write(chunk, 0, n);
                }
                f.Flush(flushToDisk: true); // a crash after the rename must not leave a file whose data never reached the disk
            }
            File.Move(tmp, _path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(tmp); } catch (Exception d) when (d is IOException or UnauthorizedAccessException) { }
        }
        finally
        {
            GC.KeepAlive(made);
        }
    }

    /// <summary>
    /// Whether a cache file of <paramref name="bytes"/> takes at most half of the disk's free space and leaves at least
    /// 2 GiB: the cache is a speed-up, and must never be what fills the disk a user's own files live on.
    /// </summary>
    internal static bool LeavesRoom(string directory, long bytes)
    {
        long free = new DriveInfo(System.IO.Path.GetFullPath(directory)).AvailableFreeSpace;
        return free - bytes >= Math.Max(2L << 30, bytes);
    }

    private byte[] BuildHeader(List<Made> made, out long[] offsets, out long total)
    {
        using var ms = new MemoryStream();
        using var w = new BinaryWriter(ms, Encoding.UTF8);
        w.Write(Magic);
        w.Write(FormatVersion);
        w.Write(made.Count);
        w.Write(0L); // header length, patched below
        w.Write(_identity.Length);
        w.Write(_identity);
        int entriesAt = (int)ms.Position;
        offsets = new long[made.Count];
        long dataStart = DataAlignment, pos;
        while (true) // once, unless the header outgrows the first 2 MiB: then again with the data one boundary later
        {
            ms.SetLength(entriesAt);
            ms.Position = entriesAt;
            pos = dataStart;
            for (int i = 0; i < made.Count; i++)
            {
                offsets[i] = pos;
                w.Write(made[i].Key);
                w.Write((int)made[i].Type);
                w.Write(made[i].Rows);
                w.Write(made[i].Cols);
                w.Write(pos);
                w.Write(made[i].Length);
                pos = GgufFile.AlignUp(pos + made[i].Length, TensorAlignment);
            }
            w.Write(pos);
            long headerLength = ms.Position + DigestBytes;
            if (headerLength <= dataStart) break;
            dataStart = GgufFile.AlignUp(headerLength, (int)DataAlignment);
        }
        total = pos;
        long length = ms.Position + DigestBytes;
        ms.Position = 16;
        w.Write(length);
        ms.Position = ms.Length;
        w.Write(XxHash128.Hash(ms.ToArray()));
        return ms.ToArray();
    }

    /// <summary>The entries of a valid cache file for this source, or null with the reason.</summary>
    private static Dictionary<string, Entry>? ReadHeader(string path, byte[] identity, out long length, out string? why)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
        length = f.Length;
        Span<byte> prefix = stackalloc byte[24];
        if (length < DataAlignment || f.ReadAtLeast(prefix, prefix.Length, throwOnEndOfStream: false) < prefix.Length)
            return Fail($"{length} bytes, shorter than a header and the data region's start", out why);
        if (BitConverter.ToUInt64(prefix) != Magic) return Fail("not a re-laid weights cache file (magic)", out why);
        if (BitConverter.ToInt32(prefix[8..]) != FormatVersion) return Fail($"format version {BitConverter.ToInt32(prefix[8..])}, expected {FormatVersion}", out why);
        int count = BitConverter.ToInt32(prefix[12..]);
        long headerLength = BitConverter.ToInt64(prefix[16..]);
        if (headerLength < prefix.Length + DigestBytes || headerLength > Math.Min(MaxHeaderBytes, length))
            return Fail($"header length {headerLength} out of range", out why);
        var header = new byte[headerLength];
        f.Position = 0;
        if (f.ReadAtLeast(header, header.Length, throwOnEndOfStream: false) < header.Length) return Fail("header cut short", out why);
        int body = header.Length - DigestBytes;
        if (!XxHash128.Hash(header.AsSpan(0, body)).AsSpan().SequenceEqual(header.AsSpan(body)))
            return Fail("header checksum mismatch", out why);
        if (count < 0 || count > body / 40) return Fail($"{count} entries cannot fit a {body}-byte header", out why);
        using var r = new BinaryReader(new MemoryStream(header, 0, body), Encoding.UTF8);
        r.BaseStream.Position = prefix.Length;
        int idLength = r.ReadInt32();
        if (idLength != identity.Length || !r.ReadBytes(idLength).AsSpan().SequenceEqual(identity))
            return Fail("made from another model file (or this one before it changed)", out why);
        var entries = new Dictionary<string, Entry>(count);
        for (int i = 0; i < count; i++)
        {
            string key = r.ReadString();
            var e = new Entry((GgmlType)r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), r.ReadInt64(), r.ReadInt64());
            if (e.Offset < DataAlignment || e.Offset < headerLength || e.Offset % TensorAlignment != 0 || e.Length <= 0 || e.Offset > length - e.Length)
                return Fail($"entry {i} lies outside the file", out why);
            entries[key] = e;
        }
        long total = r.ReadInt64();
        if (total != length) return Fail($"file is {length} bytes, its header says {total} (torn or truncated)", out why);
        why = null;
        return entries;
    }

    private static Dictionary<string, Entry>? Fail(string reason, out string why)
    {
        why = reason;
        return null;
    }

    /// <summary>What the cache file must have been made from: full path, every shard's size and modification time, and a digest of their headers and tails.</summary>
    private static byte[] Identity(GgufFile file, string fullPath)
    {
        var hash = new XxHash128();
        hash.Append(Encoding.UTF8.GetBytes(fullPath));
        var buffer = new byte[1 << 20];
        foreach (string shard in file.ShardPaths)
        {
            var fi = new FileInfo(shard);
            if (fi.LinkTarget != null && fi.ResolveLinkTarget(returnFinalTarget: true) is FileInfo target) fi = target;
            hash.Append(BitConverter.GetBytes(fi.Length));
            hash.Append(BitConverter.GetBytes(fi.LastWriteTimeUtc.Ticks));
            using var h = File.OpenHandle(fi.FullName, FileMode.Open, FileAccess.Read, FileShare.Read);
            // The GGUF header (metadata and tensor infos; bounded), then the last MiB.
            long headEnd = shard == file.Path ? Math.Min(file.DataOffset, 32L << 20) : Math.Min(fi.Length, buffer.Length);
            for (long at = 0; at < headEnd;)
            {
                int n = RandomAccess.Read(h, buffer.AsSpan(0, (int)Math.Min(buffer.Length, headEnd - at)), at);
                if (n <= 0) break;
                hash.Append(buffer.AsSpan(0, n));
                at += n;
            }
            int tail = RandomAccess.Read(h, buffer, Math.Max(0, fi.Length - buffer.Length));
            hash.Append(buffer.AsSpan(0, Math.Max(0, tail)));
        }
        return hash.GetHashAndReset();
    }

    private static string? DirectoryFromEnvironment()
    {
        string? env = Environment.GetEnvironmentVariable("SPUTNIK_RELAID_CACHE");
        if (env is "0" or "off") return null;
        if (!string.IsNullOrEmpty(env)) return env;
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        string? home = Environment.GetEnvironmentVariable("HOME");
        string root = !string.IsNullOrEmpty(xdg) ? xdg
            : System.IO.Path.Combine(!string.IsNullOrEmpty(home) ? home : Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return System.IO.Path.Combine(root, "sputnik", "relaid");
    }

    public void Dispose()
    {
        if (_view != null)
        {
            if (_base != null) _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
        _base = null;
    }
}
