using System.Text.RegularExpressions;

namespace Sputnik.Hub;

/// <summary>
/// A model on a Hugging Face-style hub as a user types it after <c>-m</c>: <c>owner/repo</c>, <c>owner/repo:QUANT</c>,
/// <c>hf.co/owner/repo[:QUANT]</c>, <c>owner/repo/path/in/repo.gguf</c>, any of them with <c>@revision</c> (before or
/// after the quant). This is the one place references are told apart from paths and parsed.
/// </summary>
internal sealed partial record ModelReference(string Owner, string Name, string? Quant, string? FilePath, string? Revision)
{
    public const string DefaultRevision = "main";

    private static readonly string[] Prefixes = ["https://huggingface.co/", "http://huggingface.co/", "huggingface.co/", "hf.co/", "hf://"];

    /// <summary>"owner/repo", the hub's repository id.</summary>
    public string Repo => $"{Owner}/{Name}";

    public string RevisionOrDefault => Revision ?? DefaultRevision;

    /// <summary>The canonical spelling: owner/repo[/path][:QUANT][@revision].</summary>
    public override string ToString() =>
        Repo + (FilePath is { } p ? "/" + p : "") + (Quant is { } q ? ":" + q : "") + (Revision is { } r ? "@" + r : "");

    // Hub repository names: letters, digits, '-', '_', '.', not starting with a separator (the hub allows 96 characters).
    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")]
    private static partial Regex RepoPart();

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    private static partial Regex QuantPattern();

    // Branches, tags and commits; "refs/pr/1" has slashes. No "..", no spaces, no ':' (git forbids it in ref names).
    [GeneratedRegex(@"^[A-Za-z0-9._/-]{1,200}$")]
    private static partial Regex RevisionPattern();

    /// <summary>
    /// Parses <paramref name="text"/> when it is a hub reference. Returns false when it is a local path: an existing
    /// file or folder always wins, as does anything that starts like a path ('/', '.', '~', a drive or a backslash),
    /// and owner/repo/file.gguf whose first folder exists here. Throws <see cref="HubException"/> for text that
    /// can only be a reference (it has the hf.co/ prefix, a quant or a revision) but is malformed.
    /// </summary>
    public static bool TryParse(string text, out ModelReference? reference)
    {
        reference = null;
        if (string.IsNullOrEmpty(text) || File.Exists(text) || Directory.Exists(text)) return false;
        string rest = text;
        bool prefixed = false;
        foreach (string prefix in Prefixes)
        {
            if (!rest.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)) continue;
            rest = rest[prefix.Length..];
            prefixed = true;
            break;
        }
        if (!prefixed && (rest[0] is '/' or '.' or '~' || rest.Contains('\\') || (rest.Length > 1 && rest[1] == ':'))) return false;

        bool marked = prefixed;
        string? revision = null, quant = null;
        int at = rest.IndexOf('@');
        if (at >= 0)
        {
            int end = rest.IndexOf(':', at);
            revision = end < 0 ? rest[(at + 1)..] : rest[(at + 1)..end];
            rest = end < 0 ? rest[..at] : rest[..at] + rest[end..];
            marked = true;
            if (!RevisionPattern().IsMatch(revision) || revision.Contains("..", StringComparison.Ordinal) || revision.StartsWith('/') || revision.EndsWith('/'))
                throw Invalid(text, $"'{revision}' is not a revision (a branch, tag or commit)");
        }
        int colon = rest.LastIndexOf(':');
        if (colon >= 0)
        {
            quant = rest[(colon + 1)..];
            rest = rest[..colon];
            marked = true;
            if (!QuantPattern().IsMatch(quant)) throw Invalid(text, $"'{quant}' is not a quant name (like Q4_K_M)");
        }

        string[] parts = rest.Split('/');
        bool shapeOk = parts.Length >= 2 && RepoPart().IsMatch(parts[0]) && RepoPart().IsMatch(parts[1]);
        string? filePath = parts.Length > 2 ? string.Join('/', parts[2..]) : null;
        if (!shapeOk || (filePath != null && !IsRepoFilePath(filePath)))
        {
            if (!marked) return false;
            throw Invalid(text, "expected owner/repo, owner/repo:QUANT or owner/repo/file.gguf");
        }
        // "dir/model.gguf" that does not exist is a missing file, not a repository called model.gguf.
        if (filePath == null && parts[1].EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) && !marked) return false;
        if (filePath != null && !marked && Directory.Exists(parts[0])) return false;
        if (filePath != null && quant != null) throw Invalid(text, "name either a file or a quant, not both");
        reference = new ModelReference(parts[0], parts[1], quant, filePath, revision);
        return true;
    }

    /// <summary>Parses a reference or throws <see cref="HubException"/> saying what a reference looks like.</summary>
    public static ModelReference Parse(string text) =>
        TryParse(text, out var r) ? r! : throw Invalid(text, "expected owner/repo, owner/repo:QUANT or owner/repo/file.gguf");

    /// <summary>A path inside a repository: '/'-separated names, no empty, '.' or '..' parts, ending in .gguf.</summary>
    private static bool IsRepoFilePath(string path) =>
        path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)
        && path.Split('/').All(p => p.Length > 0 && p != "." && p != ".." && !p.Any(c => char.IsControl(c) || c is '\\' or ':'));

    private static HubException Invalid(string text, string why) =>
        new(HubErrorKind.InvalidReference, $"'{text}' is not a model reference: {why}");
}
