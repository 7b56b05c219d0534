namespace Sputnik.Tensors;

/// <summary>
/// The core's L2 size, for tiles meant to stay in it: read once from Linux's sysfs (the first level-2 data or unified
/// cache of CPU 0), 1 MiB where that is missing or unreadable (AMD Zen 4 and 5 have 1 MiB; recent Intel server cores 2 MiB).
/// </summary>
internal static class CacheSizes
{
    private const int DefaultL2 = 1 << 20;

    /// <summary>Bytes of L2 per core, between 256 KiB and 4 MiB.</summary>
    public static readonly int L2Bytes = Math.Clamp(ReadL2() ?? DefaultL2, 256 << 10, 4 << 20);

    private static int? ReadL2()
    {
        try
        {
            const string dir = "/sys/devices/system/cpu/cpu0/cache";
            if (!Directory.Exists(dir)) return null;
            foreach (var index in Directory.EnumerateDirectories(dir, "index*"))
            {
                if (File.ReadAllText(Path.Combine(index, "level")).Trim() != "2") continue;
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
