namespace Pollen.Model.Config;

/// <summary>
/// Named model shapes for models trained by Pollen (byte-level vocabulary of 264 ids: 256 bytes,
/// 3 special tokens, padding to a multiple of 8).
/// </summary>
public static class ModelPresets
{
    /// <summary>Vocabulary size of byte-level models (256 bytes + specials, rounded up to a multiple of 8).</summary>
    public const int ByteVocabSize = 264;

    /// <summary>The names accepted by <see cref="Get"/>.</summary>
    public static IReadOnlyList<string> Names { get; } = ["dev", "small", "base", "medium"];

    /// <summary>Returns the preset called <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">Unknown name; the message lists the known ones.</exception>
    public static ModelConfig Get(string name) => name switch
    {
        // ~0.9M parameters: trains to recognisable words on 2 CPU cores in a few minutes.
        "dev" => Byte(hidden: 128, layers: 4, heads: 4, kvHeads: 2, ffn: 352, context: 256),
        // ~5M parameters.
        "small" => Byte(hidden: 256, layers: 6, heads: 8, kvHeads: 4, ffn: 704, context: 512),
        // ~26M parameters.
        "base" => Byte(hidden: 512, layers: 8, heads: 8, kvHeads: 4, ffn: 1408, context: 1024),
        // ~52M parameters: the distributed-inference benchmark's model (decoding is bound by memory bandwidth).
        "medium" => Byte(hidden: 768, layers: 8, heads: 12, kvHeads: 6, ffn: 2048, context: 1024),
        _ => throw new ArgumentException($"unknown model preset '{name}'; choose one of: {string.Join(", ", Names)}, or pass a config.json path", nameof(name)),
    };

    private static ModelConfig Byte(int hidden, int layers, int heads, int kvHeads, int ffn, int context) => new()
    {
        HiddenSize = hidden,
        NumHiddenLayers = layers,
        NumAttentionHeads = heads,
        NumKeyValueHeads = kvHeads,
        HeadDim = hidden / heads,
        IntermediateSize = ffn,
        VocabSize = ByteVocabSize,
        MaxPositionEmbeddings = context,
        RmsNormEps = 1e-5,
        TieWordEmbeddings = true,
        BosTokenId = 256,
        EosTokenIds = [257],
    };
}
