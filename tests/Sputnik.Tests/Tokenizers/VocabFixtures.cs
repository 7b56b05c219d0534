using System.Collections.Concurrent;
using Sputnik.Tokenizers;

namespace Sputnik.Tests.Tokenizers;

/// <summary>Loads llama.cpp tokenizer test vectors and the tokenizers they belong to (cached per process).</summary>
internal static class VocabFixtures
{
    public const string Separator = "\n__ggml_vocab_test__\n";

    private static readonly ConcurrentDictionary<string, Lazy<Tokenizer>> s_tokenizers = new();

    /// <summary>Fixture names: the NAME in ggml-vocab-NAME.gguf.inp.</summary>
    public static readonly string[] Names = ["gpt-2", "deepseek-llm", "llama-spm", "phi-3", "qwen2", "llama-bpe"];

    public static Tokenizer Get(string name) =>
        s_tokenizers.GetOrAdd(name, n => new Lazy<Tokenizer>(() => Tokenizer.Create(LoadData(n)))).Value;

    public static TokenizerData LoadData(string name) => name switch
    {
        "qwen2" => HfTokenizerJson.Load(Fixtures.Require(Fixtures.Tokenizer("qwen2-tokenizer.json"))),
        "llama-bpe" => HfTokenizerJson.Load(Fixtures.Require(Fixtures.Tokenizer("llama3-tokenizer.json"))),
        _ => TokenizerData.FromGguf(Fixtures.Require(Fixtures.Tokenizer($"ggml-vocab-{name}.gguf"))),
    };

    /// <summary>The (input, expected ids) pairs of a fixture.</summary>
    public static List<(string Input, int[] Expected)> Vectors(string name)
    {
        string inp = File.ReadAllText(Fixtures.Require(Fixtures.Tokenizer($"ggml-vocab-{name}.gguf.inp")));
        string[] outLines = File.ReadAllText(Fixtures.Require(Fixtures.Tokenizer($"ggml-vocab-{name}.gguf.out"))).Split('\n');
        var inputs = inp.Split(Separator).ToList();
        if (inputs.Count > 0 && inputs[^1].Length == 0) inputs.RemoveAt(inputs.Count - 1); // file ends with the separator
        var result = new List<(string, int[])>();
        for (int i = 0; i < inputs.Count; i++)
        {
            string line = outLines[i].Trim();
            int[] ids = line.Length == 0 ? [] : line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
            result.Add((inputs[i], ids));
        }
        return result;
    }
}
