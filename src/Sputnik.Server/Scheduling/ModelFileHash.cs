using System.Globalization;
using System.Security.Cryptography;

namespace Sputnik.Server.Scheduling;

/// <summary>
/// The SHA-256 of a whole model file: what the disk prompt cache trusts to say its rows came from this model (two
/// files with the same header and size but other weights must not share snapshots). Hashing gigabytes takes
/// seconds, so the result is remembered in the cache folder by full path, size and modification time.
/// </summary>
internal static class ModelFileHash
{
    private const string MemoName = "model-hashes.tsv";

    public static string Get(string modelPath, string memoDir)
    {
        var info = new FileInfo(modelPath);
        string key = string.Join('\t', info.Length.ToString(CultureInfo.InvariantCulture),
            info.LastWriteTimeUtc.Ticks.ToString(CultureInfo.InvariantCulture), info.FullName);
        string memo = Path.Combine(memoDir, MemoName);
        var lines = new List<string>();
        try
        {
            if (File.Exists(memo)) lines.AddRange(File.ReadAllLines(memo));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
        foreach (string line in lines)
            if (line.Length > 65 && line[64] == '\t' && line.AsSpan(65).SequenceEqual(key)) return line[..64];

        string hash;
        using (var f = new FileStream(info.FullName, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan))
            hash = Convert.ToHexStringLower(SHA256.HashData(f));
        // One line per path: a rewritten model replaces its old line.
        lines.RemoveAll(l => l.EndsWith("\t" + info.FullName, StringComparison.Ordinal));
        lines.Add(hash + "\t" + key);
        try
        {
            Directory.CreateDirectory(memoDir);
            // Replicas sharing the folder may write it at once: each writes its own file and renames it over the memo.
            string tmp = $"{memo}.{Environment.ProcessId}-{Random.Shared.Next():x8}.tmp";
            File.WriteAllLines(tmp, lines);
            File.Move(tmp, memo, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { } // only the next start pays again
        return hash;
    }
}
