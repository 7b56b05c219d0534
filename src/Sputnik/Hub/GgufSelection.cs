using System.Text.RegularExpressions;

namespace Sputnik.Hub;

/// <summary>
/// Which GGUF file(s) of a repository a reference means, as llama.cpp picks them: a quant tag matches file names
/// case-insensitively; with no tag Q4_K_M, else Q8_0, else the first GGUF; projector (mmproj) and importance-matrix
/// (imatrix) files are never models. A split model (llama.cpp's gguf-split, <c>name-00001-of-00003.gguf</c>) is
/// taken as its whole set, first shard first.
/// </summary>
internal static partial class GgufSelection
{
    public static readonly string[] DefaultQuants = ["Q4_K_M", "Q8_0"];

    [GeneratedRegex(@"^(?<stem>.+)-(?<no>\d{5})-of-(?<count>\d{5})\.gguf$", RegexOptions.IgnoreCase)]
    private static partial Regex SplitName();

    // The quant at the end of a file stem: Q4_K_M, IQ3_XXS, Q8_0, F16, BF16, MXFP4…, with unsloth's UD- in front.
    [GeneratedRegex(@"(?:^|[-._/])(?<quant>(?:UD-)?(?:I?Q[0-9][A-Z0-9_]*|BF16|F16|F32|MXFP4[A-Z0-9_]*))$", RegexOptions.IgnoreCase)]
    private static partial Regex QuantSuffix();

    /// <summary>A .gguf that holds a model (not a multimodal projector or an importance matrix).</summary>
    public static bool IsModelGguf(string path)
    {
        string name = Path.GetFileName(path);
        return name.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)
            && !name.Contains("mmproj", StringComparison.OrdinalIgnoreCase) && !name.Contains("imatrix", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Shard number, shard count and the stem shared by the set, when the name is a split shard's.</summary>
    public static (int No, int Count, string Stem)? Split(string path)
    {
        var m = SplitName().Match(path);
        if (!m.Success) return null;
        int no = int.Parse(m.Groups["no"].Value), count = int.Parse(m.Groups["count"].Value);
        return no >= 1 && count >= 1 && no <= count ? (no, count, m.Groups["stem"].Value) : null;
    }

    /// <summary>The path without .gguf and without a shard suffix: what quant tags are matched against.</summary>
    private static string Key(string path) =>
        Split(path) is { } s ? s.Stem : path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) ? path[..^5] : path;

    /// <summary>The quant a file name states (Q4_K_M for …-Q4_K_M.gguf), else its file stem.</summary>
    public static string QuantOf(string path)
    {
        string key = Key(path);
        var m = QuantSuffix().Match(key);
        return m.Success ? m.Groups["quant"].Value : Path.GetFileName(key);
    }

    /// <summary>
    /// True when <paramref name="quant"/> appears in the path as a whole name part: bounded by the start, '-', '.'
    /// or '/' before it and by the end, '-', '.' or '/' after it (so Q4_K does not match Q4_K_M).
    /// </summary>
    public static bool Matches(string path, string quant)
    {
        string key = Key(path);
        for (int i = key.IndexOf(quant, StringComparison.OrdinalIgnoreCase); i >= 0;
             i = key.IndexOf(quant, i + 1, StringComparison.OrdinalIgnoreCase))
        {
            bool startOk = i == 0 || key[i - 1] is '-' or '.' or '/' or '_';
            int end = i + quant.Length;
            bool endOk = end == key.Length || key[end] is '-' or '.' or '/';
            if (startOk && endOk) return true;
        }
        return false;
    }

    /// <summary>The distinct quants among the repository's model files, for "quant not found" messages.</summary>
    public static IReadOnlyList<string> Quants(IEnumerable<string> paths) =>
        paths.Where(IsModelGguf).Select(QuantOf).Distinct(StringComparer.OrdinalIgnoreCase).Order(StringComparer.OrdinalIgnoreCase).ToList();

    /// <summary>
    /// The files (shards in order, first shard first) that <paramref name="reference"/> names among
    /// <paramref name="paths"/>; throws <see cref="HubException"/> when there is none. <paramref name="where"/>
    /// names the place searched in messages ("bartowski/X" or "the cache").
    /// </summary>
    public static IReadOnlyList<string> Pick(IReadOnlyCollection<string> paths, ModelReference reference, string where)
    {
        var models = paths.Where(IsModelGguf).Order(StringComparer.Ordinal).ToList();
        string? chosen;
        if (reference.FilePath is { } wanted)
        {
            chosen = paths.FirstOrDefault(p => p == wanted) ?? paths.FirstOrDefault(p => string.Equals(p, wanted, StringComparison.OrdinalIgnoreCase));
            if (chosen == null)
                throw new HubException(HubErrorKind.NotFound, $"{where} has no file '{wanted}'" + Available(models));
        }
        else
        {
            if (models.Count == 0) throw new HubException(HubErrorKind.NoGguf, $"{where} has no GGUF model file");
            if (reference.Quant is { } quant)
            {
                chosen = models.FirstOrDefault(p => Matches(p, quant));
                if (chosen == null)
                    throw new HubException(HubErrorKind.QuantNotFound, $"{where} has no {quant} file; quants there: {string.Join(", ", Quants(models))}");
            }
            else
            {
                chosen = DefaultQuants.Select(q => models.FirstOrDefault(p => Matches(p, q))).FirstOrDefault(p => p != null) ?? models[0];
            }
        }
        return WithShards(chosen, paths, where);
    }

    /// <summary>The whole split set <paramref name="file"/> belongs to (ordered by shard), or the file alone.</summary>
    private static IReadOnlyList<string> WithShards(string file, IReadOnlyCollection<string> paths, string where)
    {
        if (Split(file) is not { } s) return [file];
        var set = new List<string>(s.Count);
        for (int no = 1; no <= s.Count; no++)
        {
            string shard = $"{s.Stem}-{no:D5}-of-{s.Count:D5}.gguf";
            string? found = paths.FirstOrDefault(p => string.Equals(p, shard, StringComparison.OrdinalIgnoreCase));
            set.Add(found ?? throw new HubException(HubErrorKind.NotFound, $"{where} lacks shard {no} of {s.Count} of the split model {s.Stem} ({shard})"));
        }
        return set;
    }

    private static string Available(List<string> models) =>
        models.Count == 0 ? " (and no GGUF model file)" : $"; GGUF files there: {string.Join(", ", models.Take(12))}{(models.Count > 12 ? ", …" : "")}";
}
