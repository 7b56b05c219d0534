using Sputnik.Hub;
using Xunit;

namespace Sputnik.Tests.Hub;

/// <summary>
/// Reference parsing and llama.cpp's file choice among a repository's GGUFs. In the Console collection (which runs
/// alone) because one test changes the current directory.
/// </summary>
[Collection("Console")]
public sealed class ModelReferenceTests
{
    [Theory]
    [InlineData("bartowski/DeepSeek-R1-Distill-Qwen-1.5B-GGUF", "bartowski", "DeepSeek-R1-Distill-Qwen-1.5B-GGUF", null, null, null)]
    [InlineData("bartowski/X-GGUF:Q4_K_M", "bartowski", "X-GGUF", "Q4_K_M", null, null)]
    [InlineData("hf.co/bartowski/X-GGUF:q8_0", "bartowski", "X-GGUF", "q8_0", null, null)]
    [InlineData("https://huggingface.co/unsloth/Qwen3-8B-GGUF", "unsloth", "Qwen3-8B-GGUF", null, null, null)]
    [InlineData("owner/repo/sub/dir/model-Q4_0.gguf", "owner", "repo", null, "sub/dir/model-Q4_0.gguf", null)]
    [InlineData("owner/repo@v1.2", "owner", "repo", null, null, "v1.2")]
    [InlineData("owner/repo:Q4_K_M@refs/pr/3", "owner", "repo", "Q4_K_M", null, "refs/pr/3")]
    [InlineData("owner/repo@0123456789abcdef0123456789abcdef01234567:UD-Q4_K_XL", "owner", "repo", "UD-Q4_K_XL", null, "0123456789abcdef0123456789abcdef01234567")]
    [InlineData("hf.co/owner/repo/m.gguf@dev", "owner", "repo", null, "m.gguf", "dev")]
    public void References_parse_into_repo_quant_file_and_revision(string text, string owner, string name, string? quant, string? file, string? revision)
    {
        Assert.True(ModelReference.TryParse(text, out var r));
        Assert.Equal(new ModelReference(owner, name, quant, file, revision), r);
        Assert.Equal(r, ModelReference.Parse(r!.ToString())); // the canonical spelling parses back
    }

    [Theory]
    [InlineData("model.gguf")]
    [InlineData("/abs/path/model.gguf")]
    [InlineData("./rel/model.gguf")]
    [InlineData("../model.gguf")]
    [InlineData("~/models/x.gguf")]
    [InlineData("dir/model.gguf")]
    [InlineData("dir/sub/notgguf.bin")]
    [InlineData("justaword")]
    public void Paths_are_not_references(string text) => Assert.False(ModelReference.TryParse(text, out _));

    [Fact]
    public void An_existing_file_or_folder_wins_over_a_reference()
    {
        string dir = Directory.CreateTempSubdirectory("sputnik-ref-").FullName;
        string cwd = Environment.CurrentDirectory;
        try
        {
            Directory.CreateDirectory(Path.Combine(dir, "owner", "repo"));
            File.WriteAllText(Path.Combine(dir, "owner", "repo", "m.gguf"), "x");
            Environment.CurrentDirectory = dir;
            Assert.False(ModelReference.TryParse("owner/repo/m.gguf", out _));   // the file exists
            Assert.False(ModelReference.TryParse("owner/repo/other.gguf", out _)); // its folder exists: a missing local file
            Assert.False(ModelReference.TryParse("owner/repo", out _));          // a folder
            Assert.True(ModelReference.TryParse("owner/repo:Q8_0", out _));      // a quant makes it a reference
        }
        finally
        {
            Environment.CurrentDirectory = cwd;
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("hf.co/justone")]
    [InlineData("owner/repo:Q4 K")]
    [InlineData("owner/repo@a..b")]
    [InlineData("owner/repo/m.gguf:Q4_K_M")]
    [InlineData("hf.co/owner/repo/../../etc/passwd.gguf")]
    [InlineData("-bad/repo:Q8_0")]
    public void Malformed_references_are_one_clear_error(string text)
    {
        var e = Assert.Throws<HubException>(() => ModelReference.TryParse(text, out _));
        Assert.Contains("is not a model reference", e.Message);
    }

    private static readonly string[] Bartowski =
    [
        "README.md", "DeepSeek-R1-Distill-Qwen-1.5B-IQ3_M.gguf", "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K.gguf",
        "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf", "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_S.gguf", "DeepSeek-R1-Distill-Qwen-1.5B-Q8_0.gguf",
        "DeepSeek-R1-Distill-Qwen-1.5B-f16.gguf", "DeepSeek-R1-Distill-Qwen-1.5B.imatrix.gguf", "mmproj-DeepSeek-f16.gguf",
    ];

    private static IReadOnlyList<string> Pick(string[] files, string reference) => GgufSelection.Pick(files, ModelReference.Parse(reference), "repo");

    [Theory]
    [InlineData("o/r", "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf")]
    [InlineData("o/r:q4_k_m", "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf")]
    [InlineData("o/r:Q4_K", "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K.gguf")]
    [InlineData("o/r:Q8_0", "DeepSeek-R1-Distill-Qwen-1.5B-Q8_0.gguf")]
    [InlineData("o/r:F16", "DeepSeek-R1-Distill-Qwen-1.5B-f16.gguf")]
    [InlineData("o/r/DeepSeek-R1-Distill-Qwen-1.5B-IQ3_M.gguf", "DeepSeek-R1-Distill-Qwen-1.5B-IQ3_M.gguf")]
    public void A_quant_tag_picks_its_file_as_llama_cpp_does(string reference, string expected) =>
        Assert.Equal([expected], Pick(Bartowski, reference));

    [Fact]
    public void Without_Q4_K_M_the_default_is_Q8_0_then_the_first_model_gguf()
    {
        Assert.Equal(["m-Q8_0.gguf"], Pick(["m-Q2_K.gguf", "m-Q8_0.gguf", "mmproj-m-Q4_K_M.gguf"], "o/r"));
        Assert.Equal(["a-Q5_K_M.gguf"], Pick(["m.imatrix.gguf", "mmproj.gguf", "b-Q6_K.gguf", "a-Q5_K_M.gguf"], "o/r"));
    }

    [Fact]
    public void A_split_model_is_picked_as_its_whole_set()
    {
        string[] files = ["Q4_K_M/m-Q4_K_M-00002-of-00003.gguf", "Q4_K_M/m-Q4_K_M-00001-of-00003.gguf", "Q4_K_M/m-Q4_K_M-00003-of-00003.gguf", "m-Q8_0.gguf"];
        string[] set = ["Q4_K_M/m-Q4_K_M-00001-of-00003.gguf", "Q4_K_M/m-Q4_K_M-00002-of-00003.gguf", "Q4_K_M/m-Q4_K_M-00003-of-00003.gguf"];
        Assert.Equal(set, Pick(files, "o/r"));
        Assert.Equal(set, Pick(files, "o/r/Q4_K_M/m-Q4_K_M-00002-of-00003.gguf"));
        Assert.Equal("Q4_K_M", GgufSelection.QuantOf(files[0]));
        var e = Assert.Throws<HubException>(() => Pick(files[1..], "o/r:Q4_K_M"));
        Assert.Contains("lacks shard 2 of 3", e.Message);
    }

    [Fact]
    public void A_missing_quant_lists_the_quants_there()
    {
        var e = Assert.Throws<HubException>(() => Pick(Bartowski, "o/r:Q6_K"));
        Assert.Equal("repo has no Q6_K file; quants there: f16, IQ3_M, Q4_K, Q4_K_M, Q4_K_S, Q8_0", e.Message);
        Assert.Contains("no GGUF model file", Assert.Throws<HubException>(() => Pick(["README.md", "mmproj.gguf"], "o/r")).Message);
    }
}
