using System.Globalization;

namespace Sputnik.Gguf;

/// <summary>
/// llama.cpp's split GGUF convention (tools/gguf-split, llama_split_path): a model cut into n files named
/// <c>&lt;prefix&gt;-00001-of-0000n.gguf</c> … <c>&lt;prefix&gt;-0000n-of-0000n.gguf</c>. Every shard carries
/// <c>split.no</c> (u16, 0-based), <c>split.count</c> (u16) and <c>split.tensors.count</c> (i32, tensors of the whole
/// set); the first shard alone carries the model's metadata. Each shard is a complete GGUF file with its own header,
/// alignment and data section, holding a run of the model's tensors in order.
/// </summary>
internal static class GgufSplit
{
    public const string NoKey = "split.no";
    public const string CountKey = "split.count";
    public const string TensorsCountKey = "split.tensors.count";

    /// <summary>split.count and split.no are u16 in llama.cpp.</summary>
    public const int MaxShards = ushort.MaxValue;

    public static bool IsSplitKey(string key) => key is NoKey or CountKey or TensorsCountKey;

    /// <summary>The file name of shard <paramref name="index"/> (0-based) of <paramref name="count"/>.</summary>
    public static string ShardPath(string prefix, int index, int count) =>
        string.Create(CultureInfo.InvariantCulture, $"{prefix}-{index + 1:D5}-of-{count:D5}.gguf");

    /// <summary>
    /// The prefix of a shard's path when it ends as shard <paramref name="index"/> of <paramref name="count"/> must
    /// (llama.cpp finds the other shards only through the name), else null.
    /// </summary>
    public static string? PrefixOf(string path, int index, int count)
    {
        string suffix = ShardPath("", index, count);
        return path.Length > suffix.Length && path.EndsWith(suffix, StringComparison.Ordinal) ? path[..^suffix.Length] : null;
    }

    /// <summary>
    /// Reads a shard's place from its name alone: <c>dir/name-00002-of-00003.gguf</c> gives prefix <c>dir/name</c>,
    /// index 1, count 3. For finding split sets among file names (a hub listing) without opening the files.
    /// </summary>
    public static bool TryParseShardName(string path, out string prefix, out int index, out int count)
    {
        var m = System.Text.RegularExpressions.Regex.Match(path, @"^(.+)-([0-9]{5})-of-([0-9]{5})\.gguf\z", System.Text.RegularExpressions.RegexOptions.CultureInvariant);
        prefix = m.Success ? m.Groups[1].Value : "";
        index = m.Success ? int.Parse(m.Groups[2].ValueSpan, CultureInfo.InvariantCulture) - 1 : -1;
        count = m.Success ? int.Parse(m.Groups[3].ValueSpan, CultureInfo.InvariantCulture) : 0;
        return m.Success && count >= 1 && index >= 0 && index < count;
    }

    /// <summary>The prefix for writing a split model to <paramref name="outputPath"/>: the path without its .gguf extension.</summary>
    public static string OutputPrefix(string outputPath) =>
        outputPath.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) ? outputPath[..^5] : outputPath;

    /// <summary>
    /// A size as gguf-split's --split-max-size takes it: a positive number and a unit, M (10^6 bytes) or G (10^9);
    /// K (10^3) is accepted too, for small models. "2G", "500M", "1.5G".
    /// </summary>
    public static long ParseSize(string text)
    {
        string s = text.Trim();
        long unit = s.Length == 0 ? 0 : char.ToUpperInvariant(s[^1]) switch { 'K' => 1000L, 'M' => 1000_000L, 'G' => 1000_000_000L, _ => 0 };
        if (unit == 0 || !double.TryParse(s[..^1], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double n)
            || !(n > 0) || n * unit > long.MaxValue / 2 || (long)(n * unit) < 1)
            throw new ArgumentException($"split size '{text}' is not a positive number followed by M or G (megabytes or gigabytes), e.g. 2G");
        return (long)(n * unit);
    }

    /// <summary>
    /// The split keys of one opened file, or null when it is not a shard of a split model (no split.count, or 0 or 1
    /// like llama.cpp, which only treats split.count &gt; 1 as split). Keys of the wrong type or out of range are errors.
    /// </summary>
    public static SplitKeys? ReadKeys(GgufFile file)
    {
        if (!file.Metadata.TryGetValue(CountKey, out var countValue)) return null;
        long count = Integer(file, CountKey, countValue);
        if (count <= 1) return null;
        if (count > MaxShards)
            throw new GgufFormatException($"{file.Path}: {CountKey} = {count} is more than the {MaxShards} shards the format allows");
        if (!file.Metadata.TryGetValue(NoKey, out var noValue))
            throw new GgufFormatException($"{file.Path}: {CountKey} = {count} says this is a shard of a split model, but {NoKey} is missing");
        long no = Integer(file, NoKey, noValue);
        if (no < 0 || no >= count)
            throw new GgufFormatException($"{file.Path}: {NoKey} = {no} is not a shard number below {CountKey} = {count}");
        long? tensors = null;
        if (file.Metadata.TryGetValue(TensorsCountKey, out var tensorsValue))
        {
            tensors = Integer(file, TensorsCountKey, tensorsValue);
            if (tensors < 0) throw new GgufFormatException($"{file.Path}: {TensorsCountKey} = {tensors} is negative");
        }
        return new SplitKeys((int)no, (int)count, tensors);
    }

    private static long Integer(GgufFile file, string key, GgufValue value) =>
        value.Value is not bool && value.AsInt64() is long l
            ? l
            : throw new GgufFormatException($"{file.Path}: {key} is a {value.Type}, not an integer");
}

/// <summary>What a shard says about its place in a split model: shard <see cref="No"/> (0-based) of <see cref="Count"/>.</summary>
internal sealed record SplitKeys(int No, int Count, long? TensorsCount);

/// <summary>
/// Where to cut a model into shards when writing: at most <see cref="MaxBytes"/> of tensor data (each tensor padded to
/// the alignment, as gguf-split counts; the header is not counted) and at most <see cref="MaxTensors"/> tensors per
/// shard. A tensor larger than MaxBytes gets a shard of its own.
/// </summary>
internal sealed record GgufSplitLimits(long MaxBytes = long.MaxValue, int MaxTensors = int.MaxValue)
{
    public void Validate()
    {
        if (MaxBytes < 1) throw new ArgumentException($"split size {MaxBytes} must be at least 1 byte");
        if (MaxTensors < 1) throw new ArgumentException($"--split-max-tensors {MaxTensors} must be at least 1");
    }
}
