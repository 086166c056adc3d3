using Pollen.Model.Config;
using Pollen.Model.Tokenizers;
using Pollen.Training.Data;

namespace Pollen.Tests.Training;

/// <summary>A small model shape and a small corpus shared by the training tests.</summary>
internal static class TrainingTestData
{
    /// <summary>2 layers, width 64, byte vocabulary, context 64.</summary>
    public static readonly ModelConfig Tiny = ModelPresets.Get("dev") with
    {
        HiddenSize = 64,
        NumHiddenLayers = 2,
        NumAttentionHeads = 4,
        NumKeyValueHeads = 2,
        HeadDim = 16,
        IntermediateSize = 128,
        MaxPositionEmbeddings = 64,
    };

    /// <summary>~300 KB of synthetic stories as sequences of 48 byte tokens.</summary>
    public static TokenDataset Stories(int corpusSeed, int dataSeed) =>
        TokenDataset.FromDocuments(SyntheticCorpus.Stories(corpusSeed, 300_000), ByteTokenizer.Instance, seqLen: 48, seed: dataSeed);
}
