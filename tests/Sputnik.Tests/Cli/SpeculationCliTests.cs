using System.Text.Json;
using Xunit;

namespace Sputnik.Tests.Cli;

/// <summary>`run --spec-type …` leaves the greedy golden output (and the bundled model's greedy answer) unchanged and reports its draft counts.</summary>
public class SpeculationCliTests
{
    private static readonly string Stories = Fixtures.Model("stories260K.gguf");

    private static int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    [Theory]
    [InlineData("ngram-simple")]
    [InlineData("ngram-mod")]
    public void Greedy_200_from_BOS_with_speculation_is_the_golden_output(string type)
    {
        using var golden = JsonDocument.Parse(File.ReadAllText(Fixtures.Require(Fixtures.Model("stories260K.golden.json"))));
        var expected = golden.RootElement.GetProperty("bos_greedy_200");
        var r = CliRunner.Run("run", "-m", Fixtures.Require(Stories), "-p", "", "-n", "200", "--temp", "0", "--json", "-t", "1",
            "--spec-type", type, "--draft-max", "8", "--spec-ngram-size-n", "2");
        Assert.True(r.ExitCode == 0, r.StdErr);
        using var doc = JsonDocument.Parse(r.StdOut);
        var o = doc.RootElement;
        Assert.Equal(Ints(expected.GetProperty("tokens")), Ints(o.GetProperty("tokens")));
        Assert.Equal(expected.GetProperty("text").GetString(), o.GetProperty("text").GetString());
        var t = o.GetProperty("timings");
        int drafted = t.GetProperty("draft_n").GetInt32(), accepted = t.GetProperty("draft_n_accepted").GetInt32();
        Assert.True(drafted > 0, "nothing was proposed over 200 tokens of a repetitive story");
        Assert.InRange(accepted, 0, drafted);
        Assert.Equal(Math.Round((double)accepted / drafted, 4), t.GetProperty("draft_acceptance_rate").GetDouble());
    }

    [Fact]
    public void A_model_drafting_for_itself_keeps_the_golden_output_and_every_proposal()
    {
        using var golden = JsonDocument.Parse(File.ReadAllText(Fixtures.Require(Fixtures.Model("stories260K.golden.json"))));
        var expected = golden.RootElement.GetProperty("bos_greedy_200");
        var r = CliRunner.Run("run", "-m", Fixtures.Require(Stories), "-p", "", "-n", "200", "--temp", "0", "--json", "-t", "1",
            "-md", Stories, "--draft-max", "4");
        Assert.True(r.ExitCode == 0, r.StdErr);
        using var doc = JsonDocument.Parse(r.StdOut);
        Assert.Equal(Ints(expected.GetProperty("tokens")), Ints(doc.RootElement.GetProperty("tokens")));
        var t = doc.RootElement.GetProperty("timings");
        Assert.True(t.GetProperty("draft_n").GetInt32() > 0);
        Assert.Equal(t.GetProperty("draft_n").GetInt32(), t.GetProperty("draft_n_accepted").GetInt32());
    }

    [Fact]
    public void Mtp_speculation_on_the_bundled_model_keeps_its_greedy_answer()
    {
        string bundled = Fixtures.Require(Path.Combine(Fixtures.RepoRoot, "models", "sputnik-r1-tiny.gguf"));
        string[] run = ["run", "-m", bundled, "-p", "<｜User｜>What is 4721 * 368?<｜Assistant｜><think>\n", "-n", "400", "--temp", "0", "--json", "-t", "2"];
        var plain = CliRunner.Run(run);
        var mtp = CliRunner.Run([.. run, "--spec-type", "mtp", "--draft-max", "2"]);
        Assert.True(plain.ExitCode == 0, plain.StdErr);
        Assert.True(mtp.ExitCode == 0, mtp.StdErr);
        using var plainDoc = JsonDocument.Parse(plain.StdOut);
        using var mtpDoc = JsonDocument.Parse(mtp.StdOut);
        Assert.Contains("The answer is 1737328.", plainDoc.RootElement.GetProperty("text").GetString());
        Assert.Equal(Ints(plainDoc.RootElement.GetProperty("tokens")), Ints(mtpDoc.RootElement.GetProperty("tokens")));
        Assert.Equal(plainDoc.RootElement.GetProperty("text").GetString(), mtpDoc.RootElement.GetProperty("text").GetString());
        var t = mtpDoc.RootElement.GetProperty("timings");
        int drafted = t.GetProperty("draft_n").GetInt32(), accepted = t.GetProperty("draft_n_accepted").GetInt32();
        Assert.True(drafted > 0, "the MTP head proposed nothing");
        Assert.True(accepted >= drafted / 2, $"the bundled model's MTP head: {accepted} of {drafted} proposals accepted");
    }

    [Theory]
    [InlineData("the draft model cannot propose tokens for this model", "-md", "BUNDLED")]
    [InlineData("--spec-type draft-simple needs a draft model", "--spec-type", "draft-simple")]
    [InlineData("choose one", "--spec-type", "ngram-mod", "-md", "BUNDLED")]
    [InlineData("--draft-p-min 2 must be between 0 and 1", "-md", "BUNDLED", "--draft-p-min", "2")]
    [InlineData("unknown speculation type 'ngram-bogus'", "--spec-type", "ngram-bogus")]
    [InlineData("draft min 9", "--spec-type", "ngram-mod", "--draft-max", "4", "--draft-min", "9")]
    public void Bad_speculation_flags_fail_with_one_line(string message, params string[] flags)
    {
        string bundled = Path.Combine(Fixtures.RepoRoot, "models", "sputnik-r1-tiny.gguf");
        var r = CliRunner.Run(["run", "-m", Fixtures.Require(Stories), "-p", "x", "-n", "4", .. flags.Select(f => f == "BUNDLED" ? bundled : f)]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(message, r.StdErr);
        Assert.DoesNotContain("   at ", r.StdErr);
    }
}
