using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Pollen.Inference.Client;
using Pollen.Inference.Routing;
using Pollen.Node.Status;
using Pollen.Tests.Swarm;
using Pollen.Training.Collaborative.Network;

namespace Pollen.Tests.Node;

/// <summary>A live node's status: peers from its directory with itself marked, the run from the DHT, live counters, the log.</summary>
public sealed class LiveNodeStatusTests
{
    [Fact]
    public async Task ASnapshotCombinesTheDirectoryTheRunAndTheLiveCounters()
    {
        await using var swarm = await TestSwarm.StartAsync(2, cancellationToken: TestContext.Current.CancellationToken);
        var self = swarm[0];
        var other = swarm[1];
        await Matchmaker.PublishProgressAsync(other.Dht, "run", new ProgressEntry { PeerId = other.PeerId.ToString(), Address = other.Address, Rounds = 7, Tokens = 1000, ParameterHash = new string('a', 64) },
            TimeSpan.FromMinutes(5), TimeProvider.System, TestContext.Current.CancellationToken);
        await Matchmaker.PublishProgressAsync(self.Dht, "run", new ProgressEntry { PeerId = self.PeerId.ToString(), Address = self.Address, Rounds = 6, Tokens = 500, ParameterHash = new string('b', 64) },
            TimeSpan.FromMinutes(5), TimeProvider.System, TestContext.Current.CancellationToken);

        var directory = new StaticServerDirectory(
        [
            new ServerSpan(self.Address, 0, 2) { PeerId = self.PeerId.ToString(), Throughput = 10 },
            new ServerSpan(other.Address, 2, 4) { PeerId = other.PeerId.ToString(), Throughput = 20 },
        ]);
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var log = new RecentLog(time: time);
        long tokens = 0;
        var node = new NodeSummary(self.PeerId.ToString(), self.Address, null, ["train", "serve", "api"], time.GetUtcNow());
        var model = new ModelSummary("m", "f", 4, 100, "tiny");
        await using var status = new LiveNodeStatus(node, model, directory, self.Dht, "run",
            () => new TrainingSummary("run", 6, 1, 5, 100, 0, 0, 2, []),
            () => new ServingSummary(0, 2, 6, 0, Interlocked.Read(ref tokens), 0, 0, 100),
            log, time, NullLogger.Instance, refresh: TimeSpan.FromSeconds(1));
        status.HttpUrl = "http://127.0.0.1:1/";
        log.Add(new LogLine(time.GetUtcNow(), "info", "Pollen.Node", "hello status"));

        // the background reads run once at start, on their own
        await TestSwarm.WaitUntilAsync(() => status.Snapshot() is { Peers.Count: 2, Run: not null }, TimeSpan.FromSeconds(30), "the first refresh");
        var first = status.Snapshot();
        Assert.Equal("http://127.0.0.1:1/", first.Node.HttpUrl);
        Assert.True(Assert.Single(first.Peers, p => p.PeerId == self.PeerId.ToString()).IsSelf);
        Assert.False(Assert.Single(first.Peers, p => p.PeerId == other.PeerId.ToString()).IsSelf);
        Assert.Equal(new RunSummary("run", 7, 1500, 2, new string('a', 64)), first.Run);
        Assert.Equal(6, first.Training!.Round);
        Assert.Contains(first.RecentLog, l => l.Message == "hello status");
        Assert.Equal(0, first.Serving!.TokensPerSecond);

        // tokens served over the next 4 s: 400 → 100 tokens/s
        Interlocked.Exchange(ref tokens, 400);
        time.Advance(TimeSpan.FromSeconds(4));
        Assert.Equal(100, status.Snapshot().Serving!.TokensPerSecond, precision: 6);
    }
}
