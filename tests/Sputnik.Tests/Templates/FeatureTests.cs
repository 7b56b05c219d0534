using System.Text.Json;
using Sputnik.Templates;
using Xunit;

namespace Sputnik.Tests.Templates;

/// <summary>
/// Engine features one snippet at a time; expected output of every snippet comes from Python jinja2
/// (Data/render_features.py → Data/features.json), so each assertion is byte-exact against the reference.
/// </summary>
public class FeatureTests
{
    private static readonly string DataDir = Path.Combine(Fixtures.RepoRoot, "tests", "Sputnik.Tests", "Templates", "Data");
    private static readonly Lazy<JsonElement> Features = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(DataDir, "features.json"))).RootElement.Clone());

    public static IEnumerable<object[]> Indices() =>
        Enumerable.Range(0, Features.Value.GetProperty("cases").GetArrayLength()).Select(i => new object[] { i });

    [Theory]
    [MemberData(nameof(Indices))]
    public void Matches_python_jinja2(int index)
    {
        var c = Features.Value.GetProperty("cases")[index];
        var context = Features.Value.GetProperty("context").EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value);
        var template = ChatTemplate.Parse(c.GetProperty("template").GetString()!);
        if (c.TryGetProperty("output", out var output))
        {
            Assert.Equal(output.GetString(), template.Render(context));
        }
        else
        {
            var ex = Assert.ThrowsAny<TemplateException>(() => template.Render(context));
            Assert.EndsWith(ex.Reason, c.GetProperty("error").GetString());
        }
    }
}
