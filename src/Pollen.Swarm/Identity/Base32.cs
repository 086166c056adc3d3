namespace Pollen.Swarm.Identity;

/// <summary>RFC 4648 base32, lowercase, without padding: readable, case-insensitive, safe in file names and URLs.</summary>
internal static class Base32
{
    private const string Alphabet = "abcdefghijklmnopqrstuvwxyz234567";

    public static string Encode(ReadOnlySpan<byte> data)
    {
        var chars = new char[(data.Length * 8 + 4) / 5];
        var buffer = 0;
        var bits = 0;
        var n = 0;
        foreach (var b in data)
        {
            buffer = (buffer << 8) | b;
            bits += 8;
            while (bits >= 5)
            {
                chars[n++] = Alphabet[(buffer >> (bits - 5)) & 31];
                bits -= 5;
            }
        }
        if (bits > 0)
        {
            chars[n++] = Alphabet[(buffer << (5 - bits)) & 31];
        }
        return new string(chars, 0, n);
    }

    /// <summary>Decodes into exactly <paramref name="destination"/>.Length bytes; false on a bad character,
    /// a wrong length, or non-zero padding bits (so every id has exactly one spelling).</summary>
    public static bool TryDecode(ReadOnlySpan<char> text, Span<byte> destination)
    {
        if (text.Length != (destination.Length * 8 + 4) / 5)
        {
            return false;
        }
        var buffer = 0;
        var bits = 0;
        var n = 0;
        foreach (var c in text)
        {
            int v = c switch
            {
                >= 'a' and <= 'z' => c - 'a',
                >= 'A' and <= 'Z' => c - 'A',
                >= '2' and <= '7' => c - '2' + 26,
                _ => -1,
            };
            if (v < 0)
            {
                return false;
            }
            buffer = ((buffer << 5) | v) & 0xFFFF;
            bits += 5;
            if (bits >= 8)
            {
                if (n == destination.Length)
                {
                    return false;
                }
                destination[n++] = (byte)(buffer >> (bits - 8));
                bits -= 8;
            }
        }
        return n == destination.Length && (buffer & ((1 << bits) - 1)) == 0;
    }
}
