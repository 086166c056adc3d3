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
        // the route takes the first server of each span; the third and fourth can take over
        await using var swarm = await InferenceSwarm.StartAsync(config, [(0, 2), (2, 4), (0, 2), (2, 4)]);
        var local = await TextGenerator.GenerateToEndAsync(swarm.Local, null, Prompt, Greedy, TestContext.Current.CancellationToken);
        using var model = swarm.Client();
        var ids = new List<int>();
        await foreach (var token in TextGenerator.GenerateAsync(model, null, Prompt, Greedy, TestContext.Current.CancellationToken))
        {
            ids.Add(token.Id);
            if (ids.Count == 10)
            {
                await swarm.KillAsync(0);
            }
            if (ids.Count == 25)
            {
                await swarm.KillAsync(1);
            }
        }
        Assert.Equal(local.Ids, ids);
        Assert.True(model.Bans.IsBanned(swarm.Spans[0].Address));
        Assert.True(model.Bans.IsBanned(swarm.Spans[1].Address));
        Assert.Equal([swarm.Spans[2], swarm.Spans[3]], (await model.FindRouteAsync(0, 4, cancellationToken: TestContext.Current.CancellationToken)).Select(r => r.Server));
    }

    [Fact]
    public async Task AStalledServerIsBannedAndRoutedAround()
    {
        var config = ModelTestConfigs.Tiny() with { NumHiddenLayers = 4 };
        await using var swarm = await InferenceSwarm.StartAsync(config, [(0, 4), (0, 4)]);
        var options = Greedy with { MaxNewTokens = 12 };
        var local = await TextGenerator.GenerateToEndAsync(swarm.Local, null, Prompt, options, TestContext.Current.CancellationToken);
        using var model = swarm.Client(new Pollen.Inference.Client.SwarmModelOptions { StepTimeout = TimeSpan.FromSeconds(1) });
        using var gate = new ManualResetEventSlim();
        Task<bool>? stall = null;
        var ids = new List<int>();
        await foreach (var token in TextGenerator.GenerateAsync(model, null, Prompt, options, TestContext.Current.CancellationToken))
        {
            ids.Add(token.Id);
            if (ids.Count == 4)
            {
                // the first server stops computing: its next step exceeds the step timeout
                stall = swarm.Hosts[0]!.Server.RunOnComputeThreadAsync(() => gate.Wait(TimeSpan.FromSeconds(30)));
            }
        }
        gate.Set();
        Assert.True(await stall!);
        Assert.Equal(local.Ids, ids);
        Assert.True(model.Bans.IsBanned(swarm.Spans[0].Address));
        Assert.Equal(swarm.Spans[1], Assert.Single((await model.FindRouteAsync(0, 4, cancellationToken: TestContext.Current.CancellationToken))).Server);
    }
}
