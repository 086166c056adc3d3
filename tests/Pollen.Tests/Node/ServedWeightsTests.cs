using Pollen.Inference.Protos;
using Pollen.Inference.Routing;
using Pollen.Inference.Server;
using Pollen.Inference.Wire;
using Pollen.Model.Llama;
using Pollen.Node.Hosting;
using Pollen.Tests.Model;
using Pollen.Tests.Swarm;
using static TorchSharp.torch;
using WireTensor = Pollen.Swarm.Protos.Tensor;

namespace Pollen.Tests.Node;

/// <summary>
/// Continuous learning in-process: a round's parameters go into the block server only between sessions,
/// and a leaving server's announcement is withdrawn rather than left to expire.
/// </summary>
public sealed class ServedWeightsTests
{
    private static readonly Pollen.Model.Config.ModelConfig Config = ModelTestConfigs.Tiny();

    private static WireTensor Hidden(long tokens) => TensorWire.Encode(full(1, tokens, Config.HiddenSize, 0.25f));

    /// <summary>The server's stateless forward of a fixed input.</summary>
    private static async Task<Tensor> ForwardAsync(BlockServer server) =>
        TensorWire.Decode(await server.ForwardAsync(new ForwardRequest { Hidden = Hidden(3) }));

    /// <summary>What <paramref name="model"/>'s blocks compute for the same input.</summary>
    private static Tensor Reference(Transformer model)
    {
        using var noGrad = no_grad();
        return model.RunBlocks(full(1, 3, Config.HiddenSize, 0.25f), Transformer.DefaultPositions(1, 3));
    }

    [Fact]
    public async Task AServerTakesNewWeightsOnlyWhileNoSessionIsOpen()
    {
        using var before = new Transformer(Config, seed: 1);
        using var after = new Transformer(Config, seed: 2);
        using var server = new BlockServer(NodeHost.CopyBlocks(before, 0, Config.NumHiddenLayers), new BlockServerOptions { ModelId = "m" });
        var weights = Enumerable.Range(0, Config.NumHiddenLayers).ToDictionary(i => i,
            i => (IReadOnlyDictionary<string, Tensor>)after.Blocks[i].named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter));
        Assert.True((await ForwardAsync(server)).allclose(Reference(before), atol: 1e-6));

        using var expired = new CancellationTokenSource();
        var session = server.OpenSession(new OpenSession { MaxLength = 8 }, expired);
        Assert.False(await server.TryReplaceWeightsAsync(weights, 5));
        Assert.Equal(0, server.ServedRound);
        Assert.True((await ForwardAsync(server)).allclose(Reference(before), atol: 1e-6)); // unchanged under the open session

        server.CloseSession(session);
        Assert.True(await server.TryReplaceWeightsAsync(weights, 5));
        Assert.Equal(5, server.ServedRound);
        Assert.True((await ForwardAsync(server)).allclose(Reference(after), atol: 1e-6));
        Assert.False((await ForwardAsync(server)).allclose(Reference(before), atol: 1e-3));
    }

    [Fact]
    public async Task PublishedRoundsWaitForOpenSessionsAndTheNewestWins()
    {
        using var model = new Transformer(Config, seed: 1);
        using var server = new BlockServer(NodeHost.CopyBlocks(model, 0, Config.NumHiddenLayers), new BlockServerOptions { ModelId = "m" });
        await using var weights = new ServedWeights(server, null, 0, null, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, TimeSpan.FromMilliseconds(20));
        var swapped = new List<long>();
        var third = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        weights.Swapped += r =>
        {
            lock (swapped)
            {
                swapped.Add(r);
            }
            if (r == 3)
            {
                third.TrySetResult();
            }
        };

        using var expired = new CancellationTokenSource();
        var session = server.OpenSession(new OpenSession { MaxLength = 8 }, expired);
        using var next = new Transformer(Config, seed: 2);
        weights.Publish(next, 2, "two");
        using var newest = new Transformer(Config, seed: 3);
        weights.Publish(newest, 3, "three");
        Assert.Equal(0, weights.ServedRound); // a session is open: nothing goes in
        Assert.True((await ForwardAsync(server)).allclose(Reference(model), atol: 1e-6));

        server.CloseSession(session);
        await third.Task.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        Assert.Equal(3, weights.ServedRound);
        Assert.Equal("three", weights.ServedHash);
        Assert.Equal(3, server.ServedRound);
        lock (swapped)
        {
            Assert.Equal([3L], swapped); // round 2 was replaced while it waited
        }
        Assert.True((await ForwardAsync(server)).allclose(Reference(newest), atol: 1e-6));
    }

    [Fact]
    public async Task ALeavingServerWithdrawsItsAnnouncement()
    {
        await using var swarm = await TestSwarm.StartAsync(3, cancellationToken: TestContext.Current.CancellationToken);
        using var model = new Transformer(Config, seed: 1);
        using var server = new BlockServer(NodeHost.CopyBlocks(model, 0, 2), new BlockServerOptions { ModelId = "m" });
        var ttl = BlockServing.DefaultTtl;
        await ModelServers.AnnounceAsync(swarm[0].Dht, BlockServing.Describe(swarm[0].Dht, server, 10), ttl, swarm.Time, TestContext.Current.CancellationToken);
        var listed = await ModelServers.ListAsync(swarm[2].Dht, "m", Config.NumHiddenLayers, TestContext.Current.CancellationToken);
        Assert.Equal(swarm[0].PeerId.ToString(), Assert.Single(listed).PeerId);

        await BlockServing.WithdrawAsync(swarm[0].Dht, server, ttl, swarm.Time, TestContext.Current.CancellationToken);
        Assert.Empty(await ModelServers.ListAsync(swarm[2].Dht, "m", Config.NumHiddenLayers, TestContext.Current.CancellationToken));
        Assert.Empty(await ModelServers.ListAsync(swarm[1].Dht, "m", null, TestContext.Current.CancellationToken));
    }
}
