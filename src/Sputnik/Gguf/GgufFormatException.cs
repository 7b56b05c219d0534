namespace Sputnik.Gguf;

/// <summary>A GGUF file that is corrupt, truncated or hostile. The message names what is wrong and where.</summary>
public sealed class GgufFormatException(string message) : Exception(message);
