using System.Text.Encodings.Web;
using System.Text.Json;

namespace Sputnik.Cli;

internal static class JsonOutput
{
    /// <summary>Compact JSON that keeps non-ASCII text readable instead of \u-escaping it.</summary>
    public static readonly JsonSerializerOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static readonly JsonSerializerOptions Indented = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, WriteIndented = true };
}
