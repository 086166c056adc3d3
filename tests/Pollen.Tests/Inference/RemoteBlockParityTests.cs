using Grpc.Net.Client;
using Pollen.Inference.Client;
using Pollen.Inference.Protos;
using Pollen.Inference.Server;
using Pollen.Inference.Wire;
using Pollen.Model.Layers;
using Pollen.Model.Llama;
using Pollen.Tests.Model;
using static TorchSharp.torch;
using WireTensor = Pollen.Swarm.Protos.Tensor;

namespace Pollen.Tests.Inference;

[Collection(nameof(InferenceSerial))]
public class RemoteBlockParityTests
{
    private const double Atol = 1e-5;

    [Theory]
    [MemberData(nameof(ModelTestConfigs.AllNames), MemberType = typeof(ModelTestConfigs))]
    public async Task RemoteBlocksEqualLocalBlocks(string name)
    {
        // tests run tensor math on one thread, where servers store float32 linear weights column-major
        var layout = await RemoteBlocksEqualLocalBlocksAsync(name, new BlockServerOptions());
        Assert.Equal(WeightLayout.ColumnMajor, layout);
    }

    [Theory]
    [InlineData("rope-standard-gqa")]
    [InlineData("alibi-differential-mha")]
    public async Task RowMajorServersEqualLocalBlocksToo(string name) =>
        Assert.Equal(WeightLayout.RowMajor, await RemoteBlocksEqualLocalBlocksAsync(name, new BlockServerOptions { WeightLayout = WeightLayout.RowMajor }));

    private static async Task<WeightLayout> RemoteBlocksEqualLocalBlocksAsync(string name, BlockServerOptions serverOptions)
    {
        var config = ModelTestConfigs.All[name];
        await using var swarm = await InferenceSwarm.StartAsync(config, [(0, config.NumHiddenLayers)], serverOptions);
        using var channel = GrpcChannel.ForAddress("http://" + swarm.Spans[0].Address);
        var client = new Blocks.BlocksClient(channel);
        manual_seed(3);
        using var input = randn(2, 8, config.HiddenSize);
        using var positions = Transformer.DefaultPositions(2, 8).contiguous();

        // stateless forward of each block alone
        for (var i = 0; i < config.NumHiddenLayers; i++)
        {
            using var expected = LocalForward(swarm.Local.Blocks[i], input, positions, null);
            var reply = await client.ForwardAsync(new ForwardRequest
            {
                Blocks = new BlockRange { StartBlock = i, EndBlock = i + 1 },
                Hidden = TensorWire.Encode(input),
                Positions = TensorWire.Encode(positions),
            }, deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: TestContext.Current.CancellationToken);
            AssertClose(expected, reply.Hidden, $"block {i}");
        }

        // a session over all blocks: a 5-token prefill, then one token at a time, against a local cache
        var options = new SwarmModelOptions();
        await using var span = await RemoteSpan.OpenAsync(channel, swarm.Spans[0], 0, config.NumHiddenLayers, 10, 2, options, TestContext.Current.CancellationToken);
        using var cache = new KvCache(10);
        foreach (var (from, length) in new[] { (0, 5), (5, 1), (6, 1), (7, 1) })
        {
            using var h = input.narrow(1, from, length).contiguous();
            using var p = positions.narrow(1, from, length).contiguous();
            using var expected = LocalForwardAll(swarm.Local, h, p, cache);
            var output = await span.StepAsync(TensorWire.Encode(h), TensorWire.Encode(p), TestContext.Current.CancellationToken);
            AssertClose(expected, output, $"session tokens {from}..{from + length - 1}");
        }
        return swarm.Hosts[0]!.Server.Layout;
    }

    private static Tensor LocalForward(Block block, Tensor hidden, Tensor positions, KvCache? cache)
    {
        using var noGrad = no_grad();
        return block.forward(hidden, positions, cache);
    }

    private static Tensor LocalForwardAll(Transformer model, Tensor hidden, Tensor positions, KvCache cache)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return model.RunBlocks(hidden, positions, cache).MoveToOuterDisposeScope();
    }

    internal static void AssertClose(Tensor expected, WireTensor actual, string what)
    {
        using var scope = NewDisposeScope();
        var remote = TensorWire.Decode(actual);
        Assert.Equal(expected.shape, remote.shape);
        var diff = (remote - expected).abs().max().item<float>();
        Assert.True(diff <= Atol, $"{what}: max |remote - local| = {diff}");
    }
}
