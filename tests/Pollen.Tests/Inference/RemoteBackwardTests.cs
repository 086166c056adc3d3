using Grpc.Net.Client;
using Pollen.Inference.Protos;
using Pollen.Inference.Wire;
using Pollen.Model.Llama;
using Pollen.Tests.Model;
using static TorchSharp.torch;

namespace Pollen.Tests.Inference;

[Collection(nameof(InferenceSerial))]
public class RemoteBackwardTests
{
    [Fact]
    public async Task RemoteBackwardGivesTheLocalInputGradientAndLeavesWeightsAlone()
    {
        var config = ModelTestConfigs.Tiny();
        await using var swarm = await InferenceSwarm.StartAsync(config, [(1, 3)]);
        using var channel = GrpcChannel.ForAddress("http://" + swarm.Spans[0].Address);
        var client = new Blocks.BlocksClient(channel);
        var info = await client.InfoAsync(new InfoRequest(), deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal((1, 3, config.HiddenSize, config.MaxPositionEmbeddings), (info.StartBlock, info.EndBlock, (long)info.HiddenSize, info.MaxPosition));
        Assert.Equal(info.MaxCacheTokens, info.FreeCacheTokens);
        manual_seed(4);
        using var input = randn(2, 6, config.HiddenSize);
        using var gradOutput = randn(2, 6, config.HiddenSize);
        using var positions = Transformer.DefaultPositions(2, 6).contiguous();
        Tensor expected;
        using (var scope = NewDisposeScope())
        {
            var x = input.detach().requires_grad_(true);
            var h = swarm.Local.Blocks[2].forward(swarm.Local.Blocks[1].forward(x, positions), positions);
            expected = autograd.grad([h], [x], [gradOutput])[0].MoveToOuterDisposeScope();
        }
        var request = new BackwardRequest
        {
            Blocks = new BlockRange { StartBlock = 1, EndBlock = 3 },
            Hidden = TensorWire.Encode(input),
            Positions = TensorWire.Encode(positions),
            GradOutput = TensorWire.Encode(gradOutput),
        };
        var first = await client.BackwardAsync(request, deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: TestContext.Current.CancellationToken);
        RemoteBlockParityTests.AssertClose(expected, first.GradInput, "gradient");
        // a second call gives the same answer: nothing was updated or accumulated on the server
        var second = await client.BackwardAsync(request, deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(first.GradInput.Bytes, second.GradInput.Bytes);
        expected.Dispose();
    }
}
