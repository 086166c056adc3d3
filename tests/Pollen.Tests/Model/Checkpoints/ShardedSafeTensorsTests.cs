using Pollen.Model.Checkpoints;
using TorchSharp;

namespace Pollen.Tests.Model.Checkpoints;

public sealed class ShardedSafeTensorsTests : IDisposable
{
    private const string Shard1 = "model-00001-of-00002.safetensors";
    private const string Shard2 = "model-00002-of-00002.safetensors";

    private readonly CheckpointTestFiles _files = new();

    public void Dispose() => _files.Dispose();

    [Fact]
    public void Sharded_checkpoint_presents_one_view_over_all_shards()
    {
        using var scope = torch.NewDisposeScope();
        var (first, second) = WriteShardedCheckpoint();

        using var checkpoint = ShardedSafeTensors.Open(_files.Directory);

        Assert.Equal(Path.Combine(_files.Directory, SafeTensorsIndex.FileName), checkpoint.SourcePath);
        Assert.Equal(4, checkpoint.Count);
        Assert.Equal("64", checkpoint.Metadata["total_size"]);
        Assert.Contains("\"total_size\": 64", File.ReadAllText(checkpoint.SourcePath));
        Assert.True(checkpoint.Contains("layers.1.weight"));
        Assert.False(checkpoint.Contains("layers.2.weight"));
        foreach (var (name, tensor) in first.Concat(second))
        {
            using var loaded = checkpoint.Read(name);
            Assert.Equal(tensor.dtype, loaded.dtype);
            Assert.Equal(tensor.shape, loaded.shape);
            Assert.Equal(tensor.bytes.ToArray(), loaded.bytes.ToArray());
        }
        Assert.Equal(["embed.weight", "layers.0.weight", "layers.1.weight", "norm.weight"], checkpoint.Tensors.Keys.Order());
        Assert.Equal(SafeTensorsDType.BF16, checkpoint.GetInfo("norm.weight").DType);
    }

    [Fact]
    public void Shards_are_opened_only_when_needed()
    {
        using var scope = torch.NewDisposeScope();
        WriteShardedCheckpoint();
        using var checkpoint = ShardedSafeTensors.Open(_files.Directory);
        // Corrupt shard 2 after opening: reading from shard 1 must not touch it.
        File.WriteAllBytes(_files.PathOf(Shard2), [1, 2, 3]);

        using var embed = checkpoint.Read("embed.weight");

        Assert.Equal(new long[] { 4, 2 }, embed.shape);
        var e = Assert.Throws<CheckpointException>(() => checkpoint.Read("norm.weight"));
        Assert.Contains(Shard2, e.Message);
    }

    [Fact]
    public void Missing_shard_is_reported_at_open()
    {
        using var scope = torch.NewDisposeScope();
        WriteShardedCheckpoint();
        File.Delete(_files.PathOf(Shard2));

        var e = Assert.Throws<CheckpointException>(() => ShardedSafeTensors.Open(_files.Directory));

        Assert.Contains($"shard '{Shard2}'", e.Message);
        Assert.Contains("is not in " + _files.Directory, e.Message);
        Assert.Contains("Download the missing shard", e.Message);
    }

    [Fact]
    public void Tensor_mapped_to_a_shard_that_lacks_it_is_reported()
    {
        using var scope = torch.NewDisposeScope();
        WriteShardedCheckpoint();
        var index = SafeTensorsIndex.Load(_files.PathOf(SafeTensorsIndex.FileName));
        var weightMap = index.WeightMap.ToDictionary();
        weightMap["layers.7.weight"] = Shard1;
        new SafeTensorsIndex(weightMap, index.Metadata).Save(_files.PathOf(SafeTensorsIndex.FileName));
        using var checkpoint = ShardedSafeTensors.Open(_files.Directory);

        var e = Assert.Throws<CheckpointException>(() => checkpoint.Read("embed.weight"));

        Assert.Equal("layers.7.weight", e.TensorName);
        Assert.Contains(Shard1, e.Message);
        Assert.Contains("the shard does not hold it", e.Message);
    }

    [Fact]
    public void Single_file_checkpoint_opens_as_one_shard()
    {
        using var weight = torch.arange(6, torch.ScalarType.Float32);
        SafeTensorsWriter.Write(_files.PathOf(ShardedSafeTensors.SingleFileName), [new("w", weight)],
            new Dictionary<string, string> { ["format"] = "pt" });

        using var checkpoint = ShardedSafeTensors.Open(_files.Directory);

        Assert.Equal(["w"], checkpoint.Names);
        Assert.Equal("pt", checkpoint.Metadata["format"]);
        using var loaded = checkpoint.Read("w");
        Assert.Equal(weight.bytes.ToArray(), loaded.bytes.ToArray());
        var e = Assert.Throws<CheckpointException>(() => checkpoint.Read("v"));
        Assert.Contains("'w'", e.Message);
    }

    [Fact]
    public void Directory_without_a_checkpoint_gives_a_clear_error()
    {
        var e = Assert.Throws<CheckpointException>(() => ShardedSafeTensors.Open(_files.Directory));

        Assert.Contains($"no model.safetensors or model.safetensors.index.json in {_files.Directory}", e.Message);
    }

    [Fact]
    public void Index_pointing_outside_its_directory_is_rejected()
    {
        File.WriteAllText(_files.PathOf(SafeTensorsIndex.FileName),
            """{"metadata": {}, "weight_map": {"w": "../elsewhere.safetensors"}}""");

        var e = Assert.Throws<CheckpointException>(() => ShardedSafeTensors.Open(_files.Directory));

        Assert.Equal("w", e.TensorName);
        Assert.Contains("not a file name in the index's directory", e.Message);
    }

    [Fact]
    public void Invalid_index_json_is_rejected()
    {
        File.WriteAllText(_files.PathOf(SafeTensorsIndex.FileName), """{"metadata": {}}""");

        var e = Assert.Throws<CheckpointException>(() => ShardedSafeTensors.Open(_files.Directory));

        Assert.Contains("no 'weight_map' object", e.Message);
    }

    /// <summary>Two shards (f32 and bf16/i64) plus an index written with <see cref="SafeTensorsIndex.Save"/>.</summary>
    private (Dictionary<string, torch.Tensor> First, Dictionary<string, torch.Tensor> Second) WriteShardedCheckpoint()
    {
        var first = new Dictionary<string, torch.Tensor>
        {
            ["embed.weight"] = torch.arange(8, torch.ScalarType.Float32).reshape(4, 2),
            ["layers.0.weight"] = torch.tensor(new[] { -0.0f, float.NaN }),
        };
        var second = new Dictionary<string, torch.Tensor>
        {
            ["layers.1.weight"] = torch.tensor(new[] { 1L, -1L }),
            ["norm.weight"] = torch.ones(4, torch.ScalarType.BFloat16),
        };
        SafeTensorsWriter.Write(_files.PathOf(Shard1), first);
        SafeTensorsWriter.Write(_files.PathOf(Shard2), second);
        var weightMap = first.Keys.Select(name => KeyValuePair.Create(name, Shard1))
            .Concat(second.Keys.Select(name => KeyValuePair.Create(name, Shard2)))
            .ToDictionary();
        new SafeTensorsIndex(weightMap, new Dictionary<string, string> { ["total_size"] = "64" })
            .Save(_files.PathOf(SafeTensorsIndex.FileName));
        return (first, second);
    }
}
