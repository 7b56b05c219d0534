using System.CommandLine;
using System.CommandLine.Parsing;
using Sputnik.Inference;

namespace Sputnik.Cli;

/// <summary>
/// Speculative decoding flags of run and chat, under llama.cpp's names (--spec-type, --spec-ngram-size-n,
/// --draft-max, --draft-min; its newer per-type spellings are accepted as aliases).
/// </summary>
internal sealed class SpeculationFlags
{
    private readonly Option<SpeculationType> _type = new("--spec-type")
    {
        Description = "Speculative decoding: none, ngram-simple (prompt lookup), ngram-mod (rolling n-gram table) or mtp (the model's Multi-Token Prediction head); output is unchanged",
        DefaultValueFactory = _ => SpeculationType.None,
        CustomParser = ParseType,
    };
    private readonly Option<int> _ngram = new Option<int>("--spec-ngram-size-n", "--spec-ngram-simple-size-n", "--spec-ngram-mod-n-match")
    {
        Description = "Length of the n-gram looked up to propose tokens",
        DefaultValueFactory = _ => new SpeculationOptions().NgramSize,
    }.AtLeast(1); // the upper bounds are SpeculationOptions.Validate's
    private readonly Option<int> _max = new Option<int>("--draft-max", "--draft", "--spec-draft-n-max")
    {
        Description = "Most tokens proposed per verification",
        DefaultValueFactory = _ => new SpeculationOptions().DraftMax,
    }.AtLeast(1);
    private readonly Option<int> _min = new Option<int>("--draft-min", "--spec-draft-n-min")
    {
        Description = "Fewest proposed tokens worth a batched verification",
        DefaultValueFactory = _ => new SpeculationOptions().DraftMin,
    }.AtLeast(0);

    public void AddTo(Command command)
    {
        command.Options.Add(_type);
        command.Options.Add(_ngram);
        command.Options.Add(_max);
        command.Options.Add(_min);
    }

    /// <summary>The settings typed, or null when speculation is off.</summary>
    public SpeculationOptions? Read(ParseResult r)
    {
        var o = new SpeculationOptions { Type = r.GetValue(_type), NgramSize = r.GetValue(_ngram), DraftMax = r.GetValue(_max), DraftMin = r.GetValue(_min) };
        if (!o.Enabled) return null;
        o.Validate();
        return o;
    }

    private static SpeculationType ParseType(ArgumentResult result)
    {
        string text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
        if (SpeculationOptions.TryParseType(text, out var type)) return type;
        result.AddError($"unknown speculation type '{text}': expected none, ngram-simple, ngram-mod or mtp");
        return SpeculationType.None;
    }
}
