using Pollen.Model.Config;

namespace Pollen.Tests.Model.Config;

public class ModelConfigTests
{
    private const string LlamaConfig = """
        {
          "architectures": ["LlamaForCausalLM"],
          "model_type": "llama",
          "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2,
          "num_attention_heads": 8, "num_key_value_heads": 2,
          "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "vocab_size": 300,
          "max_position_embeddings": 128, "tie_word_embeddings": false,
          "bos_token_id": 1, "eos_token_id": [2, 3], "hidden_act": "silu", "torch_dtype": "bfloat16",
          "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
        }
        """;

    [Fact]
    public void ReadsHuggingFaceLlamaConfig()
    {
        var c = ModelConfig.Parse(LlamaConfig);
        Assert.Equal(64, c.HiddenSize);
        Assert.Equal(8, c.NumAttentionHeads);
        Assert.Equal(2, c.NumKeyValueHeads);
        Assert.Equal(8, c.HeadDim);
        Assert.Equal(4, c.KvGroups);
        Assert.Equal(500000.0, c.RopeTheta);
        Assert.Equal([2, 3], c.EosTokenIds);
        Assert.Equal("llama3", c.RopeScaling!.Type);
        Assert.Equal(PositionEncoding.Rope, c.PositionEncoding);
        Assert.Equal(AttentionKind.Standard, c.Attention);
        Assert.True(c.ExtraKeys.ContainsKey("torch_dtype"));
    }

    [Fact]
    public void RoundTripsThroughJsonKeepingUnknownKeys()
    {
        var c = ModelConfig.Parse(LlamaConfig) with { PositionEncoding = PositionEncoding.Alibi, Attention = AttentionKind.Differential };
        var text = c.ToJson();
        Assert.Contains("\"pollen_position_encoding\": \"alibi\"", text);
        Assert.Contains("\"pollen_attention\": \"differential\"", text);
        Assert.Contains("LlamaForCausalLM", text);
        var again = ModelConfig.Parse(text);
        Assert.Equal(c.ToJson(), again.ToJson());
        Assert.Equal(c.ParameterCount(), again.ParameterCount());
    }

    [Theory]
    [InlineData("\"hidden_size\": 64,", "", "hidden_size", "required")]
    [InlineData("\"hidden_size\": 64,", "\"hidden_size\": \"wide\",", "hidden_size", "expected an integer")]
    [InlineData("\"num_key_value_heads\": 2,", "\"num_key_value_heads\": 3,", "num_key_value_heads", "must divide")]
    [InlineData("\"rms_norm_eps\": 1e-05,", "\"rms_norm_eps\": -1,", "rms_norm_eps", "(0, 1)")]
    [InlineData("\"vocab_size\": 300,", "\"vocab_size\": 0,", "vocab_size", "positive")]
    [InlineData("\"hidden_act\": \"silu\",", "\"hidden_act\": \"gelu\",", "hidden_act", "not supported")]
    [InlineData("\"tie_word_embeddings\": false,", "\"tie_word_embeddings\": 3,", "tie_word_embeddings", "true or false")]
    [InlineData("\"eos_token_id\": [2, 3],", "\"eos_token_id\": [2, 999],", "eos_token_id", "outside the vocabulary")]
    [InlineData("\"model_type\": \"llama\",", "\"model_type\": \"llama\", \"pollen_attention\": \"fancy\",", "pollen_attention", "not one of")]
    [InlineData("\"rope_type\": \"llama3\"", "\"rope_type\": \"yarn\"", "rope_scaling", "not supported")]
    public void InvalidValuesFailNamingTheKey(string original, string replacement, string key, string message)
    {
        Assert.Contains(original, LlamaConfig);
        var error = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(LlamaConfig.Replace(original, replacement)));
        Assert.Equal(key, error.Key);
        Assert.Contains($"'{key}'", error.Message);
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void MalformedFilesGiveClearErrors()
    {
        Assert.Contains("not valid JSON", Assert.Throws<ModelConfigException>(() => ModelConfig.Parse("{ \"hidden_size\": ")).Message);
        Assert.Contains("JSON object", Assert.Throws<ModelConfigException>(() => ModelConfig.Parse("[1, 2]")).Message);
        var missing = Path.Combine(Path.GetTempPath(), Guid.NewGuid().ToString("N"));
        Assert.Contains("no model config", Assert.Throws<ModelConfigException>(() => ModelConfig.Load(missing)).Message);
    }

    [Fact]
    public void DifferentialAttentionNeedsSplittableHeads()
    {
        var c = ModelPresets.Get("dev") with { Attention = AttentionKind.Differential, HeadDim = 30 };
        var error = Assert.Throws<ModelConfigException>(c.Validate);
        Assert.Equal("head_dim", error.Key);
    }

    [Fact]
    public void PresetsAreValidAndUnknownPresetIsNamed()
    {
        foreach (var name in ModelPresets.Names)
        {
            ModelPresets.Get(name).Validate();
        }
        Assert.Contains("dev, small, base", Assert.Throws<ArgumentException>(() => ModelPresets.Get("huge")).Message);
    }

    [Fact]
    public void Llama3RopeScalingKeepsHighFrequenciesAndScalesLowOnes()
    {
        var scaling = ModelConfig.Parse(LlamaConfig).RopeScaling!;
        double[] inv = [1.0, 1e-4];
        var scaled = scaling.Apply(inv);
        Assert.Equal(1.0, scaled[0]);          // wavelength 2π ≪ 64/4: untouched
        Assert.Equal(1e-4 / 8, scaled[1], 12); // wavelength ≫ 64: divided by the factor
    }
}
