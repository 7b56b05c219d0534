using System.Text.Json;
using Sputnik.Gguf;
using Xunit;

namespace Sputnik.Tests.Cli;

public class CliTests
{
    private static readonly string Stories = Fixtures.Model("stories260K.gguf");

    private static JsonElement Golden()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Fixtures.Require(Fixtures.Model("stories260K.golden.json"))));
        return doc.RootElement.Clone();
    }

    private static int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    [Fact]
    public void Run_json_greedy_200_from_BOS_is_byte_identical_to_golden()
    {
        var golden = Golden().GetProperty("bos_greedy_200");
        var r = CliRunner.Run("run", "-m", Fixtures.Require(Stories), "-p", "", "-n", "200", "--temp", "0", "--json", "-t", "1");
        Assert.True(r.ExitCode == 0, r.StdErr);
        using var doc = JsonDocument.Parse(r.StdOut);
        var o = doc.RootElement;
        Assert.Equal([1], Ints(o.GetProperty("prompt_tokens")));
        Assert.Equal(Ints(golden.GetProperty("tokens")), Ints(o.GetProperty("tokens")));
        Assert.Equal(golden.GetProperty("text").GetString(), o.GetProperty("text").GetString());
        var t = o.GetProperty("timings");
        foreach (var key in new[] { "prompt_ms", "prompt_tok_s", "gen_ms", "gen_tok_s" })
            Assert.True(t.GetProperty(key).GetDouble() >= 0, key);
        Assert.True(t.GetProperty("gen_tok_s").GetDouble() > 0);
    }

    [Fact]
    public void Run_json_prompt_case_matches_golden_tokens()
    {
        var golden = Golden().GetProperty("prompt");
        var expected = Ints(golden.GetProperty("generated_after_prompt"));
        var r = CliRunner.Run("run", "-m", Fixtures.Require(Stories), "-p", "Once upon a time", "-n", expected.Length.ToString(), "--temp", "0", "--json");
        Assert.True(r.ExitCode == 0, r.StdErr);
        using var doc = JsonDocument.Parse(r.StdOut);
        Assert.Equal(Ints(golden.GetProperty("prompt_tokens_with_bos")), Ints(doc.RootElement.GetProperty("prompt_tokens")));
        Assert.Equal(expected, Ints(doc.RootElement.GetProperty("tokens")));
    }

    [Fact]
    public void Run_streams_plain_text_to_stdout_and_same_seed_repeats()
    {
        string[] args = ["run", "-m", Fixtures.Require(Stories), "-p", "Once upon a time", "-n", "30", "--seed", "42", "--temp", "1.0"];
        var a = CliRunner.Run(args);
        var b = CliRunner.Run(args);
        Assert.Equal(0, a.ExitCode);
        Assert.Equal(a.StdOut, b.StdOut);
        Assert.True(a.StdOut.Trim().Length > 10);
        Assert.Contains("tok/s", a.StdErr);
    }

    [Fact]
    public void Tokenize_prints_ids_on_one_line_with_bos_unless_no_bos()
    {
        var r = CliRunner.Run("tokenize", "-m", Fixtures.Require(Stories), "--text", "Once upon a time");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("1 403 407 261 378", r.StdOut.Trim());
        var nb = CliRunner.Run("tokenize", "-m", Stories, "--text", "Once upon a time", "--no-bos", "--pieces");
        var lines = nb.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("403 407 261 378", lines[0]);
        Assert.Contains("▁Once", lines[1]);
    }

    [Fact]
    public void Info_json_reports_architecture_parameters_and_tokenizer()
    {
        var r = CliRunner.Run("info", Fixtures.Require(Stories), "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.StdOut);
        var o = doc.RootElement;
        Assert.Equal("llama", o.GetProperty("architecture").GetString());
        Assert.Equal(292800, o.GetProperty("parameters").GetInt64());
        Assert.Equal("llama", o.GetProperty("tokenizer").GetString());
        Assert.Equal(48, o.GetProperty("tensor_types").GetProperty("F32").GetInt32());
        Assert.False(o.GetProperty("chat_template").GetBoolean());
    }

    [Fact]
    public void Errors_are_one_line_on_stderr_with_exit_code_1()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-cli-");
        try
        {
            string garbage = Path.Combine(dir.FullName, "garbage.gguf");
            File.WriteAllText(garbage, "this is not a model file at all, just text");
            string unknownArch = Path.Combine(dir.FullName, "mamba.gguf");
            new GgufWriter().Set("general.architecture", "mamba9").AddTensor("token_embd.weight", new float[8], 4, 2).Write(unknownArch);

            var cases = new (string[] Args, string Expect)[]
            {
                (["run", "-m", Path.Combine(dir.FullName, "missing.gguf"), "-p", "x"], "not found"),
                (["run", "-m", garbage, "-p", "x"], "not a GGUF file"),
                (["run", "-m", unknownArch, "-p", "x"], "unknown architecture 'mamba9'"),
                (["run", "-m", Stories, "--no-such-flag"], "--no-such-flag"),
                (["run", "-m", Stories, "-n", "-5"], "-n -5 is out of range"),
                (["run", "-m", Stories, "--top-p", "7"], "--top-p 7 is out of range"),
                (["serve", "-m", Stories, "--port", "0", "--prefill-chunk", "-1"], "--prefill-chunk -1 must not be negative"),
                (["info", garbage], "not a GGUF file"),
                (["tokenize", "-m", Stories], "--text or --file"),
            };
            foreach (var (args, expect) in cases)
            {
                var r = CliRunner.Run(args);
                Assert.True(r.ExitCode == 1, $"{string.Join(' ', args)} → exit {r.ExitCode}");
                string err = r.StdErr.Trim();
                Assert.DoesNotContain("\n", err);
                Assert.StartsWith("error:", err);
                Assert.Contains(expect, err);
                Assert.DoesNotContain("   at ", r.StdErr);
            }
            var verbose = CliRunner.Run("run", "-m", garbage, "-p", "x", "--verbose");
            Assert.Equal(1, verbose.ExitCode);
            Assert.Contains("   at ", verbose.StdErr);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Template_prints_the_rendered_prompt_exactly_without_trailing_newline()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-tpl-");
        try
        {
            string tpl = Path.Combine(dir.FullName, "t.jinja");
            File.WriteAllText(tpl, "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}");
            string msgs = Path.Combine(dir.FullName, "m.json");
            File.WriteAllText(msgs, """[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi ✓"}]""");
            var r = CliRunner.Run("template", "--file", tpl, "--messages", msgs, "--add-generation-prompt", "--bos", "<s>");
            Assert.Equal(0, r.ExitCode);
            Assert.Equal("<s>[system] Be brief.\n[user] Hi ✓\n[assistant]", r.StdOut);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Chat_reads_piped_lines_answers_and_saves_without_losing_the_conversation()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-chat-");
        try
        {
            string save = Path.Combine(dir.FullName, "conv.json");
            var r = CliRunner.RunWithInput($"Once upon a time\n/budget 5\n/save {save}\n/nonsense\n", "chat", "-m", Fixtures.Require(Stories), "--temp", "0", "-n", "12");
            Assert.True(r.ExitCode == 0, r.StdErr);
            Assert.Contains("thinking budget: 5 tokens", r.StdOut);
            Assert.Contains("unknown command /nonsense", r.StdOut);
            Assert.Contains("tok/s", r.StdErr);
            using var doc = JsonDocument.Parse(File.ReadAllText(save));
            var messages = doc.RootElement.GetProperty("messages");
            Assert.Equal(2, messages.GetArrayLength());
            Assert.Equal("Once upon a time", messages[0].GetProperty("content").GetString());
            string answer = messages[1].GetProperty("content").GetString()!;
            Assert.False(string.IsNullOrWhiteSpace(answer));
            Assert.Contains(answer.Trim(), r.StdOut);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
