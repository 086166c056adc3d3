using System.Diagnostics;
using System.Text.Json.Nodes;
using Pollen.Model.Config;
using Pollen.Model.Llama;
using Pollen.Model.Tokenizers;
using Pollen.Swarm;
using Pollen.Swarm.Identity;
using Pollen.Training.Collaborative;
using Pollen.Training.Collaborative.Network;
using Pollen.Training.Data;
using Pollen.Training.Local;
using static TorchSharp.torch;

namespace Pollen.Bench;

/// <summary>
/// <c>pollen bench train-swarm</c>, in-process form: k peers in one process, each on its own shard,
/// compared at equal tokens against the synchronous data-parallel baseline (gradients averaged every
/// step — computed exactly as one model at batch k·B). Parts pass through the real wire codec and
/// aggregation; bytes per peer are those a butterfly all-reduce sends, 2·(k−1)/k of an encoded vector
/// per exchange (the networked form of this benchmark measures them on the wire).
/// </summary>
public static class TrainSwarmBench
{
    /// <summary>Default rounds: DiLoCo's gap to the baseline closes as rounds go on (docs/benchmarks.md), so the comparison runs long enough.</summary>
    public const int DefaultRounds = 60;

    /// <summary>Default outer learning rate of this comparison (plain averaging; tuned at this scale, see docs/benchmarks.md).</summary>
    public const double DefaultOuterLearningRate = 1.0;

    /// <summary>Default outer momentum of this comparison (the paper's 0.9 needs more rounds than a benchmark runs).</summary>
    public const double DefaultOuterMomentum = 0.4;

    /// <summary>Settings.</summary>
    /// <param name="Peers">k.</param>
    /// <param name="Rounds">DiLoCo rounds R; the baseline takes R·H steps.</param>
    /// <param name="InnerSteps">H.</param>
    /// <param name="BatchSize">Per-peer batch B.</param>
    /// <param name="SeqLen">Tokens per sequence.</param>
    /// <param name="Network">Run DiLoCo through real swarm peers on 127.0.0.1 (DHT matchmaking, butterfly all-reduce over gRPC) and count bytes on the wire.</param>
    /// <param name="OuterLearningRate">Outer Nesterov learning rate η.</param>
    /// <param name="OuterMomentum">Outer Nesterov momentum μ.</param>
    /// <param name="InnerLearningRate">Peak learning rate of the DiLoCo peers' inner AdamW; null keeps the baseline's.</param>
    /// <param name="Runs">Which runs to make: any of "baseline", "f32", "int8" (null: all three).</param>
    /// <param name="Parallel">Make the runs at the same time, each on a thread of its own (in-process form only); the results are the same.</param>
    public sealed record Settings(int Peers = 4, int Rounds = DefaultRounds, int InnerSteps = 50, int BatchSize = 16, int SeqLen = 128, bool Network = false,
        double OuterLearningRate = DefaultOuterLearningRate, double OuterMomentum = DefaultOuterMomentum, double? InnerLearningRate = null,
        IReadOnlyCollection<string>? Runs = null, bool Parallel = false)
    {
        /// <summary>The run names <see cref="Runs"/> accepts.</summary>
        public static readonly IReadOnlyList<string> RunNames = ["baseline", "f32", "int8"];

        /// <summary>Whether run <paramref name="name"/> is to be made.</summary>
        public bool Makes(string name) => Runs is null || Runs.Contains(name);
    }

    /// <summary>Runs the baseline and DiLoCo with f32 and int8 parts; returns the scenario's JSON.</summary>
    /// <param name="s">What to run.</param>
    /// <param name="log">Where each run's result line goes (null: nowhere).</param>
    /// <param name="progress">Where a line goes every tenth of each run (null: nowhere).</param>
    /// <param name="cancellationToken">Stops the runs.</param>
    public static JsonObject Run(Settings s, Action<string>? log = null, Action<string>? progress = null, CancellationToken cancellationToken = default)
    {
        var config = ModelPresets.Get("dev");
        var data = TokenDataset.FromDocuments(SyntheticCorpus.Stories(1234, 4L * 1024 * 1024), ByteTokenizer.Instance, s.SeqLen, seed: 0);
        var totalSteps = s.Rounds * s.InnerSteps;
        var inner = new TrainerOptions { Steps = totalSteps, BatchSize = s.BatchSize, EvalEvery = int.MaxValue, EvalBatches = 32, CheckpointEvery = 0 };
        long parameters = config.ParameterCount();
        var baselineBytes = (long)(2.0 * (s.Peers - 1) / s.Peers * parameters * 4 * totalSteps);
        var peerInner = s.InnerLearningRate is { } lr ? inner with { LearningRate = lr } : inner;

        // each run is independent and deterministic (its own models, seeds and data order), so running them
        // at the same time changes only the wall time
        var runs = new List<(string Name, Func<(double Loss, long Bytes)> Work)>();
        if (s.Makes("baseline"))
        {
            runs.Add(("baseline", () =>
            {
                using var model = new Transformer(config, seed: 0);
                using var trainer = new Trainer(model, data, inner with { BatchSize = s.BatchSize * s.Peers }, outDir: null);
                var started = Stopwatch.StartNew();
                for (var round = 1; round <= s.Rounds; round++)
                {
                    trainer.RunUntil((long)round * s.InnerSteps, cancellationToken); // the steps of one DiLoCo round at a time, for progress
                    Report(progress, "baseline", round, s.Rounds, started);
                }
                return (trainer.Evaluate(), baselineBytes);
            }
            ));
        }
        foreach (var compression in new[] { DeltaCompression.F32, DeltaCompression.Int8 })
        {
            var name = compression.ToString().ToLowerInvariant();
            if (s.Makes(name))
            {
                runs.Add((name, () => s.Network
                    ? DilocoNetworkAsync(config, data, peerInner, s, compression, cancellationToken).GetAwaiter().GetResult()
                    : Diloco(config, data, peerInner, s, compression, progress, cancellationToken)));
            }
        }
        (double Loss, long Bytes) Measure(string name, Func<(double Loss, long Bytes)> work)
        {
            var clock = Stopwatch.StartNew();
            var (loss, bytes) = work();
            log?.Invoke(name == "baseline"
                ? $"synchronous baseline: val loss {loss:F4}, {bytes / 1e6:F1} MB sent per peer, {clock.Elapsed.TotalSeconds:F0} s"
                : $"DiLoCo H={s.InnerSteps} {name}: val loss {loss:F4}, {bytes / 1e6:F2} MB sent per peer, {clock.Elapsed.TotalSeconds:F0} s");
            return (loss, bytes);
        }
        var results = new Dictionary<string, (double Loss, long Bytes)>();
        if (s.Parallel && !s.Network)
        {
            var tasks = runs.Select(r => Task.Factory.StartNew(() => Measure(r.Name, r.Work), cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
            Task.WaitAll(tasks, cancellationToken);
            for (var i = 0; i < runs.Count; i++)
            {
                results[runs[i].Name] = tasks[i].Result;
            }
        }
        else
        {
            foreach (var (name, work) in runs)
            {
                results[name] = Measure(name, work);
            }
        }

        double? baselineLoss = results.TryGetValue("baseline", out var b) ? b.Loss : null;
        var result = new JsonObject
        {
            ["scenario"] = s.Network ? "train-swarm-network" : "train-swarm-inprocess",
            ["peers"] = s.Peers,
            ["parameters"] = parameters,
            ["tokens"] = (long)totalSteps * s.BatchSize * s.Peers * s.SeqLen,
            ["inner_steps"] = s.InnerSteps,
            ["inner_lr"] = s.InnerLearningRate ?? inner.LearningRate,
            ["baseline_lr"] = inner.LearningRate,
            ["outer_lr"] = s.OuterLearningRate,
            ["outer_momentum"] = s.OuterMomentum,
            ["rounds"] = s.Rounds,
            ["parallel"] = s.Parallel && !s.Network,
            ["baseline_val_loss"] = baselineLoss is { } measured ? Math.Round(measured, 5) : null,
            ["baseline_bytes_per_peer"] = baselineBytes,
        };
        foreach (var name in new[] { "f32", "int8" })
        {
            if (results.TryGetValue(name, out var run))
            {
                result[$"diloco_{name}_val_loss"] = Math.Round(run.Loss, 5);
                result[$"diloco_{name}_bytes_per_peer"] = run.Bytes;
                result[$"diloco_{name}_loss_ratio"] = baselineLoss is { } baseline ? Math.Round(run.Loss / baseline, 4) : null;
                result[$"diloco_{name}_bytes_reduction"] = Math.Round((double)baselineBytes / run.Bytes, 1);
            }
        }
        return result;
    }

    /// <summary>DiLoCo between k swarm peers in this process, talking over loopback gRPC; bytes are those each peer actually sent.</summary>
    private static async Task<(double Loss, long BytesPerPeer)> DilocoNetworkAsync(ModelConfig config, TokenDataset data, TrainerOptions inner, Settings s,
        DeltaCompression compression, CancellationToken cancellationToken)
    {
        var options = new DilocoOptions { InnerSteps = s.InnerSteps, Compression = compression, OuterLearningRate = s.OuterLearningRate, OuterMomentum = s.OuterMomentum };
        var swarmOptions = new SwarmDilocoOptions
        {
            RunId = $"bench-{compression}".ToLowerInvariant(),
            AllReduce = new AllReduceOptions { Compression = compression, PartTimeout = TimeSpan.FromMinutes(5) },
            MatchmakingWindow = TimeSpan.FromMinutes(5),
        };
        var peers = new List<(SwarmDiloco Diloco, SwarmNode Node, NodeIdentity Identity, AveragingHub Hub, Transformer Model)>();
        try
        {
            for (var k = 0; k < s.Peers; k++)
            {
                var identity = NodeIdentity.CreateEphemeral();
                var hub = new AveragingHub();
                var nodeOptions = new SwarmOptions { ListenAddress = "127.0.0.1", Home = Path.GetTempPath() };
                if (peers.Count > 0)
                {
                    nodeOptions.InitialPeers.Add(peers[0].Node.Address);
                }
                var node = await SwarmNode.StartAsync(nodeOptions, identity, services: AveragingServing.Services(hub), cancellationToken: cancellationToken).ConfigureAwait(false);
                var model = new Transformer(config, seed: 0);
                var peer = new DilocoPeer(model, data.Shard(k, s.Peers), inner, options);
                peers.Add((new SwarmDiloco(peer, node, identity, hub, swarmOptions), node, identity, hub, model));
            }
            foreach (var p in peers)
            {
                await p.Diloco.PublishProgressAsync(cancellationToken).ConfigureAwait(false);
            }
            for (var round = 0; round < s.Rounds; round++)
            {
                var reports = await Task.WhenAll(peers.Select(p => p.Diloco.RunRoundAsync(cancellationToken))).ConfigureAwait(false);
                if (reports.Select(r => r.ParameterHash).Distinct().Count() != 1 || reports.Any(r => r.GroupSize != s.Peers))
                {
                    throw new InvalidOperationException($"round {round}: peers disagree or a group was incomplete");
                }
            }
            return (peers[0].Diloco.Peer.Evaluate(), (long)peers.Average(p => p.Diloco.BytesSent));
        }
        finally
        {
            foreach (var p in peers)
            {
                await p.Node.DisposeAsync().ConfigureAwait(false);
                p.Diloco.Dispose();
                p.Diloco.Peer.Dispose();
                p.Hub.Dispose();
                p.Identity.Dispose();
                p.Model.Dispose();
            }
        }
    }

    /// <summary>Writes "NAME: round R/N, S s" to <paramref name="progress"/> every tenth of the run.</summary>
    private static void Report(Action<string>? progress, string name, int round, int rounds, Stopwatch clock)
    {
        if (progress is not null && (round == rounds || round % Math.Max(1, rounds / 10) == 0))
        {
            progress($"{name}: round {round}/{rounds}, {clock.Elapsed.TotalSeconds:F0} s");
        }
    }

    private static (double Loss, long BytesPerPeer) Diloco(ModelConfig config, TokenDataset data, TrainerOptions inner, Settings s, DeltaCompression compression,
        Action<string>? progress, CancellationToken cancellationToken)
    {
        var options = new DilocoOptions { InnerSteps = s.InnerSteps, Compression = compression, OuterLearningRate = s.OuterLearningRate, OuterMomentum = s.OuterMomentum };
        var models = Enumerable.Range(0, s.Peers).Select(_ => new Transformer(config, seed: 0)).ToArray();
        var peers = models.Select((m, k) => new DilocoPeer(m, data.Shard(k, s.Peers), inner, options)).ToArray();
        var started = Stopwatch.StartNew();
        try
        {
            for (var round = 0; round < s.Rounds; round++)
            {
                using var scope = NewDisposeScope();
                var parts = peers.Select(p => DeltaCodec.Decode(DeltaCodec.Encode(p.InnerRound(cancellationToken), compression), compression, p.Length)).ToArray();
                var combined = Aggregator.Combine(parts, options.Aggregation);
                foreach (var peer in peers)
                {
                    peer.ApplyOuter(combined);
                }
                Report(progress, compression.ToString().ToLowerInvariant(), round + 1, s.Rounds, started);
            }
            var bytes = (long)(2.0 * (s.Peers - 1) / s.Peers * DeltaCodec.EncodedSize(peers[0].Length, compression) * s.Rounds);
            return (peers[0].Evaluate(), bytes);
        }
        finally
        {
            foreach (var p in peers)
            {
                p.Dispose();
            }
            foreach (var m in models)
            {
                m.Dispose();
            }
        }
    }
}
