using System.Runtime.InteropServices;

namespace Sputnik.Tensors;

/// <summary>
/// Asks Linux for transparent huge pages (2 MiB) on the large buffers the re-laid weights live in. Where THP is set
/// to "madvise" (Debian's default) such memory otherwise comes in 4 KiB pages: loading a 5 GB model then takes over a
/// million page faults, each costly in a virtual machine, and decode walks the page tables for every 4 KiB it streams.
/// Best effort: anything other than Linux with glibc, or a kernel that refuses, keeps the small pages.
/// SPUTNIK_HUGEPAGES=0 turns it off (A/B measurements).
/// </summary>
internal static unsafe partial class HugePages
{
    private const int MadviseHugePage = 14; // MADV_HUGEPAGE
    private const int MadviseDontNeed = 4;  // MADV_DONTNEED
    private const long PageBytes = 2L << 20;

    public static readonly bool Enabled = OperatingSystem.IsLinux() && Environment.GetEnvironmentVariable("SPUTNIK_HUGEPAGES") != "0";
    private static bool s_unavailable;

    [LibraryImport("libc.so.6", EntryPoint = "madvise")]
    private static partial int Madvise(nint address, nuint length, int advice);

    /// <summary>
    /// Unmaps the pages of a read-only file mapping from this process (MADV_DONTNEED): they stay in the page cache and a
    /// later read maps them again, but until then they are not in the resident set. Best effort, Linux only.
    /// </summary>
    public static void ReleaseMapped(byte* p, long bytes)
    {
        if (!OperatingSystem.IsLinux() || s_unavailable || bytes <= 0) return;
        long start = (long)p & ~4095L;
        try { Madvise((nint)start, (nuint)((long)p + bytes - start), MadviseDontNeed); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { s_unavailable = true; }
    }

    /// <summary>Advises a large array (KV cache planes); large arrays are not moved by the GC, so the advice stays with them.</summary>
    public static void Advise(byte[] array)
    {
        if (!Enabled || array.Length < 2 * PageBytes) return;
        fixed (byte* p = array) Advise(p, array.Length);
    }

    /// <summary>Advises the whole 2 MiB pages inside [p, p + bytes); call it before the memory is first written.</summary>
    public static void Advise(byte* p, long bytes)
    {
        if (!Enabled || s_unavailable || bytes < 2 * PageBytes) return;
        long start = ((long)p + PageBytes - 1) & ~(PageBytes - 1), end = ((long)p + bytes) & ~(PageBytes - 1);
        if (end <= start) return;
        try { Madvise((nint)start, (nuint)(end - start), MadviseHugePage); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { s_unavailable = true; }
    }
}
