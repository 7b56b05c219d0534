using Sputnik.Gguf;
using Sputnik.Models;

namespace Sputnik.Tokenizers;

internal sealed partial record TokenizerData
{
    /// <summary>Reads the <c>tokenizer.ggml.*</c> keys of a GGUF file.</summary>
    public static TokenizerData FromGguf(string path)
    {
        using var f = GgufFile.Open(path);
        return FromGguf(f);
    }

    /// <summary>Reads the <c>tokenizer.ggml.*</c> keys of an open GGUF file.</summary>
    public static TokenizerData FromGguf(GgufFile f)
    {
        ArgumentNullException.ThrowIfNull(f);
        const string p = GgufKeys.TokenizerPrefix;
        string model = f.GetString(p + "model");
        if (!f.TryGetStringArray(p + "tokens", out var tokens) || tokens == null)
            throw new GgufFormatException($"{f.Path}: metadata '{p}tokens' is missing");
        if (tokens.Length == 0) throw new GgufFormatException($"{f.Path}: metadata '{p}tokens' is empty");
        f.TryGetFloatArray(p + "scores", out var scores);
        f.TryGetIntArray(p + "token_type", out var types);
        // One score and one type per token: say which key is short rather than fail later on an index.
        if (scores != null && scores.Length != tokens.Length)
            throw new GgufFormatException($"{f.Path}: metadata '{p}scores' has {scores.Length} entries for {tokens.Length} tokens");
        if (types != null && types.Length != tokens.Length)
            throw new GgufFormatException($"{f.Path}: metadata '{p}token_type' has {types.Length} entries for {tokens.Length} tokens");
        f.TryGetStringArray(p + "merges", out var merges);
        if (model == "gpt2" && merges == null)
            throw new GgufFormatException($"{f.Path}: metadata '{p}merges' is missing (a gpt2 tokenizer needs its merges)");
        f.TryGetString(p + "pre", out var pre);

        int? Id(string key) => f.TryGetUInt32(p + key, out uint v) ? (int)v : null;
        bool? Flag(string key) => f.TryGetBool(p + key, out bool b) ? b : null;

        return new TokenizerData
        {
            Model = model,
            Pre = pre,
            Tokens = tokens,
            Scores = scores,
            TokenTypes = types,
            Merges = merges,
            BosId = Id("bos_token_id"),
            EosId = Id("eos_token_id"),
            UnknownId = Id("unknown_token_id"),
            PadId = Id("padding_token_id"),
            EotId = Id("eot_token_id"),
            EomId = Id("eom_token_id"),
            AddBos = Flag("add_bos_token"),
            AddEos = Flag("add_eos_token"),
            AddSpacePrefix = Flag("add_space_prefix"),
            SepId = Id("seperator_token_id"),
            Lowercase = Flag("normalizer.lowercase"),
            StripAccents = Flag("normalizer.strip_accents"),
            StripSpaceAfterSpecials = f.GetStringOrNull(GgufKeys.GeneralName)?.ToLowerInvariant() is { } name && (name.Contains("phi-3") || name.Contains("phi3")),
        };
    }

    /// <summary>
    /// Writes the <c>tokenizer.ggml.*</c> keys — the exact inverse of <see cref="FromGguf(GgufFile)"/>, so every
    /// writer (synth, convert, training export) stores a tokenizer the same way. Missing token types default to normal.
    /// </summary>
    public void WriteTo(GgufWriter w)
    {
        ArgumentNullException.ThrowIfNull(w);
        const string p = GgufKeys.TokenizerPrefix;
        w.Set(p + "model", Model);
        if (Pre != null) w.Set(p + "pre", Pre);
        w.Set(p + "tokens", Tokens);
        if (Scores != null) w.Set(p + "scores", Scores);
        w.Set(p + "token_type", TokenTypes ?? Enumerable.Repeat((int)TokenType.Normal, Tokens.Length).ToArray());
        if (Merges != null) w.Set(p + "merges", Merges);
        void Id(string key, int? v) { if (v is { } id) w.Set(p + key, (uint)id); }
        void Flag(string key, bool? v) { if (v is { } b) w.Set(p + key, b); }
        Id("bos_token_id", BosId);
        Id("eos_token_id", EosId);
        Id("unknown_token_id", UnknownId);
        Id("padding_token_id", PadId);
        Id("eot_token_id", EotId);
        Id("eom_token_id", EomId);
        Flag("add_bos_token", AddBos);
        Flag("add_eos_token", AddEos);
        Flag("add_space_prefix", AddSpacePrefix);
        Id("seperator_token_id", SepId);
        Flag("normalizer.lowercase", Lowercase);
        Flag("normalizer.strip_accents", StripAccents);
    }
}
