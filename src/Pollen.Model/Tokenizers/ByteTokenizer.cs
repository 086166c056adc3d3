using System.Text;

namespace Pollen.Model.Tokenizers;

/// <summary>
/// The default tokenizer for models trained by Pollen: one token per UTF-8 byte, so it covers every
/// language and needs no training. Ids 0..255 are the bytes; 256..258 are the special tokens
/// <c>&lt;|bos|&gt;</c>, <c>&lt;|eos|&gt;</c> and <c>&lt;|pad|&gt;</c>. A model may round its
/// <c>vocab_size</c> up (e.g. to 264); the extra ids are never produced and are skipped on decode.
/// Stateless and thread-safe; use <see cref="Instance"/>.
/// </summary>
public sealed class ByteTokenizer : ITokenizer
{
    /// <summary>Id of <c>&lt;|bos|&gt;</c>, the beginning-of-sequence token.</summary>
    public const int BosTokenId = 256;

    /// <summary>Id of <c>&lt;|eos|&gt;</c>, the end-of-sequence token.</summary>
    public const int EosTokenId = 257;

    /// <summary>Id of <c>&lt;|pad|&gt;</c>, used to pad batches; never emitted by <see cref="Encode"/>.</summary>
    public const int PadTokenId = 258;

    /// <summary>Number of ids: 256 bytes plus 3 special tokens.</summary>
    public const int TokenCount = 259;

    /// <summary>Text form of <see cref="BosTokenId"/> (for display only; <see cref="Encode"/> does not parse it).</summary>
    public const string BosToken = "<|bos|>";

    /// <summary>Text form of <see cref="EosTokenId"/> (for display only).</summary>
    public const string EosToken = "<|eos|>";

    /// <summary>Text form of <see cref="PadTokenId"/> (for display only).</summary>
    public const string PadToken = "<|pad|>";

    /// <summary>The shared instance.</summary>
    public static ByteTokenizer Instance { get; } = new();

    /// <inheritdoc />
    public int VocabSize => TokenCount;

    /// <inheritdoc />
    public int? BosId => BosTokenId;

    /// <inheritdoc />
    public int? EosId => EosTokenId;

    /// <summary>
    /// Encodes text as its UTF-8 bytes. Special-token text such as <c>&lt;|eos|&gt;</c> is encoded as
    /// plain bytes, so user text can never inject a special id. Lone surrogates become U+FFFD.
    /// </summary>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var bytes = Encoding.UTF8.GetBytes(text);
        var ids = new int[bytes.Length];
        for (var i = 0; i < bytes.Length; i++)
        {
            ids[i] = bytes[i];
        }

        return ids;
    }

    /// <summary>
    /// Decodes byte ids to text. Ids outside 0..255 (special tokens, padding of the model's vocab) are
    /// skipped; invalid or incomplete UTF-8 becomes U+FFFD (one per maximal invalid sequence).
    /// </summary>
    public string Decode(ReadOnlySpan<int> ids)
    {
        Span<byte> bytes = ids.Length <= 1024 ? stackalloc byte[ids.Length] : new byte[ids.Length];
        var count = 0;
        foreach (var id in ids)
        {
            if ((uint)id < 256)
            {
                bytes[count++] = (byte)id;
            }
        }

        return Encoding.UTF8.GetString(bytes[..count]);
    }

    /// <summary>True for the special ids (<see cref="BosTokenId"/>, <see cref="EosTokenId"/>, <see cref="PadTokenId"/>).</summary>
    public static bool IsSpecial(int id) => id is >= BosTokenId and < TokenCount;
}
