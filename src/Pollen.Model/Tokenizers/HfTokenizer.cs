using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Pollen.Model.Tokenizers;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> BPE tokenizer: byte-level BPE (GPT-2, Llama 3, Qwen) and
/// SentencePiece-style BPE with <c>byte_fallback</c> (Llama 1/2, Mistral, TinyLlama). Immutable and
/// thread-safe once loaded.
/// </summary>
/// <remarks>
/// <para>
/// The pipeline follows Hugging Face's: split off added tokens, normalize each remaining segment,
/// pre-tokenize it into pieces, run BPE on each piece, and on decode run the <c>decoder</c> chain.
/// The BPE merges themselves (rank-ordered merging and its word cache) are Microsoft.ML.Tokenizers'
/// <see cref="BpeTokenizer"/>, built from the file's vocab and merges. ML.Tokenizers 2.0.1 cannot read
/// <c>tokenizer.json</c> itself, has no <c>byte_fallback</c> or <c>ignore_merges</c>, and only yields
/// regex matches (not the text between them), so those parts are implemented here
/// (<see cref="HfNormalizer"/>, <see cref="HfPreTokenizer"/>, <see cref="HfDecoder"/>).
/// </para>
/// <para>
/// BPE runs on pieces cut at positions no vocabulary token spans. Merging can never cross such a
/// position, so the ids are unchanged, while SentencePiece-style text (which has no pre-tokenizer)
/// no longer reaches BPE as one long word, which ML.Tokenizers handles in quadratic time.
/// </para>
/// <para>
/// Not supported: model types other than BPE, <c>continuing_subword_prefix</c>/<c>end_of_word_suffix</c>,
/// <c>dropout</c> (ignored: it only matters in training), and the <c>single_word</c>/<c>normalized</c>
/// flags of added tokens (added tokens are matched in the raw text, honouring <c>lstrip</c>/<c>rstrip</c>).
/// </para>
/// </remarks>
public sealed partial class HfTokenizer : ITokenizer
{
    private readonly BpeTokenizer _bpe;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocab;
    private readonly string?[] _idToToken;
    private readonly bool[] _isSpecial;
    private readonly Dictionary<string, AddedToken> _addedTokens;
    private readonly Regex? _addedTokenRegex;
    private readonly Regex? _nonSpecialAddedTokenRegex;
    private readonly HfNormalizer? _normalizer;
    private readonly HfPreTokenizer _preTokenizer;
    private readonly HfDecoder _decoder;
    private readonly bool _ignoreMerges;
    private readonly bool _fuseUnknown;
    private readonly int[]? _byteFallbackIds;
    private readonly HashSet<uint> _innerPairs;

    /// <inheritdoc />
    public int VocabSize => _idToToken.Length;

    /// <inheritdoc />
    public int? BosId { get; }

    /// <inheritdoc />
    public int? EosId { get; }

    /// <summary>Text of the beginning-of-sequence token (e.g. <c>&lt;s&gt;</c>), or null.</summary>
    public string? BosToken { get; }

    /// <summary>Text of the end-of-sequence token (e.g. <c>&lt;/s&gt;</c>), or null.</summary>
    public string? EosToken { get; }

    /// <summary>
    /// Whether the model expects <see cref="BosId"/> in front of a prompt, as Hugging Face adds it with
    /// <c>add_special_tokens=True</c>: <c>add_bos_token</c> from <c>tokenizer_config.json</c>, else whether
    /// the <c>post_processor</c> template starts with the BOS token. <see cref="Encode(string)"/> never adds it.
    /// </summary>
    public bool AddBosToken { get; }

    /// <summary>Encodes text, recognizing added tokens (e.g. <c>&lt;|im_start|&gt;</c>) as Hugging Face does.</summary>
    public int[] Encode(string text) => Encode(text, parseSpecialTokens: true);

    /// <summary>
    /// Encodes text. With <paramref name="parseSpecialTokens"/> false, special added tokens in the text
    /// are encoded as ordinary text, so untrusted input cannot inject control tokens (Hugging Face's
    /// <c>split_special_tokens=True</c>); non-special added tokens are still recognized.
    /// </summary>
    public int[] Encode(string text, bool parseSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(text);
        text = ReplaceLoneSurrogates(text);
        var ids = new List<int>((text.Length / 3) + 1);
        var regex = parseSpecialTokens ? _addedTokenRegex : _nonSpecialAddedTokenRegex;
        var position = 0;
        var match = regex?.Match(text);
        while (match is { Success: true })
        {
            var token = _addedTokens[match.Value];
            var start = match.Index;
            var end = start + match.Length;
            while (token.LStrip && start > position && char.IsWhiteSpace(text[start - 1]))
            {
                start--;
            }

            while (token.RStrip && end < text.Length && char.IsWhiteSpace(text[end]))
            {
                end++;
            }

            EncodeSegment(text, position, start, ids);
            ids.Add(token.Id);
            position = end;
            match = regex!.Match(text, end);
        }

        EncodeSegment(text, position, text.Length, ids);
        return [.. ids];
    }

    /// <inheritdoc />
    public string Decode(ReadOnlySpan<int> ids) => Decode(ids, skipSpecialTokens: true);

    /// <summary>Decodes ids; unknown ids are skipped, special tokens unless <paramref name="skipSpecialTokens"/> is false.</summary>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens)
    {
        var tokens = new List<string>(ids.Length);
        foreach (var id in ids)
        {
            if ((uint)id >= (uint)_idToToken.Length || _idToToken[id] is not { } token || (skipSpecialTokens && _isSpecial[id]))
            {
                continue;
            }

            tokens.Add(token);
        }

        return _decoder.Decode(tokens);
    }

    /// <summary>The id of a vocabulary or added token given its exact text, or null.</summary>
    public int? TokenToId(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        return _addedTokens.TryGetValue(token, out var added) ? added.Id
            : _vocab.TryGetValue(token, out var id) ? id
            : null;
    }

    /// <summary>The text of a token id as stored in the vocabulary (byte-level tokens show 'Ġ' etc.), or null.</summary>
    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    /// <summary>True for ids of added tokens marked <c>special</c> (skipped by <see cref="Decode(ReadOnlySpan{int})"/>).</summary>
    public bool IsSpecialToken(int id) => (uint)id < (uint)_isSpecial.Length && _isSpecial[id];

    private void EncodeSegment(string text, int start, int end, List<int> ids)
    {
        if (end <= start)
        {
            return;
        }

        var segment = text[start..end];
        if (_normalizer is not null)
        {
            segment = _normalizer.Normalize(segment);
        }

        foreach (var piece in _preTokenizer.Split(segment, atTextStart: start == 0))
        {
            EncodePiece(piece, ids);
        }
    }

    /// <summary>BPE on one pre-tokenized piece, with <c>ignore_merges</c> and <c>byte_fallback</c>.</summary>
    private void EncodePiece(string piece, List<int> ids)
    {
        if (_ignoreMerges && _vocab.TryGetValue(piece, out var whole))
        {
            ids.Add(whole);
            return;
        }

        var span = piece.AsSpan();
        var runStart = 0;
        var previousKnown = true;
        for (var i = 0; i < span.Length;)
        {
            var length = char.IsHighSurrogate(span[i]) && i + 1 < span.Length && char.IsLowSurrogate(span[i + 1]) ? 2 : 1;
            var symbol = span.Slice(i, length);
            var known = _vocab.ContainsKey(symbol);
            if (!known && _byteFallbackIds is not null && CanFallBackToBytes(symbol))
            {
                Merge(span[runStart..i], ids);
                AppendByteFallback(symbol, ids);
                runStart = i + length;
            }
            else if (i > runStart && !_innerPairs.Contains(Pair(span[i - 1], span[i])) && !(_fuseUnknown && !known && !previousKnown))
            {
                Merge(span[runStart..i], ids);
                runStart = i;
            }

            previousKnown = known;
            i += length;
        }

        Merge(span[runStart..], ids);
    }

    private void Merge(ReadOnlySpan<char> run, List<int> ids)
    {
        if (!run.IsEmpty)
        {
            ids.AddRange(_bpe.EncodeToIds(run, considerPreTokenization: false, considerNormalization: false));
        }
    }

    private bool CanFallBackToBytes(ReadOnlySpan<char> symbol)
    {
        Span<byte> bytes = stackalloc byte[4];
        var count = Encoding.UTF8.GetBytes(symbol, bytes);
        foreach (var b in bytes[..count])
        {
            if (_byteFallbackIds![b] < 0)
            {
                return false;
            }
        }

        return true;
    }

    private void AppendByteFallback(ReadOnlySpan<char> symbol, List<int> ids)
    {
        Span<byte> bytes = stackalloc byte[4];
        var count = Encoding.UTF8.GetBytes(symbol, bytes);
        foreach (var b in bytes[..count])
        {
            ids.Add(_byteFallbackIds![b]);
        }
    }

    private static uint Pair(char left, char right) => ((uint)left << 16) | right;

    /// <summary>Hugging Face works on Rust strings, which cannot hold lone surrogates; they become U+FFFD.</summary>
    private static string ReplaceLoneSurrogates(string text)
    {
        var first = text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF');
        if (first < 0)
        {
            return text;
        }

        for (var i = first; i < text.Length; i++)
        {
            if (!char.IsSurrogate(text[i]))
            {
                continue;
            }

            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
                continue;
            }

            return Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(text));
        }

        return text;
    }

    private sealed record AddedToken(int Id, string Content, bool Special, bool LStrip, bool RStrip);
}
