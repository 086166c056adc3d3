using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Pollen.Model.Tokenizers;

/// <summary>
/// The <c>normalizer</c> section of a <c>tokenizer.json</c>: a chain of string rewrites applied to each
/// piece of text between added tokens. Supports the normalizers BPE tokenizers use: <c>Sequence</c>,
/// <c>Prepend</c> and <c>Replace</c> (SentencePiece-style "▁"), <c>NFC</c>/<c>NFD</c>/<c>NFKC</c>/<c>NFKD</c>,
/// <c>Lowercase</c> and <c>Strip</c>.
/// </summary>
internal sealed class HfNormalizer
{
    private const string Supported = "Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD, Lowercase, Strip";
    private readonly List<Func<string, string>> _steps = [];

    private HfNormalizer()
    {
    }

    /// <summary>Builds the normalizer, or returns null when the section is absent.</summary>
    public static HfNormalizer? Parse(JsonElement? section)
    {
        if (section is null)
        {
            return null;
        }

        var normalizer = new HfNormalizer();
        normalizer.Add(section.Value, "normalizer");
        return normalizer;
    }

    public string Normalize(string text)
    {
        foreach (var step in _steps)
        {
            text = step(text);
        }

        return text;
    }

    private void Add(JsonElement node, string where)
    {
        var type = HfJson.RequireType(node, where);
        switch (type)
        {
            case "Sequence":
                var i = 0;
                foreach (var child in HfJson.GetArray(node, "normalizers", where))
                {
                    Add(child, $"{where}.normalizers[{i++}]");
                }

                break;
            case "Prepend":
                var prefix = HfJson.RequireString(node, "prepend", where);
                _steps.Add(s => s.Length == 0 ? s : prefix + s);
                break;
            case "Replace":
                var pattern = HfJson.GetPattern(node, "pattern", where);
                var content = HfJson.RequireString(node, "content", where);
                _steps.Add(s => pattern.Replace(s, content.Replace("$", "$$", StringComparison.Ordinal)));
                break;
            case "NFC":
                _steps.Add(s => s.Normalize(NormalizationForm.FormC));
                break;
            case "NFD":
                _steps.Add(s => s.Normalize(NormalizationForm.FormD));
                break;
            case "NFKC":
                _steps.Add(s => s.Normalize(NormalizationForm.FormKC));
                break;
            case "NFKD":
                _steps.Add(s => s.Normalize(NormalizationForm.FormKD));
                break;
            case "Lowercase":
                _steps.Add(s => s.ToLower(CultureInfo.InvariantCulture));
                break;
            case "Strip":
                var left = HfJson.GetBool(node, "strip_left", true, where);
                var right = HfJson.GetBool(node, "strip_right", true, where);
                _steps.Add(s => left && right ? s.Trim() : left ? s.TrimStart() : right ? s.TrimEnd() : s);
                break;
            default:
                throw HfJson.Unsupported(where, type, Supported);
        }
    }
}
