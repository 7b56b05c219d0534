namespace Sputnik.Gguf;

/// <summary>
/// A GGUF file that is corrupt, truncated or hostile. The message names what is wrong and where; text from the file
/// in it is escaped and the whole is capped (<see cref="DisplayText"/>), so it is safe to print however hostile the file.
/// </summary>
public sealed class GgufFormatException(string message) : Exception(DisplayText.Safe(message));
