using Pollen.Model.Generation;
using Pollen.Tests.Model;

namespace Pollen.Tests.Inference;

[Collection(nameof(InferenceSerial))]
public class SwarmGenerationTests
{
    private static readonly GenerationOptions Greedy = new() { MaxNewTokens = 40, StopAtEos = false };

    private static readonly int[] Prompt = [3, 17, 5, 22, 9];

    [Fact]
    public async Task GreedyGenerationThroughFourServersEqualsLocal()
    {
        var config = ModelTestConfigs.Tiny() with { NumHiddenLayers = 4 };
        await using var swarm = await InferenceSwarm.StartAsync(config, [(0, 1), (1, 2), (2, 3), (3, 4)]);
        var local = await TextGenerator.GenerateToEndAsync(swarm.Local, null, Prompt, Greedy, TestContext.Current.CancellationToken);
        using var model = swarm.Client();
        var remote = await TextGenerator.GenerateToEndAsync(model, null, Prompt, Greedy, TestContext.Current.CancellationToken);
        Assert.Equal(Greedy.MaxNewTokens, local.Ids.Count);
        Assert.Equal(local.Ids, remote.Ids);
        Assert.Equal(4, (await model.FindRouteAsync(0, 4, cancellationToken: TestContext.Current.CancellationToken)).Count);
    }

    [Fact]
    public async Task GenerationSurvivesAServerKilledMidwayAndMatchesTheUndisturbedRun()
    {
        var config = ModelTestConfigs.Tiny() with { NumHiddenLayers = 4 };
        // two servers for each span: whichever the route takes is killed, and the other takes over
        await using var swarm = await InferenceSwarm.StartAsync(config, [(0, 2), (2, 4), (0, 2), (2, 4)]);
        var local = await TextGenerator.GenerateToEndAsync(swarm.Local, null, Prompt, Greedy, TestContext.Current.CancellationToken);
        using var model = swarm.Client();
        var ids = new List<int>();
        var (first, second) = (-1, -1);
        await foreach (var token in TextGenerator.GenerateAsync(model, null, Prompt, Greedy, TestContext.Current.CancellationToken))
        {
            ids.Add(token.Id);
            if (ids.Count == 10)
            {
                first = await KillServerInUseAsync(swarm, start: 0);
            }
            if (ids.Count == 25)
            {
                second = await KillServerInUseAsync(swarm, start: 2);
            }
        }
        Assert.Equal(local.Ids, ids);
        Assert.True(model.Bans.IsBanned(swarm.Spans[first].Address));
        Assert.True(model.Bans.IsBanned(swarm.Spans[second].Address));
        // the survivors: the other server of each span
        Assert.Equal([swarm.Spans[2 - first], swarm.Spans[4 - second]], (await model.FindRouteAsync(0, 4, cancellationToken: TestContext.Current.CancellationToken)).Select(r => r.Server));
    }

    /// <summary>
    /// Kills the server of the span starting at <paramref name="start"/> that has stepped tokens (the route
    /// chooses between equal servers by measured latency, so which one it took is not fixed); returns its index.
    /// </summary>
    private static async Task<int> KillServerInUseAsync(InferenceSwarm swarm, int start)
    {
        var inUse = Enumerable.Range(0, swarm.Hosts.Count)
            .Where(i => swarm.Spans[i].Start == start && swarm.Hosts[i] is { Server.TokensServed: > 0 })
            .ToList();
        var index = Assert.Single(inUse);
        await swarm.KillAsync(index);
        return index;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)] // the stalled server is the first of a quiet chain: no reply is due from it
    public async Task AStalledServerIsBannedAndRoutedAround(bool midChain)
    {
        var config = ModelTestConfigs.Tiny() with { NumHiddenLayers = 4 };
        // the first two servers are alternatives for the start of the route; a third, if any, serves the rest
        (int, int)[] spans = midChain ? [(0, 2), (0, 2), (2, 4)] : [(0, 4), (0, 4)];
        await using var swarm = await InferenceSwarm.StartAsync(config, spans);
        var options = Greedy with { MaxNewTokens = 12 };
        var local = await TextGenerator.GenerateToEndAsync(swarm.Local, null, Prompt, options, TestContext.Current.CancellationToken);
        using var model = swarm.Client(new Pollen.Inference.Client.SwarmModelOptions { StepTimeout = TimeSpan.FromSeconds(1) });
        using var gate = new ManualResetEventSlim();
        Task<bool>? stall = null;
        var stalled = -1;
        var ids = new List<int>();
        await foreach (var token in TextGenerator.GenerateAsync(model, null, Prompt, options, TestContext.Current.CancellationToken))
        {
            ids.Add(token.Id);
            if (ids.Count == 4)
            {
                // the server the route took stops computing: its next step exceeds the step timeout
                stalled = swarm.Hosts[0]!.Server.TokensServed > 0 ? 0 : 1;
                stall = swarm.Hosts[stalled]!.Server.RunOnComputeThreadAsync(() => gate.Wait(TimeSpan.FromSeconds(30)));
            }
        }
        gate.Set();
        Assert.True(await stall!);
        Assert.Equal(local.Ids, ids);
        Assert.True(model.Bans.IsBanned(swarm.Spans[stalled].Address));
        Assert.All(swarm.Spans.Skip(2), later => Assert.False(model.Bans.IsBanned(later.Address)));
        Assert.Equal([swarm.Spans[1 - stalled], .. swarm.Spans.Skip(2)],
            (await model.FindRouteAsync(0, 4, cancellationToken: TestContext.Current.CancellationToken)).Select(r => r.Server));
    }
}
