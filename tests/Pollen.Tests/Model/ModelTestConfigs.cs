using Pollen.Model.Config;

namespace Pollen.Tests.Model;

/// <summary>Tiny model shapes covering every option, for fast tests.</summary>
public static class ModelTestConfigs
{
    public static ModelConfig Tiny(PositionEncoding position = PositionEncoding.Rope, AttentionKind attention = AttentionKind.Standard,
        int heads = 4, int kvHeads = 2, bool tie = false, bool bias = false) => new()
        {
            HiddenSize = 32,
            NumHiddenLayers = 3,
            NumAttentionHeads = heads,
            NumKeyValueHeads = kvHeads,
            HeadDim = 32 / heads,
            IntermediateSize = 48,
            VocabSize = 40,
            MaxPositionEmbeddings = 64,
            TieWordEmbeddings = tie,
            AttentionBias = bias,
            PositionEncoding = position,
            Attention = attention,
            EosTokenIds = [1],
        };

    /// <summary>Every combination of position encoding, attention kind and head grouping, plus tied/bias variants.</summary>
    public static TheoryData<string> AllNames() => new(All.Keys);

    public static readonly IReadOnlyDictionary<string, ModelConfig> All = new Dictionary<string, ModelConfig>
    {
        ["rope-standard-mha"] = Tiny(kvHeads: 4),
        ["rope-standard-gqa"] = Tiny(),
        ["rope-standard-mqa-tied-bias"] = Tiny(kvHeads: 1, tie: true, bias: true),
        ["alibi-standard-gqa"] = Tiny(PositionEncoding.Alibi),
        ["alibi-standard-3heads"] = Tiny(PositionEncoding.Alibi, heads: 2, kvHeads: 1) with { NumAttentionHeads = 3, NumKeyValueHeads = 3, HeadDim = 8 },
        ["rope-differential-gqa"] = Tiny(attention: AttentionKind.Differential),
        ["alibi-differential-mha"] = Tiny(PositionEncoding.Alibi, AttentionKind.Differential, kvHeads: 4),
    };
}
