using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace Pollen.Model.Tokenizers;

/// <summary>
/// The <c>decoder</c> section of a <c>tokenizer.json</c>: a chain that turns token strings back into text,
/// mirroring Hugging Face's <c>decode_chain</c>. Supports <c>Sequence</c>, <c>ByteLevel</c>,
/// <c>Metaspace</c>, <c>Replace</c>, <c>ByteFallback</c>, <c>Fuse</c> and <c>Strip</c>.
/// </summary>
/// <remarks>
/// One deliberate difference: invalid UTF-8 (from <c>ByteLevel</c> or <c>ByteFallback</c> bytes) becomes
/// one U+FFFD per maximal invalid sequence (.NET's rule) rather than one per byte, so a character cut
/// off at the end of a stream shows as a single U+FFFD, as <see cref="ITokenizer.Decode"/> promises.
/// </remarks>
internal sealed class HfDecoder
{
    private const string Supported = "Sequence, ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip";
    private readonly List<Func<List<string>, List<string>>> _steps = [];

    private HfDecoder()
    {
    }

    /// <summary>Builds the decoder; an absent section concatenates the tokens unchanged.</summary>
    public static HfDecoder Parse(JsonElement? section)
    {
        var decoder = new HfDecoder();
        if (section is not null)
        {
            decoder.Add(section.Value, "decoder");
        }

        return decoder;
    }

    public string Decode(List<string> tokens)
    {
        foreach (var step in _steps)
        {
            tokens = step(tokens);
        }

        return string.Concat(tokens);
    }

    private void Add(JsonElement node, string where)
    {
        var type = HfJson.RequireType(node, where);
        switch (type)
        {
            case "Sequence":
                var i = 0;
                foreach (var child in HfJson.GetArray(node, "decoders", where))
                {
                    Add(child, $"{where}.decoders[{i++}]");
                }

                break;
            case "ByteLevel":
                _steps.Add(DecodeByteLevel);
                break;
            case "Metaspace":
                AddMetaspace(node, where);
                break;
            case "Replace":
                var pattern = HfJson.GetPattern(node, "pattern", where);
                var content = HfJson.RequireString(node, "content", where).Replace("$", "$$", StringComparison.Ordinal);
                _steps.Add(tokens => tokens.ConvertAll(t => pattern.Replace(t, content)));
                break;
            case "ByteFallback":
                _steps.Add(DecodeByteFallback);
                break;
            case "Fuse":
                _steps.Add(tokens => [string.Concat(tokens)]);
                break;
            case "Strip":
                AddStrip(node, where);
                break;
            default:
                throw HfJson.Unsupported(where, type, Supported);
        }
    }

    private void AddMetaspace(JsonElement node, string where)
    {
        var replacement = HfJson.GetString(node, "replacement", where) ?? "▁";
        var scheme = HfJson.GetString(node, "prepend_scheme", where)
            ?? (HfJson.GetBool(node, "add_prefix_space", true, where) ? "always" : "never");
        // As in Hugging Face, the first token loses every replacement char (not only a leading one).
        var dropInFirst = scheme != "never";
        _steps.Add(tokens =>
        {
            var result = new List<string>(tokens.Count);
            for (var i = 0; i < tokens.Count; i++)
            {
                result.Add(tokens[i].Replace(replacement, i == 0 && dropInFirst ? "" : " ", StringComparison.Ordinal));
            }

            return result;
        });
    }

    private void AddStrip(JsonElement node, string where)
    {
        var content = HfJson.GetString(node, "content", where) ?? " ";
        if (content.Length != 1)
        {
            throw HfJson.Invalid(where, "content", "must be a single character");
        }

        var start = HfJson.GetInt(node, "start", 0, where);
        var stop = HfJson.GetInt(node, "stop", 0, where);
        _steps.Add(tokens => tokens.ConvertAll(t =>
        {
            var from = 0;
            while (from < start && from < t.Length && t[from] == content[0])
            {
                from++;
            }

            var to = t.Length;
            while (t.Length - to < stop && to > from && t[to - 1] == content[0])
            {
                to--;
            }

            return t[from..to];
        }));
    }

    private static List<string> DecodeByteLevel(List<string> tokens)
    {
        var bytes = new List<byte>();
        foreach (var token in tokens)
        {
            ByteLevelAlphabet.AppendBytes(token, bytes);
        }

        return [Encoding.UTF8.GetString(CollectionsMarshal.AsSpan(bytes))];
    }

    /// <summary>Turns runs of <c>&lt;0xHH&gt;</c> tokens back into the text their bytes encode.</summary>
    private static List<string> DecodeByteFallback(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        var pending = new List<byte>();
        foreach (var token in tokens)
        {
            if (TryParseByteToken(token, out var b))
            {
                pending.Add(b);
                continue;
            }

            Flush();
            result.Add(token);
        }

        Flush();
        return result;

        void Flush()
        {
            if (pending.Count > 0)
            {
                result.Add(Encoding.UTF8.GetString(CollectionsMarshal.AsSpan(pending)));
                pending.Clear();
            }
        }
    }

    /// <summary>Parses a SentencePiece byte token such as <c>&lt;0x41&gt;</c>.</summary>
    public static bool TryParseByteToken(string token, out byte value)
    {
        value = 0;
        return token.Length == 6
            && token.StartsWith("<0x", StringComparison.Ordinal)
            && token[5] == '>'
            && byte.TryParse(token.AsSpan(3, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
    }
}
