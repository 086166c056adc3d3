using Pollen.Inference.Client;
using Pollen.Inference.Routing;
using Pollen.Model.Checkpoints;
using Pollen.Model.Generation;
using Pollen.Model.Llama;
using Pollen.Swarm;
using Pollen.Tests.Model;
using Pollen.Tests.Model.Checkpoints;
using Pollen.Tests.Swarm;

namespace Pollen.Tests.Inference;

/// <summary>Block servers announced in the DHT: clients find them, route by estimated time, survive their loss and wait for missing blocks.</summary>
[Collection(nameof(InferenceSerial))]
public sealed class DhtRoutingTests
{
    private static readonly GenerationOptions Greedy = new() { MaxNewTokens = 30, StopAtEos = false };

    private static readonly int[] Prompt = [3, 17, 5, 22, 9];

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task AClientFindsFourAnnouncedServersAndGeneratesLikeTheLocalModel()
    {
        var config = ModelTestConfigs.Tiny() with { NumHiddenLayers = 4 };
        await using var swarm = await DhtInferenceSwarm.StartAsync(config, (0, 1), (1, 2), (2, 3), (3, 4));
        var announced = await ModelServers.ListAsync(swarm.Dht[0].Dht, DhtInferenceSwarm.ModelId, 4, Ct);
        Assert.Equal([(0, 1), (1, 2), (2, 3), (3, 4)], announced.Select(a => (a.StartBlock, a.EndBlock)));
        Assert.All(announced, a => Assert.Equal(config.Fingerprint(), a.ConfigFingerprint));

        var local = await TextGenerator.GenerateToEndAsync(swarm.Model.Local, null, Prompt, Greedy, Ct);
        using var model = await swarm.ClientAsync();
        var remote = await TextGenerator.GenerateToEndAsync(model, null, Prompt, Greedy, Ct);
        Assert.Equal(local.Ids, remote.Ids);
        Assert.Equal(swarm.Servers.Select(s => s.Address), model.LastRoute.Select(h => h.Server.Address));
        await TestSwarm.WaitUntilAsync(() => swarm.Servers.All(s => s.Server.SessionCount == 0), TimeSpan.FromSeconds(10), "every session closed");
    }

    [Fact]
    public async Task TheFasterOfTwoServersForASpanIsChosenAndTheOtherTakesOverWhenItDies()
    {
        var config = ModelTestConfigs.Tiny() with { NumHiddenLayers = 4 };
        await using var swarm = await DhtInferenceSwarm.StartAsync(config);
        var whole = await swarm.AddServerAsync(0, 4, throughput: 50); // one hop, but slow
        var fastA = await swarm.AddServerAsync(0, 2, throughput: 5000);
        var fastB = await swarm.AddServerAsync(2, 4, throughput: 5000);
        var local = await TextGenerator.GenerateToEndAsync(swarm.Model.Local, null, Prompt, Greedy, Ct);
        using var model = await swarm.ClientAsync();
        var ids = new List<int>();
        await foreach (var token in TextGenerator.GenerateAsync(model, null, Prompt, Greedy, Ct))
        {
            if (ids.Count == 0)
            {
                // 2 hops × (≤ 5 ms + 2 × 0.2 ms) beat 1 hop + 4 × 20 ms
                Assert.Equal([fastA.Address, fastB.Address], model.LastRoute.Select(h => h.Server.Address));
            }
            ids.Add(token.Id);
            if (ids.Count == 10)
            {
                await fastB.KillAsync();
            }
        }
        Assert.Equal(local.Ids, ids);
        Assert.True(model.Bans.IsBanned(fastB.Address));
        // blocks 2..3 were replaced by the slow server; its replay rebuilt their cache
        Assert.Equal((whole.Address, 2, 4), (model.LastRoute[0].Server.Address, model.LastRoute[0].Start, model.LastRoute[0].End));
    }

    [Fact]
    public async Task MissingBlocksAreWaitedForUntilAServerJoins()
    {
        var config = ModelTestConfigs.Tiny() with { NumHiddenLayers = 4 };
        await using var swarm = await DhtInferenceSwarm.StartAsync(config, (0, 2));
        var local = await TextGenerator.GenerateToEndAsync(swarm.Model.Local, null, Prompt, Greedy, Ct);
        using var model = await swarm.ClientAsync(new SwarmModelOptions { MissingBlocksTimeout = TimeSpan.FromSeconds(60), RetryInterval = TimeSpan.FromMilliseconds(100) });
        var waiting = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        model.WaitingForBlocks += message => waiting.TrySetResult(message);
        var generation = TextGenerator.GenerateToEndAsync(model, null, Prompt, Greedy, Ct);
        var message = await waiting.Task.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        Assert.Contains("blocks 2..3", message, StringComparison.Ordinal);
        Assert.False(generation.IsCompleted);
        await swarm.AddServerAsync(2, 4);
        var result = await generation.WaitAsync(TimeSpan.FromSeconds(60), Ct);
        Assert.Equal(local.Ids, result.Ids);
    }

    [Fact]
    public async Task MissingBlocksFailAfterTheWaitWithTheBlocksNamed()
    {
        var config = ModelTestConfigs.Tiny() with { NumHiddenLayers = 4 };
        await using var swarm = await DhtInferenceSwarm.StartAsync(config, (0, 1), (3, 4));
        using var model = await swarm.ClientAsync(new SwarmModelOptions { MissingBlocksTimeout = TimeSpan.FromMilliseconds(300), RetryInterval = TimeSpan.FromMilliseconds(100) });
        var e = await Assert.ThrowsAsync<SwarmUnavailableException>(() => TextGenerator.GenerateToEndAsync(model, null, Prompt, Greedy, Ct));
        Assert.Contains("blocks 1..2", e.Message, StringComparison.Ordinal);
        Assert.Contains("--blocks 1:3", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AServerOfAnotherArchitectureUnderTheSameModelIdIsIgnored()
    {
        var config = ModelTestConfigs.Tiny() with { NumHiddenLayers = 4 };
        await using var swarm = await DhtInferenceSwarm.StartAsync(config, (0, 4));
        using var other = new CheckpointTestFiles();
        using (var different = new Transformer(config with { RmsNormEps = 1e-3 }))
        {
            ModelCheckpoint.Save(other.Directory, different);
        }
        var impostor = await swarm.AddServerAsync(0, 4, other.Directory, throughput: 1e6);
        var local = await TextGenerator.GenerateToEndAsync(swarm.Model.Local, null, Prompt, Greedy, Ct);
        using var model = await swarm.ClientAsync();
        var remote = await TextGenerator.GenerateToEndAsync(model, null, Prompt, Greedy, Ct);
        Assert.Equal(local.Ids, remote.Ids);
        Assert.Equal(swarm.Servers[0].Address, Assert.Single(model.LastRoute).Server.Address);

        // listed explicitly, its Info check refuses it
        using var direct = new SwarmModel(ModelEnds.Load(swarm.Model.Directory), [new ServerSpan(impostor.Address, 0, 4), new ServerSpan(swarm.Servers[0].Address, 0, 4)]);
        Assert.Equal(swarm.Servers[0].Address, Assert.Single(await direct.FindRouteAsync(0, 4, cancellationToken: Ct)).Server.Address);
        Assert.True(direct.Bans.IsBanned(impostor.Address));
    }
}
