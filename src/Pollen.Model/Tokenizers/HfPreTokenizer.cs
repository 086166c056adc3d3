using System.Text.Json;
using System.Text.RegularExpressions;

namespace Pollen.Model.Tokenizers;

/// <summary>
/// The <c>pre_tokenizer</c> section of a <c>tokenizer.json</c>: splits normalized text into pieces that
/// BPE merges never cross. Supports <c>Sequence</c>, <c>ByteLevel</c> (GPT-2 style, including its
/// built-in regex), <c>Split</c> (all five delimiter behaviors, <c>invert</c>), <c>Metaspace</c>
/// (SentencePiece "▁") and <c>Digits</c>.
/// </summary>
internal sealed partial class HfPreTokenizer
{
    private const string Supported = "Sequence, ByteLevel, Split, Metaspace, Digits";
    private readonly List<Func<Piece, IEnumerable<Piece>>> _stages = [];

    private HfPreTokenizer()
    {
    }

    private enum Behavior
    {
        Removed,
        Isolated,
        MergedWithPrevious,
        MergedWithNext,
        Contiguous,
    }

    /// <summary>Builds the pre-tokenizer; an absent section yields one that keeps the text whole.</summary>
    public static HfPreTokenizer Parse(JsonElement? section)
    {
        var preTokenizer = new HfPreTokenizer();
        if (section is not null)
        {
            preTokenizer.Add(section.Value, "pre_tokenizer");
        }

        return preTokenizer;
    }

    /// <summary>
    /// Splits a normalized segment. <paramref name="atTextStart"/> says whether the segment begins the whole
    /// input (Metaspace's <c>prepend_scheme: "first"</c> adds "▁" only there).
    /// </summary>
    public List<string> Split(string text, bool atTextStart)
    {
        List<Piece> pieces = [new Piece(text, atTextStart)];
        foreach (var stage in _stages)
        {
            var next = new List<Piece>(pieces.Count * 2);
            foreach (var piece in pieces)
            {
                next.AddRange(stage(piece));
            }

            pieces = next;
        }

        var result = new List<string>(pieces.Count);
        foreach (var piece in pieces)
        {
            if (piece.Text.Length > 0)
            {
                result.Add(piece.Text);
            }
        }

        return result;
    }

    private void Add(JsonElement node, string where)
    {
        var type = HfJson.RequireType(node, where);
        switch (type)
        {
            case "Sequence":
                var i = 0;
                foreach (var child in HfJson.GetArray(node, "pretokenizers", where))
                {
                    Add(child, $"{where}.pretokenizers[{i++}]");
                }

                break;
            case "ByteLevel":
                AddByteLevel(node, where);
                break;
            case "Split":
                var regex = HfJson.GetPattern(node, "pattern", where);
                var behaviorName = HfJson.GetString(node, "behavior", where) ?? nameof(Behavior.Isolated);
                if (!Enum.TryParse<Behavior>(behaviorName, ignoreCase: false, out var behavior))
                {
                    throw HfJson.Invalid(where, "behavior", $"'{behaviorName}' is not one of {string.Join(", ", Enum.GetNames<Behavior>())}");
                }

                var invert = HfJson.GetBool(node, "invert", false, where);
                _stages.Add(p => SplitPiece(p, regex, behavior, invert));
                break;
            case "Metaspace":
                AddMetaspace(node, where);
                break;
            case "Digits":
                var digits = HfJson.GetBool(node, "individual_digits", false, where) ? SingleDigit() : DigitRun();
                _stages.Add(p => SplitPiece(p, digits, Behavior.Isolated, invert: false));
                break;
            default:
                throw HfJson.Unsupported(where, type, Supported);
        }
    }

    /// <summary>
    /// Hugging Face's ByteLevel: optional leading space, GPT-2 regex split, then each piece's UTF-8 bytes
    /// written in the byte alphabet (so later stages and the vocabulary see "Ġ" for a space).
    /// </summary>
    private void AddByteLevel(JsonElement node, string where)
    {
        var addPrefixSpace = HfJson.GetBool(node, "add_prefix_space", true, where);
        var useRegex = HfJson.GetBool(node, "use_regex", true, where);
        _stages.Add(p =>
        {
            var piece = addPrefixSpace && !p.Text.StartsWith(' ') ? p with { Text = " " + p.Text } : p;
            var pieces = useRegex ? SplitPiece(piece, Gpt2Regex(), Behavior.Isolated, invert: false) : [piece];
            return pieces.ConvertAll(q => q with { Text = ByteLevelAlphabet.Encode(q.Text) });
        });
    }

    private void AddMetaspace(JsonElement node, string where)
    {
        var replacement = HfJson.GetString(node, "replacement", where) ?? "▁";
        if (replacement.Length != 1)
        {
            throw HfJson.Invalid(where, "replacement", "must be a single character");
        }

        // Older files say add_prefix_space: bool; newer ones prepend_scheme: always | first | never.
        var scheme = HfJson.GetString(node, "prepend_scheme", where)
            ?? (HfJson.GetBool(node, "add_prefix_space", true, where) ? "always" : "never");
        if (scheme is not ("always" or "first" or "never"))
        {
            throw HfJson.Invalid(where, "prepend_scheme", $"'{scheme}' is not one of always, first, never");
        }

        var split = HfJson.GetBool(node, "split", true, where);
        var delimiter = new Regex(Regex.Escape(replacement), RegexOptions.CultureInvariant);
        _stages.Add(p =>
        {
            var text = p.Text.Replace(' ', replacement[0]);
            var prepend = scheme == "always" || (scheme == "first" && p.AtTextStart);
            if (prepend && !text.StartsWith(replacement[0]))
            {
                text = replacement + text;
            }

            var piece = p with { Text = text };
            return split ? SplitPiece(piece, delimiter, Behavior.MergedWithNext, invert: false) : [piece];
        });
    }

    /// <summary>Splits like Hugging Face's <c>NormalizedString::split</c>: matches are delimiters, handled per <paramref name="behavior"/>.</summary>
    private static List<Piece> SplitPiece(Piece piece, Regex regex, Behavior behavior, bool invert)
    {
        var text = piece.Text;
        var spans = new List<(int Start, int End, bool IsDelimiter)>();
        var position = 0;
        foreach (var match in regex.EnumerateMatches(text))
        {
            if (match.Length == 0)
            {
                continue;
            }

            if (match.Index > position)
            {
                spans.Add((position, match.Index, invert));
            }

            spans.Add((match.Index, match.Index + match.Length, !invert));
            position = match.Index + match.Length;
        }

        if (position < text.Length)
        {
            spans.Add((position, text.Length, invert));
        }

        var merged = Merge(spans, behavior);
        var result = new List<Piece>(merged.Count);
        foreach (var (start, end) in merged)
        {
            result.Add(new Piece(text[start..end], piece.AtTextStart && start == 0));
        }

        return result;
    }

    private static List<(int Start, int End)> Merge(List<(int Start, int End, bool IsDelimiter)> spans, Behavior behavior)
    {
        var result = new List<(int Start, int End)>(spans.Count);
        switch (behavior)
        {
            case Behavior.Removed:
                foreach (var s in spans)
                {
                    if (!s.IsDelimiter)
                    {
                        result.Add((s.Start, s.End));
                    }
                }

                break;
            case Behavior.Isolated:
                foreach (var s in spans)
                {
                    result.Add((s.Start, s.End));
                }

                break;
            case Behavior.MergedWithPrevious:
                var previousDelimiter = false;
                foreach (var s in spans)
                {
                    if (s.IsDelimiter && !previousDelimiter && result.Count > 0)
                    {
                        result[^1] = (result[^1].Start, s.End);
                    }
                    else
                    {
                        result.Add((s.Start, s.End));
                    }

                    previousDelimiter = s.IsDelimiter;
                }

                break;
            case Behavior.MergedWithNext:
                var nextDelimiter = false;
                for (var i = spans.Count - 1; i >= 0; i--)
                {
                    var s = spans[i];
                    if (s.IsDelimiter && !nextDelimiter && result.Count > 0)
                    {
                        result[^1] = (s.Start, result[^1].End);
                    }
                    else
                    {
                        result.Add((s.Start, s.End));
                    }

                    nextDelimiter = s.IsDelimiter;
                }

                result.Reverse();
                break;
            case Behavior.Contiguous:
                var previous = false;
                foreach (var s in spans)
                {
                    if (result.Count > 0 && s.IsDelimiter == previous)
                    {
                        result[^1] = (result[^1].Start, s.End);
                    }
                    else
                    {
                        result.Add((s.Start, s.End));
                    }

                    previous = s.IsDelimiter;
                }

                break;
        }

        return result;
    }

    /// <summary>The regex GPT-2's ByteLevel pre-tokenizer splits with when <c>use_regex</c> is true.</summary>
    [GeneratedRegex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", RegexOptions.CultureInvariant, 30_000)]
    private static partial Regex Gpt2Regex();

    [GeneratedRegex(@"\p{N}", RegexOptions.CultureInvariant)]
    private static partial Regex SingleDigit();

    [GeneratedRegex(@"\p{N}+", RegexOptions.CultureInvariant)]
    private static partial Regex DigitRun();

    private readonly record struct Piece(string Text, bool AtTextStart);
}
