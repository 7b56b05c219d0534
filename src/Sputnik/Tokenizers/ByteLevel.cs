namespace Sputnik.Tokenizers;

/// <summary>GPT-2's reversible byte ↔ printable-character mapping used by byte-level BPE vocabularies.</summary>
internal static class ByteLevel
{
    private static readonly char[] s_byteToChar = BuildByteToChar();
    private static readonly Dictionary<char, byte> s_charToByte = BuildCharToByte();

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }

    private static Dictionary<char, byte> BuildCharToByte()
    {
        var d = new Dictionary<char, byte>(256);
        for (int b = 0; b < 256; b++) d[s_byteToChar[b]] = (byte)b;
        return d;
    }

    /// <summary>The printable character standing for <paramref name="b"/>.</summary>
    public static char ByteToChar(byte b) => s_byteToChar[b];

    /// <summary>The byte a mapped character stands for, or false when <paramref name="c"/> is not in the mapping.</summary>
    public static bool TryCharToByte(char c, out byte b) => s_charToByte.TryGetValue(c, out b);

    /// <summary>Maps UTF-8 bytes to their printable-character form.</summary>
    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        var chars = bytes.Length <= 256 ? stackalloc char[bytes.Length] : new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = s_byteToChar[bytes[i]];
        return new string(chars);
    }

    /// <summary>
    /// Maps a byte-level token string back to raw bytes. Characters outside the mapping are kept as their UTF-8.
    /// </summary>
    public static byte[] Decode(ReadOnlySpan<char> text)
    {
        var output = new List<byte>(text.Length);
        Span<byte> buf = stackalloc byte[4];
        for (int i = 0; i < text.Length; i++)
        {
            if (s_charToByte.TryGetValue(text[i], out byte b)) { output.Add(b); continue; }
            int len = char.IsHighSurrogate(text[i]) && i + 1 < text.Length
                ? System.Text.Encoding.UTF8.GetBytes(text.Slice(i++, 2), buf)
                : System.Text.Encoding.UTF8.GetBytes(text.Slice(i, 1), buf);
            for (int k = 0; k < len; k++) output.Add(buf[k]);
        }
        return output.ToArray();
    }
}
