using System.Text.Json.Nodes;
using Pollen.Model.Config;

namespace Pollen.Tests.Model.Checkpoints;

/// <summary>Writes configs the way Hugging Face Transformers does for Llama models (no Pollen keys).</summary>
internal static class HfLlamaLayout
{
    /// <summary>A small Llama shape: 2 layers, width 32, 4 query heads over 2 key/value heads.</summary>
    public static ModelConfig SmallLlama(int vocabSize, int context, int bos, params int[] eos) => new()
    {
        HiddenSize = 32,
        NumHiddenLayers = 2,
        NumAttentionHeads = 4,
        NumKeyValueHeads = 2,
        HeadDim = 8,
        IntermediateSize = 64,
        VocabSize = vocabSize,
        MaxPositionEmbeddings = context,
        BosTokenId = bos,
        EosTokenIds = eos,
    };

    /// <summary>Writes <c>config.json</c> as Transformers would: architectures and dtype, no head_dim or Pollen keys.</summary>
    public static void WriteConfig(string directory, ModelConfig config)
    {
        var json = JsonNode.Parse(config.ToJson())!.AsObject();
        json.Remove("pollen_position_encoding");
        json.Remove("pollen_attention");
        json.Remove("head_dim");
        json["architectures"] = new JsonArray("LlamaForCausalLM");
        json["torch_dtype"] = "bfloat16";
        File.WriteAllText(Path.Combine(directory, "config.json"), json.ToJsonString());
    }
}
