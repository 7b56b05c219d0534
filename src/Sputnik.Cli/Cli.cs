using System.CommandLine;
using System.CommandLine.Parsing;
using Sputnik.Gguf;
using Sputnik.Inference;
using Sputnik.Models;

namespace Sputnik.Cli;

/// <summary>Options shared by several commands.</summary>
internal static class CliOptions
{
    public static readonly Option<bool> Verbose = new("--verbose") { Description = "Show stack traces on errors", Recursive = true };

    /// <summary>True when the user typed the option (not just its default), so it overrides the model's recommendation.</summary>
    public static bool Given(ParseResult r, Option option) => r.GetResult(option) is { Implicit: false };

    /// <summary>--token for the hub (private and gated repositories); HF_TOKEN when absent.</summary>
    public static readonly Option<string?> Token = new("--token") { Description = "Hugging Face token for private or gated models (default: $HF_TOKEN)", Recursive = true };

    public static Option<string> Model() => new("--model", "-m") { Description = "GGUF model file, or a hub reference (owner/repo[:QUANT])", Required = true };

    /// <summary>-m for commands that fall back to the bundled model (see <see cref="DefaultModel"/>).</summary>
    public static Option<string> ModelOrDefault() => new("--model", "-m") { Description = "GGUF model file, or a hub reference (owner/repo[:QUANT]) (default: the bundled sputnik-r1-tiny)" };

    /// <summary>
    /// The one place a -m value becomes a file: a path as it is, a hub reference (owner/repo:QUANT …) pulled into the
    /// Hugging Face cache if it is not there yet (see <see cref="HubCli"/>), nothing at all the bundled model.
    /// </summary>
    public static string ResolveModel(string? given) => given is { } g ? HubCli.Resolve(g) : DefaultModel.Path()
        ?? throw new ArgumentException("no model given: pass -m path/to/model.gguf or -m owner/repo:QUANT (or set SPUTNIK_MODEL)");

    public static Option<int> Threads() => new Option<int>("--threads", "-t")
    {
        Description = "Worker threads",
        DefaultValueFactory = _ => Environment.ProcessorCount,
    }.AtLeast(1);

    /// <summary>llama.cpp's -ctk / --cache-type-k: the element type of the cached keys.</summary>
    public static Option<KvCacheType> CacheTypeK() => new("--cache-type-k", "-ctk")
    {
        Description = "KV cache type of the keys: f16, q8_0, q4_0 or f32",
        DefaultValueFactory = _ => KvCacheType.F16,
        CustomParser = ParseCacheType,
    };

    /// <summary>llama.cpp's -ctv / --cache-type-v: the element type of the cached values (default: f16).</summary>
    public static Option<KvCacheType> CacheTypeV() => new("--cache-type-v", "-ctv")
    {
        Description = "KV cache type of the values: f16, q8_0, q4_0 or f32",
        DefaultValueFactory = _ => KvCacheType.F16,
        CustomParser = ParseCacheType,
    };

    private static KvCacheType ParseCacheType(ArgumentResult result)
    {
        string text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
        if (TryCacheType(text, out var type)) return type;
        result.AddError($"unknown KV cache type '{text}': expected f16, q8_0, q4_0 or f32");
        return KvCacheType.F16;
    }

    /// <summary>llama.cpp's cache type names (case-insensitive).</summary>
    public static bool TryCacheType(string text, out KvCacheType type)
    {
        switch (text.ToLowerInvariant())
        {
            case "f16": type = KvCacheType.F16; return true;
            case "f32": type = KvCacheType.F32; return true;
            case "q8_0": type = KvCacheType.Q8_0; return true;
            case "q4_0": type = KvCacheType.Q4_0; return true;
            default: type = KvCacheType.F16; return false;
        }
    }

    /// <summary>llama.cpp's --context-shift: when the context fills, drop the older half of the tokens and go on.</summary>
    public static Option<bool> ContextShift() => new("--context-shift")
    {
        Description = "When the context is full, drop the older half of the tokens after the kept ones and go on (default: stop with finish reason length)",
    };
}

/// <summary>Parses, runs, and turns every failure into one readable line on stderr with exit code 1.</summary>
internal static class Cli
{
    // Error text is escaped (a message may quote a hostile file or argument) and capped: a safety net above the
    // GGUF reader's own 240-character messages, roomy enough for a template error's excerpt.
    private const int ErrorLineChars = 600;

    public static int Invoke(Command root, string[] args)
    {
        // `sputnik` alone shows what it can do rather than complaining that no command was given.
        var parse = root.Parse(args.Length == 0 ? ["--help"] : args);
        if (parse.Errors.Count > 0)
        {
            // `sputnik bogus` reports the unknown word, not that a command is missing.
            var error = parse.UnmatchedTokens.Count > 0
                ? parse.Errors.FirstOrDefault(e => e.Message.Contains(parse.UnmatchedTokens[0], StringComparison.Ordinal)) ?? parse.Errors[0]
                : parse.Errors[0];
            Console.Error.WriteLine($"error: {Sputnik.Gguf.DisplayText.Safe(error.Message, ErrorLineChars)} (see '{CommandPath(parse.CommandResult)} --help')");
            return 1;
        }
        bool verbose = parse.GetValue(CliOptions.Verbose);
        HubCli.Token = parse.GetValue(CliOptions.Token);
        try
        {
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception ex)
        {
            Console.Out.Flush();
            Console.Error.WriteLine($"error: {Sputnik.Gguf.DisplayText.Safe(Describe(ex), ErrorLineChars)}");
            if (verbose) Console.Error.WriteLine(ex);
            return 1;
        }
    }

    /// <summary>"sputnik train sft" for the command the parser stopped in.</summary>
    private static string CommandPath(CommandResult command)
    {
        var names = new List<string>();
        for (SymbolResult? s = command; s != null; s = s.Parent)
            if (s is CommandResult c) names.Add(c.Command.Name);
        names.Reverse();
        return string.Join(' ', names);
    }

    private static string Describe(Exception ex) => ex switch
    {
        AggregateException { InnerException: { } inner } => Describe(inner),
        FileNotFoundException f => f.Message,
        GgufFormatException or UnsupportedModelException or ArgumentException or ContextOverflowException
            or Sputnik.Templates.TemplateException or System.Text.Json.JsonException or InvalidDataException or NotSupportedException
            or Sputnik.Hub.HubException => ex.Message,
        UnauthorizedAccessException or IOException => ex.Message,
        _ => $"{ex.GetType().Name}: {ex.Message}",
    };
}
