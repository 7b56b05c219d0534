using Sputnik.Gguf;

namespace Sputnik.Hub;

/// <summary>What went wrong talking to the hub or its cache; each kind has one readable message.</summary>
internal enum HubErrorKind
{
    InvalidReference,
    NotFound,
    AccessDenied,
    NoGguf,
    QuantNotFound,
    Offline,
    DiskFull,
    Corrupt,
    Server,
    Interrupted,
}

/// <summary>
/// A model reference could not be resolved or downloaded: an unknown repository or file, a private repository
/// without a token, no GGUF or no such quant in the repository, no network and nothing cached, a full disk, or a
/// download whose bytes do not match the hub's SHA-256. The message is one line that says what to do.
/// </summary>
public sealed class HubException : Exception
{
    internal HubException(HubErrorKind kind, string message, Exception? inner = null) : base(DisplayText.Safe(message, 400), inner) => Kind = kind;

    internal HubErrorKind Kind { get; }
}
