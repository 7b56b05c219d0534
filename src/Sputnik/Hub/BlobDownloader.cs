using System.Buffers;
using System.Security.Cryptography;
using System.Text;

namespace Sputnik.Hub;

/// <summary>
/// Brings one file of a repository into the cache's blobs/ folder, surviving the real world:
/// <list type="bullet">
/// <item>bytes go to <c>blobs/OID.incomplete</c>, always a prefix of the file, so a dropped connection, a stall, a
/// Ctrl+C or a kill is resumed with a Range request by the next try or the next run (huggingface_hub resumes the same
/// file the same way);</item>
/// <item>5xx, 429, resets and stalls are retried with doubling waits; a try that made progress resets the count;</item>
/// <item>large files are fetched as several ranges at once, each in its own <c>.incomplete.partK-of-N</c> file that is
/// appended to the prefix at the end (so the prefix rule holds and each range resumes on its own);</item>
/// <item>the finished file's SHA-256 (or git blob id for small non-LFS files) must equal the hub's oid before it is
/// renamed into place; a mismatch deletes it;</item>
/// <item>a lock file (an exclusive OS lock, the same kind huggingface_hub's filelock takes) keeps two processes from
/// writing one blob; the second waits, then finds the blob done.</item>
/// </list>
/// </summary>
internal sealed class BlobDownloader(HubApi api, HubCache cache, HubSettings settings)
{
    private const int BufferBytes = 1 << 20;
    private static readonly TimeSpan LockPoll = TimeSpan.FromMilliseconds(200);

    private long _transferred;

    /// <summary>Bytes received from the network by this downloader (not counting what was already on disk).</summary>
    public long Transferred => Interlocked.Read(ref _transferred);

    /// <summary>Called with the number of new bytes each time some arrive (from any range).</summary>
    public delegate void Advance(long bytes);

    /// <summary>
    /// Makes sure blobs/OID holds <paramref name="file"/>, downloading what is missing; returns the blob's path.
    /// <paramref name="advance"/> first gets the bytes already there (a complete blob or a partial), then each new chunk.
    /// </summary>
    public async Task<string> FetchAsync(ModelReference reference, string commit, RepoFile file, Advance advance, Action<string>? notice, CancellationToken ct)
    {
        string blob = cache.BlobPath(reference.Repo, file.BlobId);
        if (IsComplete(blob, file)) { advance(file.Size); return blob; }
        Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
        string lockPath = cache.LockPath(reference.Repo, file.BlobId);
        Directory.CreateDirectory(Path.GetDirectoryName(lockPath)!);
        await using var held = await LockAsync(lockPath, file.Path, notice, ct).ConfigureAwait(false);
        if (IsComplete(blob, file)) { advance(file.Size); return blob; }

        string partial = blob + ".incomplete";
        long have = File.Exists(partial) ? new FileInfo(partial).Length : 0;
        if (have > file.Size) { File.Delete(partial); have = 0; }
        int ranges = file.Size >= settings.ParallelThreshold ? Math.Max(1, settings.Connections) : 1;
        if (ranges > 1 && have <= file.Size / ranges)
            await FetchRangesAsync(reference, commit, file, partial, ranges, advance, ct).ConfigureAwait(false);
        else
            await FetchRangeAsync(reference, commit, file, partial, 0, file.Size, advance, ct).ConfigureAwait(false);

        await VerifyAsync(partial, file, ct).ConfigureAwait(false);
        File.Move(partial, blob, overwrite: true);
        // Parts left by an interrupted run that used another number of connections.
        foreach (string stale in Directory.EnumerateFiles(Path.GetDirectoryName(blob)!, file.BlobId + ".incomplete.part*")) File.Delete(stale);
        return blob;
    }

    private static bool IsComplete(string blob, RepoFile file) => File.Exists(blob) && new FileInfo(blob).Length == file.Size;

    /// <summary>Takes the blob's lock file, waiting (and saying so once) while another process holds it.</summary>
    private static async Task<FileStream> LockAsync(string path, string what, Action<string>? notice, CancellationToken ct)
    {
        bool told = false;
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (!ct.IsCancellationRequested)
            {
                if (!told) notice?.Invoke($"waiting for another download of {what} to finish (lock {path})");
                told = true;
                await Task.Delay(LockPoll, ct).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Fetches [start, end) of the file as <paramref name="ranges"/> ranges at once: the first into the prefix file,
    /// the others into part files; then appends the parts in order.
    /// </summary>
    private async Task FetchRangesAsync(ModelReference reference, string commit, RepoFile file, string partial, int ranges, Advance advance, CancellationToken ct)
    {
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var tasks = new Task[ranges];
        var targets = new string[ranges];
        for (int k = 0; k < ranges; k++)
        {
            long start = file.Size * k / ranges, end = file.Size * (k + 1) / ranges;
            targets[k] = k == 0 ? partial : $"{partial}.part{k + 1}-of-{ranges}";
            string target = targets[k];
            tasks[k] = Task.Run(async () =>
            {
                try
                {
                    await FetchRangeAsync(reference, commit, file, target, start, end, advance, failed.Token).ConfigureAwait(false);
                }
                catch
                {
                    await failed.CancelAsync().ConfigureAwait(false); // one range failing for good stops the others
                    throw;
                }
            }, CancellationToken.None);
        }
        try
        {
            await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        catch
        {
            // The first real failure, not the cancellations it caused in the other ranges.
            var first = tasks.Select(t => t.Exception?.InnerException).FirstOrDefault(e => e is not null and not OperationCanceledException);
            if (first != null && !ct.IsCancellationRequested) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
            throw;
        }
        await using var prefix = new FileStream(partial, FileMode.Append, FileAccess.Write, FileShare.Read, BufferBytes);
        for (int k = 1; k < ranges; k++)
        {
            await using (var part = new FileStream(targets[k], FileMode.Open, FileAccess.Read, FileShare.Read, BufferBytes))
                await WriteGuardedAsync(() => part.CopyToAsync(prefix, BufferBytes, ct), partial).ConfigureAwait(false);
            File.Delete(targets[k]);
        }
    }

    /// <summary>
    /// Fetches bytes [start, end) of the file into <paramref name="target"/>, which holds the first bytes of that range
    /// already: resumes after its length, retrying transient failures with backoff until the range is complete.
    /// </summary>
    private async Task FetchRangeAsync(ModelReference reference, string commit, RepoFile file, string target, long start, long end, Advance advance, CancellationToken ct)
    {
        long have = File.Exists(target) ? new FileInfo(target).Length : 0;
        if (have > end - start) { File.Delete(target); have = 0; }
        advance(have);
        int failures = 0;
        while (start + have < end)
        {
            long before = have;
            try
            {
                have = await TransferAsync(reference, commit, file, target, start + have, end, advance, ct).ConfigureAwait(false) - start;
            }
            catch (Exception e) when (IsTransient(e, ct))
            {
                have = File.Exists(target) ? new FileInfo(target).Length : 0;
                failures = have > before ? 1 : failures + 1;
                if (failures >= settings.MaxAttempts)
                    throw new HubException(HubErrorKind.Server,
                        $"downloading {file.Path} from {api.Endpoint} failed {failures} times in a row ({Describe(e)}); {have + start} of {file.Size} bytes are kept — run the command again to resume");
                await Task.Delay(api.Backoff(failures), ct).ConfigureAwait(false);
            }
        }
    }

    private static bool IsTransient(Exception e, CancellationToken ct) =>
        e is TransientHubException || HubApi.IsNetworkFailure(e, ct) || (e is IOException && e is not HubWriteException && !ct.IsCancellationRequested);

    private static string Describe(Exception e) => e switch
    {
        OperationCanceledException => "the transfer stalled",
        _ => HubApi.Describe(e),
    };

    /// <summary>One request for [from, end); appends what arrives to target and returns the file offset reached.</summary>
    private async Task<long> TransferAsync(ModelReference reference, string commit, RepoFile file, string target, long from, long end, Advance advance, CancellationToken ct)
    {
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(ct);
        stall.CancelAfter(settings.StallTimeout);
        // "bytes=FROM-" to the end of the file, "bytes=FROM-LAST" for one of several parallel ranges.
        using var response = await api.GetFileAsync(reference, commit, file.Path, from, end == file.Size ? null : end - 1, stall.Token).ConfigureAwait(false);
        if (response.LinkedSize is { } linked && linked != file.Size)
            throw new HubException(HubErrorKind.Corrupt, $"{api.Endpoint} reports {file.Path} as {linked} bytes but lists it as {file.Size}");
        if (response.LinkedEtag is { Length: 64 } etag && file.Sha256 != null && !etag.Equals(file.Sha256, StringComparison.OrdinalIgnoreCase))
            throw new HubException(HubErrorKind.Corrupt, $"{api.Endpoint} serves {file.Path} as blob {etag} but lists it as {file.Sha256}");
        if (response.RepoCommit is { } c && c != commit)
            throw new HubException(HubErrorKind.Server, $"{api.Endpoint} served {file.Path} from commit {c}, not the requested {commit}");
        var message = response.Message;
        long skip = 0;
        if ((int)message.StatusCode == 416)
            throw new TransientHubException($"range {from}- of {file.Path} not satisfiable");
        if (message.StatusCode == System.Net.HttpStatusCode.PartialContent)
        {
            if (message.Content.Headers.ContentRange?.From != from)
                throw new TransientHubException($"the server answered range {from}- with {message.Content.Headers.ContentRange}");
        }
        else
        {
            skip = from; // a server that ignores Range sends the whole file: drop what we already have
        }
        await using var body = await message.Content.ReadAsStreamAsync(stall.Token).ConfigureAwait(false);
        await using var output = new FileStream(target, FileMode.Append, FileAccess.Write, FileShare.Read, 0);
        long at = from;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(BufferBytes);
        try
        {
            while (at < end)
            {
                stall.CancelAfter(settings.StallTimeout);
                int n = await body.ReadAsync(buffer.AsMemory(0, BufferBytes), stall.Token).ConfigureAwait(false);
                if (n == 0) break;
                int offset = 0;
                if (skip > 0)
                {
                    offset = (int)Math.Min(skip, n);
                    skip -= offset;
                }
                int count = (int)Math.Min(n - offset, end - at); // never more than the range, whatever the server sends
                if (count <= 0) continue;
                await WriteGuardedAsync(() => output.WriteAsync(buffer.AsMemory(offset, count), CancellationToken.None).AsTask(), target).ConfigureAwait(false);
                at += count;
                Interlocked.Add(ref _transferred, count);
                advance(count);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        if (at < end) throw new TransientHubException($"connection closed after {at} of {file.Size} bytes of {file.Path}");
        return at;
    }

    /// <summary>Runs a disk write; a full disk becomes one clear error (the partial stays for a resume), not a retry.</summary>
    private static async Task WriteGuardedAsync(Func<Task> write, string path)
    {
        try
        {
            await write().ConfigureAwait(false);
        }
        catch (IOException e) when (IsDiskFull(e))
        {
            throw new HubException(HubErrorKind.DiskFull, $"disk full while writing {path}; free some space and run the command again to resume", e);
        }
        catch (IOException e)
        {
            throw new HubWriteException(e);
        }
    }

    internal static bool IsDiskFull(IOException e) =>
        e.HResult is 28 or unchecked((int)0x80070070) || e.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase);

    /// <summary>Hashes the finished file; a mismatch with the hub's oid deletes it.</summary>
    private static async Task VerifyAsync(string path, RepoFile file, CancellationToken ct)
    {
        long size = new FileInfo(path).Length;
        string actual, expected;
        await using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, BufferBytes, FileOptions.SequentialScan))
        {
            if (file.Sha256 != null)
            {
                expected = file.Sha256;
                actual = Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, ct).ConfigureAwait(false));
            }
            else
            {
                // A file kept in git itself: its oid is the git blob id, SHA-1 over "blob SIZE\0" and the bytes.
                expected = file.GitOid;
                using var sha1 = IncrementalHash.CreateHash(HashAlgorithmName.SHA1);
                sha1.AppendData(Encoding.ASCII.GetBytes($"blob {size}\0"));
                byte[] buffer = new byte[BufferBytes];
                int n;
                while ((n = await stream.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0) sha1.AppendData(buffer, 0, n);
                actual = Convert.ToHexStringLower(sha1.GetHashAndReset());
            }
        }
        if (size == file.Size && actual.Equals(expected, StringComparison.OrdinalIgnoreCase)) return;
        File.Delete(path);
        throw new HubException(HubErrorKind.Corrupt, size != file.Size
            ? $"{file.Path}: downloaded {size} bytes but the hub lists {file.Size}; the download was deleted — run the command again"
            : $"{file.Path}: the downloaded bytes do not match the hub's checksum (SHA {actual[..16]}… ≠ {expected[..Math.Min(16, expected.Length)]}…); the download was deleted — run the command again");
    }
}

/// <summary>A local write failed for a reason other than a full disk (permissions, a vanished folder): not retried.</summary>
internal sealed class HubWriteException(IOException inner) : IOException(inner.Message, inner);
