using System.CommandLine;
using System.CommandLine.Parsing;
using Sputnik.Inference;

namespace Sputnik.Cli;

/// <summary>
/// Speculative decoding flags of run, chat and serve, under llama.cpp's names (--spec-type, --spec-ngram-size-n,
/// --draft-max, --draft-min, --draft-p-min, -md; its newer per-type spellings are accepted as aliases).
/// </summary>
internal sealed class SpeculationFlags
{
    private readonly Option<SpeculationType> _type = new("--spec-type")
    {
        Description = "Speculative decoding: none, ngram-simple (prompt lookup), ngram-mod (rolling n-gram table), draft-simple (a draft model, -md; chosen when -md is given) or mtp (the model's Multi-Token Prediction head); output is unchanged",
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
    private readonly Option<float> _pMin = new("--draft-p-min", "--spec-draft-p-min")
    {
        Description = "A draft model stops proposing where its top token is less likely than this (0 = never)",
        DefaultValueFactory = _ => new SpeculationOptions().DraftPMin,
    };
    private readonly Option<string?> _draft = new("--model-draft", "-md", "--spec-draft-model")
    {
        Description = "Draft model for speculative decoding: a GGUF file or hub reference with the model's vocabulary",
    };

    public void AddTo(Command command)
    {
        command.Options.Add(_type);
        command.Options.Add(_ngram);
        command.Options.Add(_max);
        command.Options.Add(_min);
        command.Options.Add(_pMin);
        command.Options.Add(_draft);
    }

    /// <summary>
    /// The settings typed, or null when speculation is off; with -md the draft model is loaded (hub references
    /// pulled) with <paramref name="target"/>'s context and the given threads and cache types, checked against its
    /// vocabulary, and set as <see cref="SpeculationOptions.DraftModel"/>: the caller disposes it.
    /// </summary>
    public SpeculationOptions? Read(ParseResult r, SputnikModel target, ModelOptions loadOptions)
    {
        var o = ReadSettings(r, out string? draftPath);
        if (o == null || draftPath == null) return o;
        var draft = SputnikModel.Load(CliOptions.ResolveModel(draftPath), loadOptions with { ContextLength = target.ContextLength, LoraAdapters = [] });
        try
        {
            DraftModelSource.CheckCompatible(target.Tokenizer, draft.Tokenizer);
            return o with { DraftModel = draft };
        }
        catch
        {
            draft.Dispose();
            throw;
        }
    }

    /// <summary>The settings typed (null when speculation is off) and the -md reference, not loaded (the server loads it).</summary>
    public SpeculationOptions? ReadSettings(ParseResult r, out string? draftPath)
    {
        draftPath = r.GetValue(_draft);
        var type = r.GetValue(_type);
        if (draftPath != null && type == SpeculationType.None) type = SpeculationType.DraftSimple;
        if (draftPath != null && type != SpeculationType.DraftSimple)
            throw new ArgumentException($"-md (a draft model) and --spec-type {SpeculationOptions.Name(type)}: choose one");
        if (draftPath == null && type == SpeculationType.DraftSimple)
            throw new ArgumentException("--spec-type draft-simple needs a draft model: -md FILE");
        var o = new SpeculationOptions
        {
            Type = type, NgramSize = r.GetValue(_ngram), DraftMax = r.GetValue(_max), DraftMin = r.GetValue(_min), DraftPMin = r.GetValue(_pMin),
        };
        if (!o.Enabled) return null;
        if (!(o.DraftPMin is >= 0 and <= 1)) throw new ArgumentException($"--draft-p-min {o.DraftPMin} must be between 0 and 1");
        (o with { Type = SpeculationType.None }).Validate(); // the limits; the draft model is checked when it is loaded
        return o;
    }

    private static SpeculationType ParseType(ArgumentResult result)
    {
        string text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
        if (SpeculationOptions.TryParseType(text, out var type)) return type;
        result.AddError($"unknown speculation type '{text}': expected none, ngram-simple, ngram-mod, draft-simple or mtp");
        return SpeculationType.None;
    }
}
