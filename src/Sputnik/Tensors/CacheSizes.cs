namespace Sputnik.Tensors;

/// <summary>
/// The core's L1 data and L2 sizes, for tiles meant to stay in them: read once from Linux's sysfs (the first data or
/// unified cache of each level of CPU 0); where that is missing or unreadable, 32 KiB and 1 MiB (AMD Zen 4 has 32 KiB
/// and 1 MiB; Zen 5 and recent Intel server cores 48 KiB, and 1 and 2 MiB).
/// </summary>
internal static class CacheSizes
{
    private const int DefaultL1 = 32 << 10, DefaultL2 = 1 << 20;

    /// <summary>Bytes of L1 data cache per core, between 16 and 128 KiB.</summary>
    public static readonly int L1Bytes = Math.Clamp(Read(level: 1) ?? DefaultL1, 16 << 10, 128 << 10);

    /// <summary>Bytes of L2 per core, between 256 KiB and 4 MiB.</summary>
    public static readonly int L2Bytes = Math.Clamp(Read(level: 2) ?? DefaultL2, 256 << 10, 4 << 20);

    private static int? Read(int level)
    {
        try
        {
            const string dir = "/sys/devices/system/cpu/cpu0/cache";
            if (!Directory.Exists(dir)) return null;
            foreach (var index in Directory.EnumerateDirectories(dir, "index*"))
            {
                if (File.ReadAllText(Path.Combine(index, "level")).Trim() != level.ToString(System.Globalization.CultureInfo.InvariantCulture)) continue;
                if (File.ReadAllText(Path.Combine(index, "type")).Trim() == "Instruction") continue;
                return ParseSize(File.ReadAllText(Path.Combine(index, "size")));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return null;
    }

    /// <summary>sysfs's "2048K" / "1M" / "512" form in bytes; null when it is not one.</summary>
    internal static int? ParseSize(string text)
    {
        text = text.Trim();
        if (text.Length == 0) return null;
        long unit = char.ToUpperInvariant(text[^1]) switch { 'K' => 1 << 10, 'M' => 1 << 20, _ => 1 };
        string digits = unit == 1 ? text : text[..^1];
        return long.TryParse(digits, out long n) && n > 0 && n * unit <= int.MaxValue ? (int)(n * unit) : null;
    }
}
