namespace Sputnik.Cli;

/// <summary>
/// Where the model used without -m comes from. TODO(training issue): Sputnik will ship a model it trained
/// itself; until then the user must pass -m, or set SPUTNIK_MODEL.
/// </summary>
internal static class DefaultModel
{
    public static string? Path() => Environment.GetEnvironmentVariable("SPUTNIK_MODEL") is { Length: > 0 } p ? p : null;
}
