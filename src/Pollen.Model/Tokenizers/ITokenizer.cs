namespace Pollen.Model.Tokenizers;

/// <summary>
/// Turns text into token ids and back. Implementations: <see cref="ByteTokenizer"/> (the default for
/// models trained by Pollen) and <see cref="HfTokenizer"/> (Hugging Face <c>tokenizer.json</c>).
/// </summary>
public interface ITokenizer
{
    /// <summary>Number of ids this tokenizer can produce (never more than the model's <c>vocab_size</c>).</summary>
    int VocabSize { get; }

    /// <summary>Beginning-of-sequence id, or null when the tokenizer has none.</summary>
    int? BosId { get; }

    /// <summary>End-of-sequence id, or null when the tokenizer has none.</summary>
    int? EosId { get; }

    /// <summary>Encodes text without adding special tokens.</summary>
    int[] Encode(string text);

    /// <summary>
    /// Decodes ids to text, skipping special tokens. Incomplete UTF-8 at the end becomes U+FFFD, so
    /// streaming callers decode the whole sequence and hold back a trailing U+FFFD.
    /// </summary>
    string Decode(ReadOnlySpan<int> ids);
}
