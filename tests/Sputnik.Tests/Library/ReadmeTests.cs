using System.Text.RegularExpressions;
using Xunit;

namespace Sputnik.Tests.Library;

/// <summary>The README as a newcomer reads it: tables that render as tables, a run command for every sample.</summary>
public sealed class ReadmeTests
{
    private static string[] Lines() => File.ReadAllLines(Path.Combine(Fixtures.RepoRoot, "README.md"));

    [Fact]
    public void No_table_is_split_by_a_blank_line()
    {
        string[] lines = Lines();
        int rows = 0;
        for (int i = 2; i < lines.Length; i++)
        {
            if (!lines[i].StartsWith('|')) continue;
            rows++;
            // A row after a blank line that follows a row renders as a paragraph of pipes, unless a new table starts.
            bool afterGap = lines[i - 1].Trim().Length == 0 && lines[i - 2].StartsWith('|');
            bool newTable = i + 1 < lines.Length && lines[i + 1].StartsWith("|---", StringComparison.Ordinal);
            Assert.False(afterGap && !newTable, $"README line {i + 1} continues the table above after a blank line: {lines[i]}");
        }
        Assert.True(rows > 10);
    }

    [Fact]
    public void Every_sample_has_a_run_command()
    {
        string readme = string.Join('\n', Lines());
        var documented = Regex.Matches(readme, @"^dotnet run --project samples/(\w+) -- \S", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToHashSet();
        var samples = Directory.GetDirectories(Path.Combine(Fixtures.RepoRoot, "samples")).Select(Path.GetFileName).ToList();
        Assert.NotEmpty(samples);
        foreach (string? sample in samples) Assert.Contains(sample!, documented);
    }
}
