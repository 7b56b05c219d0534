using System.Diagnostics;
using System.Globalization;

namespace Sputnik.Tools;

/// <summary>
/// Where the resident set goes at load, step by step: with SPUTNIK_MEMTRACE=1 each <see cref="Mark"/> writes one
/// line to stderr with the process's resident set (VmRSS, its peak VmHWM, anonymous and file-backed parts), the
/// resident bytes of the model's mappings (*.gguf, *.relaid cache) and of the runtime's files (*.so, *.dll), and the GC's
/// view (heap size, committed, fragmentation, bytes allocated so far). SPUTNIK_MEMTRACE=gc first runs a full
/// blocking collection, so the heap figure is what is live (and the peak is no longer the undisturbed one). Linux
/// only; elsewhere, or when unset, marks cost one static bool test.
/// </summary>
internal static class MemoryTrace
{
    private static readonly string? Mode = OperatingSystem.IsLinux() ? Environment.GetEnvironmentVariable("SPUTNIK_MEMTRACE") : null;

    /// <summary>Whether marks are written.</summary>
    public static bool Enabled { get; } = Mode is "1" or "gc";

    /// <summary>Writes one line for <paramref name="stage"/> when tracing is on.</summary>
    public static void Mark(string stage)
    {
        if (Enabled) Write(stage);
    }

    // Apart from Mark, so that compiling Mark loads none of what Write uses (System.Diagnostics.Process).
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void Write(string stage)
    {
        if (Mode == "gc") GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        var status = Status();
        var (gguf, relaid, runtime) = MappedFiles();
        var gc = GC.GetGCMemoryInfo();
        double since = (DateTime.Now - Process.GetCurrentProcess().StartTime).TotalMilliseconds;
        static string Mb(long bytes) => (bytes / 1e6).ToString("F1", CultureInfo.InvariantCulture);
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"memtrace {stage,-22} t={since,7:F0} ms  rss {Mb(status.GetValueOrDefault("VmRSS"))} hwm {Mb(status.GetValueOrDefault("VmHWM"))} " +
            $"anon {Mb(status.GetValueOrDefault("RssAnon"))} file {Mb(status.GetValueOrDefault("RssFile"))} | gguf {Mb(gguf)} relaid {Mb(relaid)} " +
            $"runtime files {Mb(runtime)} | gc heap {Mb(gc.HeapSizeBytes)} committed {Mb(gc.TotalCommittedBytes)} " +
            $"frag {Mb(gc.FragmentedBytes)} loh {Mb(gc.GenerationInfo[3].SizeAfterBytes)} allocated {Mb(GC.GetTotalAllocatedBytes())} gcs {GC.CollectionCount(0)}/{GC.CollectionCount(1)}/{GC.CollectionCount(2)}"));
    }

    // VmRSS, VmHWM, RssAnon, RssFile in bytes.
    private static Dictionary<string, long> Status()
    {
        var values = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            int colon = line.IndexOf(':');
            if (colon < 0 || !line.EndsWith(" kB", StringComparison.Ordinal)) continue;
            if (long.TryParse(line.AsSpan(colon + 1, line.Length - colon - 4).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long kb))
                values[line[..colon]] = kb * 1024;
        }
        return values;
    }

    // Resident bytes of model mappings (*.gguf, *.relaid) and of runtime files (*.so*, *.dll), from /proc/self/smaps.
    private static (long Gguf, long Relaid, long Runtime) MappedFiles()
    {
        var bytes = new long[4];
        int kind = 0; // of the mapping whose lines follow: 1 gguf, 2 relaid, 3 runtime
        foreach (string line in File.ReadLines("/proc/self/smaps"))
        {
            // A mapping's header is "start-end perms offset dev inode [path]"; its field lines are "Name: value".
            int space = line.IndexOf(' ');
            if (space > 0 && line[space - 1] != ':')
            {
                var fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
                string path = fields.Length == 6 ? fields[5].Trim() : "";
                kind = path.EndsWith(".gguf", StringComparison.Ordinal) ? 1 : path.EndsWith(".relaid", StringComparison.Ordinal) ? 2
                    : path.EndsWith(".dll", StringComparison.Ordinal) || path.Contains(".so", StringComparison.Ordinal) ? 3 : 0;
                continue;
            }
            if (kind == 0 || !line.StartsWith("Rss:", StringComparison.Ordinal)) continue;
            long kb = long.Parse(line.AsSpan(4, line.Length - 7).Trim(), NumberStyles.None, CultureInfo.InvariantCulture);
            bytes[kind] += kb * 1024;
        }
        return (bytes[1], bytes[2], bytes[3]);
    }
}
