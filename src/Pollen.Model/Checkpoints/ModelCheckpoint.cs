using System.Globalization;
using Pollen.Model.Config;
using Pollen.Model.Llama;
using TorchSharp;
using static TorchSharp.torch;

namespace Pollen.Model.Checkpoints;

/// <summary>
/// A model checkpoint directory: <c>config.json</c> + <c>model.safetensors</c> (or shards with
/// <c>model.safetensors.index.json</c>) + tokenizer files — the Hugging Face layout, so a Llama
/// checkpoint loads as it is. Every tensor is checked against the config before use: a missing,
/// unexpected, misshapen or non-float tensor fails with a message naming it.
/// </summary>
public static class ModelCheckpoint
{
    /// <summary>File name of the weights of a single-file checkpoint.</summary>
    public const string WeightsFile = "model.safetensors";

    /// <summary>File name of the config.</summary>
    public const string ConfigFile = "config.json";

    /// <summary>Writes config and weights (in the model's dtype) to <paramref name="directory"/>, each file atomically.</summary>
    public static void Save(string directory, Transformer model, IReadOnlyDictionary<string, string>? metadata = null)
    {
        Directory.CreateDirectory(directory);
        var meta = new Dictionary<string, string> { ["format"] = "pt" };
        foreach (var (k, v) in metadata ?? new Dictionary<string, string>())
        {
            meta[k] = v;
        }
        SafeTensorsWriter.Write(Path.Combine(directory, WeightsFile), model.state_dict(), meta);
        AtomicFile.WriteAllText(Path.Combine(directory, ConfigFile), model.Config.ToJson());
    }

    /// <summary>Loads the whole model from <paramref name="directory"/>, converting weights to <paramref name="dtype"/> (default float32).</summary>
    public static Transformer Load(string directory, ScalarType dtype = ScalarType.Float32)
    {
        var config = ModelConfig.Load(directory);
        var model = new Transformer(config, initialize: false);
        if (dtype != ScalarType.Float32)
        {
            model.to(dtype);
        }
        using var weights = ShardedSafeTensors.Open(directory);
        var expected = new HashSet<string>();
        LoadInto(model, "", weights, directory, expected);
        var unexpected = weights.Names.Where(n => !expected.Contains(n) && !Ignorable(n, config)).Order(StringComparer.Ordinal).ToList();
        if (unexpected.Count > 0)
        {
            throw new CheckpointException(directory, unexpected[0],
                $"the checkpoint has {unexpected.Count} tensor(s) the config does not describe (e.g. {string.Join(", ", unexpected.Take(3))})",
                "check that config.json belongs to these weights (num_hidden_layers, tie_word_embeddings, attention options)");
        }
        model.eval();
        return model;
    }

    /// <summary>
    /// Loads only blocks <paramref name="from"/>..<paramref name="toExclusive"/>-1, reading none of the other
    /// tensors — what a server hosting a span of a model needs.
    /// </summary>
    public static Block[] LoadBlocks(string directory, int from, int toExclusive, ScalarType dtype = ScalarType.Float32)
    {
        var config = ModelConfig.Load(directory);
        if (from < 0 || toExclusive > config.NumHiddenLayers || from >= toExclusive)
        {
            throw new ArgumentOutOfRangeException(nameof(from), $"blocks {from}..{toExclusive - 1} are not a span of the model's {config.NumHiddenLayers} blocks (0..{config.NumHiddenLayers - 1})");
        }
        using var weights = ShardedSafeTensors.Open(directory);
        var blocks = new Block[toExclusive - from];
        for (var i = from; i < toExclusive; i++)
        {
            var block = new Block(config, i);
            if (dtype != ScalarType.Float32)
            {
                block.to(dtype);
            }
            LoadInto(block, Block.CheckpointPrefixOf(i), weights, directory, null);
            block.eval();
            blocks[i - from] = block;
        }
        return blocks;
    }

    /// <summary>Copies every parameter of <paramref name="module"/> from the tensor named prefix + its name.</summary>
    public static void LoadInto(nn.Module module, string prefix, ShardedSafeTensors weights, string source, ISet<string>? loaded)
    {
        using var noGrad = no_grad();
        foreach (var (name, target) in module.state_dict())
        {
            var key = prefix + name;
            if (!weights.Contains(key))
            {
                throw new CheckpointException(source, key, "the config needs this tensor but the checkpoint has none",
                    "check that config.json belongs to these weights");
            }
            var info = weights.GetInfo(key);
            if (!info.Shape.SequenceEqual(target.shape))
            {
                throw new CheckpointException(source, key,
                    $"shape {info.ShapeText} does not match [{string.Join(", ", target.shape)}] from the config",
                    "check hidden_size, intermediate_size, num_attention_heads, num_key_value_heads, head_dim and vocab_size in config.json");
            }
            if (info.DType is not (SafeTensorsDType.F32 or SafeTensorsDType.F16 or SafeTensorsDType.BF16 or SafeTensorsDType.F64))
            {
                throw new CheckpointException(source, key, $"dtype {info.DType.ToHeaderString()} is not a floating-point type",
                    "weights must be F32, F16, BF16 or F64");
            }
            using var value = weights.Read(key);
            target.copy_(value.to(target.dtype));
            loaded?.Add(key);
        }
    }

    private static bool Ignorable(string name, ModelConfig config) =>
        name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal)
        || (config.TieWordEmbeddings && name == "lm_head.weight");

    /// <summary>Reads an integer from safetensors metadata, or null.</summary>
    public static long? MetadataLong(IReadOnlyDictionary<string, string> metadata, string key) =>
        metadata.TryGetValue(key, out var text) && long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;
}
