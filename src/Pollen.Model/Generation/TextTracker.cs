using Pollen.Model.Tokenizers;

namespace Pollen.Model.Generation;

/// <summary>
/// Tracks the text of generated tokens and decides how much of it is final. Decodes prompt+output and
/// subtracts the prompt's text, so tokenizers that drop a leading space at the start of a text still
/// give the right spacing.
/// </summary>
internal sealed class TextTracker
{
    private readonly ITokenizer? _tokenizer;
    private readonly List<int> _ids;
    private readonly int _promptTextLength;
    private readonly IReadOnlyList<string> _stops;
    private readonly int _maxStop;
    private string _text = "";
    private int _released;

    public TextTracker(ITokenizer? tokenizer, IReadOnlyList<int> promptIds, IReadOnlyList<string> stops)
    {
        _tokenizer = tokenizer;
        // a few prompt tokens of context are enough for spacing rules
        _ids = [.. promptIds.Skip(Math.Max(0, promptIds.Count - 8))];
        _promptTextLength = tokenizer is null ? 0 : tokenizer.Decode(_ids.ToArray()).Length;
        _stops = stops;
        _maxStop = stops.Count == 0 ? 0 : stops.Max(s => s.Length);
    }

    /// <summary>Adds a token; returns the newly final text and whether a stop string was reached.</summary>
    public (string Delta, bool Stopped) Add(int id)
    {
        if (_tokenizer is null)
        {
            return ("", false);
        }
        _ids.Add(id);
        var full = _tokenizer.Decode(_ids.ToArray());
        _text = full.Length >= _promptTextLength ? full[_promptTextLength..] : "";
        var stable = _text.TrimEnd('\uFFFD').Length; // an incomplete character may still complete
        foreach (var stop in _stops)
        {
            var from = Math.Max(0, _released - stop.Length);
            var at = _text.IndexOf(stop, from, StringComparison.Ordinal);
            if (at >= 0 && at < stable)
            {
                return (Release(Math.Max(at, _released)), true);
            }
        }
        var hold = 0;
        for (var len = Math.Min(_maxStop - 1, stable); len > 0 && hold == 0; len--)
        {
            var tail = _text.AsSpan(stable - len, len);
            foreach (var stop in _stops)
            {
                if (stop.AsSpan().StartsWith(tail, StringComparison.Ordinal))
                {
                    hold = len;
                    break;
                }
            }
        }
        return (Release(Math.Max(_released, stable - hold)), false);
    }

    /// <summary>Releases everything not yet released (at the end of generation).</summary>
    public string Flush() => Release(_text.Length);

    private string Release(int upTo)
    {
        var delta = upTo > _released ? _text[_released..upTo] : "";
        _released = Math.Max(_released, upTo);
        return delta;
    }
}
