using Pollen.Model.Llama;
using Pollen.Swarm;
using Pollen.Swarm.Identity;
using Pollen.Tests.Swarm;
using Pollen.Training.Collaborative;
using Pollen.Training.Collaborative.Network;
using Pollen.Training.Data;
using Pollen.Training.Local;

namespace Pollen.Tests.Training.Collaborative;

/// <summary>DiLoCo between swarm peers on 127.0.0.1: matchmaking in the DHT, butterfly all-reduce over gRPC.</summary>
public sealed class SwarmDilocoTests
{
    private static readonly Lazy<TokenDataset> Data = new(() => TrainingTestData.Stories(corpusSeed: 31, dataSeed: 2));

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ThreePeersStayIdenticalAfterEveryRoundAndLossFalls()
    {
        await using var run = await DilocoSwarm.StartAsync(3, rounds: 3);
        var before = run[0].Peer.Evaluate();
        for (var round = 0; round < 3; round++)
        {
            var reports = await Task.WhenAll(run.Select(p => p.RunRoundAsync(Ct)));
            Assert.All(reports, r => Assert.Equal(3, r.GroupSize));
            Assert.All(reports, r => Assert.Equal([3, 3, 3], r.ContributorsPerSlice));
            Assert.Single(reports.Select(r => r.ParameterHash).Distinct());
            Assert.Single(run.Select(p => p.Peer.ParameterHash).Distinct());
        }
        var after = run[0].Peer.Evaluate();
        Assert.True(after < before - 1.0, $"validation loss {before:F3} → {after:F3}");
        // butterfly: per round each peer sends 2/3 of its parts and serves its reduced third to the 2 others
        var expected = 3 * 2.0 * 2 / 3 * DeltaCodec.EncodedSize(run[0].Peer.Length, DeltaCompression.F32);
        Assert.All(run, p => Assert.InRange(p.BytesSent, expected * 0.99, expected * 1.01));
        var progress = await Matchmaker.ReadProgressAsync(run.Node(0).Dht, DilocoSwarm.RunId, Ct);
        Assert.Equal(3, progress.Count);
        Assert.All(progress, p => Assert.Equal(3, p.Rounds));
        Assert.Single(progress.Select(p => p.ParameterHash).Distinct());
    }

    [Fact]
    public async Task APeerKilledDuringARoundIsDroppedAndTheOthersContinue()
    {
        await using var run = await DilocoSwarm.StartAsync(3, rounds: 3, window: TimeSpan.FromSeconds(3), partTimeout: TimeSpan.FromSeconds(2));
        await Task.WhenAll(run.Select(p => p.RunRoundAsync(Ct)));

        // round 1: peer 2 dies as soon as it has said it is ready
        var survivors = new[] { run[0].RunRoundAsync(Ct), run[1].RunRoundAsync(Ct) };
        var doomed = run[2].RunRoundAsync(Ct);
        await TestSwarm.WaitUntilAsync(() => run.Node(0).Dht.GetAsync(Matchmaker.RoundKey(DilocoSwarm.RunId, 1), Ct).Result.Entries.Count == 3,
            TimeSpan.FromSeconds(60), "all three ready for round 1");
        await run.KillAsync(2);
        // the dead peer's own round ends too (it cannot reach anyone: it finishes alone or fails), within the deadlines
        await Task.WhenAny(doomed, Task.Delay(TimeSpan.FromSeconds(60), Ct));
        Assert.True(doomed.IsCompleted, "the killed peer's round hung");
        var reports = await Task.WhenAll(survivors).WaitAsync(TimeSpan.FromSeconds(60), Ct);
        Assert.Single(reports.Select(r => r.ParameterHash).Distinct());

        // round 2 goes on without it, and nothing became NaN
        var next = await Task.WhenAll(run[0].RunRoundAsync(Ct), run[1].RunRoundAsync(Ct)).WaitAsync(TimeSpan.FromSeconds(60), Ct);
        Assert.All(next, r => Assert.Equal(2, r.GroupSize));
        Assert.Single(next.Select(r => r.ParameterHash).Distinct());
        Assert.True(double.IsFinite(run[0].Peer.Evaluate()));
    }
}

public sealed class SwarmDilocoJoinTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task AFreshPeerJoiningLateDownloadsTheStateAndContributesToTheNextRound()
    {
        await using var run = await DilocoSwarm.StartAsync(2, rounds: 4);
        for (var round = 0; round < 2; round++)
        {
            await Task.WhenAll(run.Select(p => p.RunRoundAsync(Ct)));
        }
        var late = await run.AddPeerAsync(4, modelSeed: 99); // other initial weights, round 0
        Assert.NotEqual(run[0].Peer.ParameterHash, late.Peer.ParameterHash);
        Assert.True(await late.SyncAsync(Ct));
        Assert.Equal(run[0].Peer.ParameterHash, late.Peer.ParameterHash);
        Assert.Equal(2, late.Peer.Round);
        Assert.Equal(run[0].Peer.InnerStep, late.Peer.InnerStep); // its schedule continues where the others are
        Assert.False(await run[0].SyncAsync(Ct)); // peers in step do nothing

        var reports = await Task.WhenAll(run.Select(p => p.RunRoundAsync(Ct)));
        Assert.All(reports, r => Assert.Equal(3, r.GroupSize));
        Assert.All(reports, r => Assert.Equal([3, 3, 3], r.ContributorsPerSlice));
        Assert.Single(reports.Select(r => r.ParameterHash).Distinct());
    }

    [Fact]
    public async Task ALatePeerRetriesWhenThePeersMovedOnBeforeTheirProgressSaidSo()
    {
        await using var run = await DilocoSwarm.StartAsync(2, rounds: 4);
        await Task.WhenAll(run.Select(p => p.RunRoundAsync(Ct)));
        var failed = new DownloadFailures();
        var late = await run.AddPeerAsync(4, modelSeed: 99, logger: failed);

        // both peers take their next outer step but have not published it yet: their state no longer has the
        // hash their progress names, so the first download attempt is refused
        foreach (var peer in run.Take(2))
        {
            using var zero = TorchSharp.torch.zeros(peer.Peer.Length);
            peer.Peer.ApplyOuter(zero); // momentum alone moves the parameters
        }
        var syncing = late.SyncAsync(Ct);
        await failed.Count(2).WaitAsync(TimeSpan.FromSeconds(60), Ct);
        Assert.False(syncing.IsCompleted);
        await Task.WhenAll(run.Take(2).Select(p => p.PublishProgressAsync(Ct)));

        Assert.True(await syncing);
        Assert.Equal(run[0].Peer.ParameterHash, late.Peer.ParameterHash);
        Assert.Equal(2, late.Peer.Round);
    }

    [Fact]
    public async Task PeersWhoseLastRoundSplitWaitForEachOtherAndFinishWithTheSameParameters()
    {
        await using var run = await DilocoSwarm.StartAsync(2, rounds: 2, window: TimeSpan.FromSeconds(1), partTimeout: TimeSpan.FromSeconds(2));
        await Task.WhenAll(run.Select(p => p.RunRoundAsync(Ct)));

        // the last round: peer 0 averages alone (peer 1 is late) and waits for peer 1 to finish
        var first = await run[0].RunRoundAsync(Ct);
        var finishing = run[0].FinishAsync(2, TimeSpan.FromMinutes(2), Ct);
        Assert.False(finishing.IsCompleted); // peer 1 is still in the last round
        var second = await run[1].RunRoundAsync(Ct);
        Assert.NotEqual(first.ParameterHash, second.ParameterHash);

        var finished = await Task.WhenAll(finishing, run[1].FinishAsync(2, TimeSpan.FromMinutes(2), Ct));
        Assert.All(finished, Assert.True);
        Assert.Equal(new[] { first.ParameterHash, second.ParameterHash }.Min(StringComparer.Ordinal), run[0].Peer.ParameterHash);
        Assert.Equal(run[0].Peer.ParameterHash, run[1].Peer.ParameterHash);
    }

    [Fact]
    public async Task TwoPeersThatSplitAtTheSameRoundConvergeOnOneOfTheirStates()
    {
        // two peers at round 0 with different parameters (as after a round each averaged alone): neither
        // group is larger, so the one with the larger hash takes the other's state
        await using var run = await DilocoSwarm.StartAsync(1, rounds: 2);
        var other = await run.AddPeerAsync(2, modelSeed: 99);
        var hashes = new[] { run[0].Peer.ParameterHash, other.Peer.ParameterHash };
        Assert.NotEqual(hashes[0], hashes[1]);
        var synced = new[] { await run[0].SyncAsync(Ct), await other.SyncAsync(Ct) };
        Assert.Equal(1, synced.Count(s => s));
        Assert.Equal(hashes.Min(StringComparer.Ordinal), run[0].Peer.ParameterHash);
        Assert.Equal(run[0].Peer.ParameterHash, other.Peer.ParameterHash);
        Assert.False(await run[0].SyncAsync(Ct)); // in step now: nothing more to do
        Assert.False(await other.SyncAsync(Ct));
    }

    [Fact]
    public async Task APeerThatSplitFromAPeerThatIsGoneGoesOnWithItsOwnState()
    {
        // as above, but the peer whose state would win dies before the other takes it over: its progress is
        // still in the DHT, its state cannot be downloaded, and the survivor, not behind, keeps its own
        await using var run = await DilocoSwarm.StartAsync(1, rounds: 2);
        var other = await run.AddPeerAsync(2, modelSeed: 99);
        var (winner, loser) = string.CompareOrdinal(run[0].Peer.ParameterHash, other.Peer.ParameterHash) < 0 ? (0, 1) : (1, 0);
        var survivor = loser == 0 ? run[0] : other;
        var own = survivor.Peer.ParameterHash;
        await run.KillAsync(winner);
        Assert.False(await survivor.SyncAsync(Ct));
        Assert.Equal(own, survivor.Peer.ParameterHash);
    }
}

/// <summary>A logger that counts failed state downloads (event 502) and lets a test wait for them.</summary>
internal sealed class DownloadFailures : Microsoft.Extensions.Logging.ILogger
{
    private readonly List<(int Count, TaskCompletionSource Reached)> _waiters = [];
    private int _count;

    /// <summary>Completes once <paramref name="count"/> downloads have failed.</summary>
    public Task Count(int count)
    {
        lock (_waiters)
        {
            if (_count >= count)
            {
                return Task.CompletedTask;
            }
            var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((count, reached));
            return reached.Task;
        }
    }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

    public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception,
        Func<TState, Exception?, string> formatter)
    {
        if (eventId.Id != 502)
        {
            return;
        }
        lock (_waiters)
        {
            _count++;
            foreach (var waiter in _waiters.Where(w => w.Count <= _count))
            {
                waiter.Reached.TrySetResult();
            }
        }
    }
}

public sealed class SwarmDilocoRobustnessTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task RobustAggregationOutvotesAPeerSendingBadUpdatesAndTheMeanDoesNot()
    {
        var clean = await FinalLossAsync(Aggregation.Mean, bad: null);
        var median = await FinalLossAsync(Aggregation.Median, bad: d => d * 100);
        var trimmed = await FinalLossAsync(Aggregation.TrimmedMean, bad: d => TorchSharp.torch.randn_like(d) * 0.5);
        var mean = await FinalLossAsync(Aggregation.Mean, bad: d => d * 100);
        TestContext.Current.TestOutputHelper?.WriteLine($"validation loss: clean {clean:F3}, median with Δ×100 {median:F3}, trimmed mean with noise {trimmed:F3}, mean with Δ×100 {mean:F3}");
        Assert.True(Math.Abs(median - clean) <= 0.1 * clean, $"median {median:F3} vs clean {clean:F3}");
        Assert.True(Math.Abs(trimmed - clean) <= 0.1 * clean, $"trimmed mean {trimmed:F3} vs clean {clean:F3}");
        Assert.True(!double.IsFinite(mean) || mean > 1.5 * clean, $"the plain mean should be wrecked: {mean:F3} vs clean {clean:F3}");
    }

    /// <summary>Validation loss after 3 rounds of 4 peers, the last of which (if <paramref name="bad"/>) tampers with its Δ.</summary>
    private static async Task<double> FinalLossAsync(Aggregation aggregation, Func<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor>? bad)
    {
        await using var run = await DilocoSwarm.StartAsync(4, rounds: 3, aggregation: aggregation);
        run[3].TamperDelta = bad;
        for (var round = 0; round < 3; round++)
        {
            var reports = await Task.WhenAll(run.Select(p => p.RunRoundAsync(Ct)));
            Assert.Single(reports.Select(r => r.ParameterHash).Distinct());
        }
        return run[0].Peer.Evaluate();
    }
}

/// <summary>N DiLoCo peers, each a swarm peer (peer 0 founds the DHT) with its own model, shard and averaging service.</summary>
internal sealed class DilocoSwarm : IAsyncDisposable, IEnumerable<SwarmDiloco>
{
    public const string RunId = "test-run";

    private readonly List<(SwarmDiloco Diloco, SwarmNode Node, NodeIdentity Identity, AveragingHub Hub, Transformer Model)> _peers = [];
    private readonly HashSet<int> _killed = [];

    public SwarmDiloco this[int index] => _peers[index].Diloco;

    public SwarmNode Node(int index) => _peers[index].Node;

    public static async Task<DilocoSwarm> StartAsync(int count, int rounds, TimeSpan? window = null, TimeSpan? partTimeout = null, Aggregation aggregation = Aggregation.Mean)
    {
        var swarm = new DilocoSwarm();
        var diloco = new DilocoOptions { InnerSteps = 10, Aggregation = aggregation };
        var inner = new TrainerOptions { Steps = rounds * diloco.InnerSteps, BatchSize = 8, LearningRate = 3e-3, EvalEvery = 1000, EvalBatches = 4 };
        var options = new SwarmDilocoOptions
        {
            RunId = RunId,
            MatchmakingWindow = window ?? TimeSpan.FromSeconds(30),
            AllReduce = new AllReduceOptions { PartTimeout = partTimeout ?? TimeSpan.FromSeconds(30), Aggregation = aggregation },
        };
        swarm._options = options;
        swarm._inner = inner;
        swarm._diloco = diloco;
        for (var k = 0; k < count; k++)
        {
            await swarm.AddPeerAsync(count);
        }
        return swarm;
    }

    private SwarmDilocoOptions _options = null!;
    private TrainerOptions _inner = null!;
    private DilocoOptions _diloco = null!;

    /// <summary>Starts one more peer (shard k of <paramref name="shards"/>) and publishes its progress.</summary>
    public async Task<SwarmDiloco> AddPeerAsync(int shards, int modelSeed = 11, Microsoft.Extensions.Logging.ILogger? logger = null)
    {
        var k = _peers.Count;
        var identity = NodeIdentity.CreateEphemeral();
        var hub = new AveragingHub();
        var swarmOptions = new SwarmOptions { ListenAddress = "127.0.0.1", Home = Path.GetTempPath() };
        if (k > 0)
        {
            swarmOptions.InitialPeers.Add(_peers[0].Node.Address);
        }
        var node = await SwarmNode.StartAsync(swarmOptions, identity, services: AveragingServing.Services(hub), cancellationToken: TestContext.Current.CancellationToken);
        var model = new Transformer(TrainingTestData.Tiny, seed: modelSeed);
        var peer = new DilocoPeer(model, Data.Value.Shard(k % shards, shards), _inner, _diloco);
        var diloco = new SwarmDiloco(peer, node, identity, hub, _options, logger: logger);
        _peers.Add((diloco, node, identity, hub, model));
        await diloco.PublishProgressAsync(TestContext.Current.CancellationToken);
        return diloco;
    }

    private static readonly Lazy<TokenDataset> Data = new(() => TrainingTestData.Stories(corpusSeed: 31, dataSeed: 2));

    public async Task KillAsync(int index)
    {
        if (_killed.Add(index))
        {
            await _peers[index].Node.DisposeAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        for (var i = 0; i < _peers.Count; i++)
        {
            await KillAsync(i);
            var p = _peers[i];
            p.Diloco.Dispose();
            p.Diloco.Peer.Dispose();
            p.Hub.Dispose();
            p.Identity.Dispose();
            p.Model.Dispose();
        }
    }

    public IEnumerator<SwarmDiloco> GetEnumerator() => _peers.Select(p => p.Diloco).GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}
