using Pollen.Model.Checkpoints;
using Pollen.Model.Config;
using Pollen.Model.Generation;
using Pollen.Model.Llama;
using TorchSharp;
using static TorchSharp.torch;

namespace Pollen.Tests.Model.Checkpoints;

public class ModelCheckpointTests
{
    private static Tensor Ids(int vocab, int length, int seed)
    {
        var g = new Random(seed);
        return tensor(Enumerable.Range(0, length).Select(_ => (long)g.Next(vocab)).ToArray(), [1, length]);
    }

    [Theory]
    [MemberData(nameof(ModelTestConfigs.AllNames), MemberType = typeof(ModelTestConfigs))]
    public void SavedThenLoadedModelGivesIdenticalOutputs(string name)
    {
        using var files = new CheckpointTestFiles();
        using var scope = NewDisposeScope();
        manual_seed(11);
        using var model = new Transformer(ModelTestConfigs.All[name]);
        model.eval();
        ModelCheckpoint.Save(files.Directory, model);
        using var loaded = ModelCheckpoint.Load(files.Directory);
        using var noGrad = no_grad();
        var ids = Ids(model.Config.VocabSize, 9, 1);
        Assert.True(model.forward(ids).eq(loaded.forward(ids)).all().item<bool>());
        foreach (var (key, value) in model.state_dict())
        {
            Assert.True(value.eq(loaded.state_dict()[key]).all().item<bool>(), key);
        }
    }

    [Fact]
    public void PartialLoadOfBlocksGivesTheSameBlockOutputs()
    {
        using var files = new CheckpointTestFiles();
        using var scope = NewDisposeScope();
        manual_seed(12);
        using var model = new Transformer(ModelTestConfigs.All["rope-standard-gqa"]);
        model.eval();
        ModelCheckpoint.Save(files.Directory, model);
        var blocks = ModelCheckpoint.LoadBlocks(files.Directory, 1, 3);
        Assert.Equal([1, 2], blocks.Select(b => b.LayerIndex));
        using var noGrad = no_grad();
        var positions = Transformer.DefaultPositions(1, 7);
        var hidden = model.Blocks[0].forward(model.Embed(Ids(model.Config.VocabSize, 7, 2)), positions);
        var expected = model.Blocks[2].forward(model.Blocks[1].forward(hidden, positions), positions);
        var actual = blocks[1].forward(blocks[0].forward(hidden, positions), positions);
        Assert.True(actual.eq(expected).all().item<bool>());
        Assert.Throws<ArgumentOutOfRangeException>(() => ModelCheckpoint.LoadBlocks(files.Directory, 2, 4));
    }

    [Fact]
    public void MismatchedTensorsAreNamed()
    {
        using var files = new CheckpointTestFiles();
        using var scope = NewDisposeScope();
        var config = ModelTestConfigs.All["rope-standard-gqa"];
        using var model = new Transformer(config);
        ModelCheckpoint.Save(files.Directory, model);
        var weights = Path.Combine(files.Directory, ModelCheckpoint.WeightsFile);

        // config says more layers than the weights hold
        File.WriteAllText(Path.Combine(files.Directory, "config.json"), (config with { NumHiddenLayers = 4 }).ToJson());
        var missing = Assert.Throws<CheckpointException>(() => ModelCheckpoint.Load(files.Directory));
        Assert.Contains("model.layers.3.", missing.Message);

        // config says fewer layers: the extra tensors are reported
        File.WriteAllText(Path.Combine(files.Directory, "config.json"), (config with { NumHiddenLayers = 2 }).ToJson());
        Assert.Contains("model.layers.2.", Assert.Throws<CheckpointException>(() => ModelCheckpoint.Load(files.Directory)).Message);

        // wrong shape
        File.WriteAllText(Path.Combine(files.Directory, "config.json"), (config with { IntermediateSize = 50 }).ToJson());
        var shape = Assert.Throws<CheckpointException>(() => ModelCheckpoint.Load(files.Directory));
        Assert.Contains("mlp", shape.Message);
        Assert.Contains("[48, 32]", shape.Message);

        // wrong dtype: an integer tensor where a weight belongs
        File.WriteAllText(Path.Combine(files.Directory, "config.json"), config.ToJson());
        var tensors = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
        tensors["model.norm.weight"] = ones([config.HiddenSize], int64);
        SafeTensorsWriter.Write(weights, tensors);
        var dtype = Assert.Throws<CheckpointException>(() => ModelCheckpoint.Load(files.Directory));
        Assert.Contains("model.norm.weight", dtype.Message);
        Assert.Contains("I64", dtype.Message);

        // garbage weights file
        File.WriteAllBytes(weights, [1, 2, 3]);
        Assert.Throws<CheckpointException>(() => ModelCheckpoint.Load(files.Directory));
    }

    /// <summary>
    /// A checkpoint laid out as Hugging Face writes Llama: bf16 weights in two shards with an index,
    /// an untied head, a rotary buffer to ignore, llama3 rope scaling, list-valued eos.
    /// </summary>
    [Fact]
    public async Task HuggingFaceShardedLlamaCheckpointLoadsAndGenerates()
    {
        using var files = new CheckpointTestFiles();
        using var scope = NewDisposeScope();
        var config = HfLlamaLayout.SmallLlama(vocabSize: 50, context: 64, bos: 1, 48, 49) with
        {
            RopeScaling = new RopeScaling { Type = "llama3", Factor = 8, OriginalMaxPositionEmbeddings = 32 },
        };
        manual_seed(3);
        using var reference = new Transformer(config);
        reference.eval();
        var bf16 = reference.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.to(bfloat16));
        HfLlamaLayout.WriteConfig(files.Directory, config);
        var first = bf16.Where(kv => !kv.Key.StartsWith("model.layers.1.", StringComparison.Ordinal) && kv.Key != "lm_head.weight").ToDictionary();
        var second = bf16.Where(kv => !first.ContainsKey(kv.Key)).ToDictionary();
        second["model.layers.1.self_attn.rotary_emb.inv_freq"] = ones([4]);
        SafeTensorsWriter.Write(files.PathOf("model-00001-of-00002.safetensors"), first);
        SafeTensorsWriter.Write(files.PathOf("model-00002-of-00002.safetensors"), second);
        var map = first.Keys.ToDictionary(k => k, _ => "model-00001-of-00002.safetensors");
        foreach (var k in second.Keys)
        {
            map[k] = "model-00002-of-00002.safetensors";
        }
        new SafeTensorsIndex(map).Save(files.PathOf(SafeTensorsIndex.FileName));

        using var loaded = ModelCheckpoint.Load(files.Directory);
        Assert.Equal(config.RopeScaling, loaded.Config.RopeScaling);
        foreach (var (key, value) in bf16)
        {
            Assert.True(value.to(float32).eq(loaded.state_dict()[key]).all().item<bool>(), key);
        }
        // greedy generation from raw ids is deterministic and equals running the same weights in memory
        var options = new GenerationOptions { MaxNewTokens = 12, StopAtEos = false };
        var fromDisk = await TextGenerator.GenerateToEndAsync(loaded, null, [1, 5, 7, 9], options, TestContext.Current.CancellationToken);
        using var inMemory = new Transformer(config, initialize: false);
        inMemory.load_state_dict(bf16.ToDictionary(kv => kv.Key, kv => kv.Value.to(float32)));
        inMemory.eval();
        var expected = await TextGenerator.GenerateToEndAsync(inMemory, null, [1, 5, 7, 9], options, TestContext.Current.CancellationToken);
        Assert.Equal(12, fromDisk.Ids.Count);
        Assert.Equal(expected.Ids, fromDisk.Ids);
    }
}
