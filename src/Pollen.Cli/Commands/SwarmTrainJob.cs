using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Pollen.Model.Checkpoints;
using Pollen.Model.Llama;
using Pollen.Model.Tokenizers;
using Pollen.Swarm;
using Pollen.Swarm.Identity;
using Pollen.Training.Collaborative;
using Pollen.Training.Collaborative.Network;
using Pollen.Training.Local;
using static TorchSharp.torch;

namespace Pollen.Cli.Commands;

/// <summary>What <c>pollen train --swarm</c> needs beyond the local settings.</summary>
internal sealed record SwarmTrainSettings(string RunId, int Rounds, int InnerSteps, DeltaCompression Compression, Aggregation Aggregation,
    (int Index, int Count)? Shard, TimeSpan MatchmakingWindow, TimeSpan PartTimeout, int CheckpointEvery);

/// <summary>
/// Collaborative training: this process is one DiLoCo peer of a run. It joins the swarm, catches up from
/// its own checkpoint or from peers (whichever is newer), then runs rounds (inner steps, matchmaking,
/// all-reduce, outer step) until the run's round count, checkpointing every few rounds.
/// </summary>
internal static class SwarmTrainJob
{
    public static async Task<int> RunAsync(TrainSettings s, SwarmTrainSettings w, SwarmOptions swarmOptions, ILoggerFactory logging, CancellationToken ct)
    {
        var log = s.Json ? Console.Error : Console.Out;
        var resuming = DilocoCheckpoint.Exists(s.Out);
        if (File.Exists(Path.Combine(s.Out, Trainer.StateFile)) || (!resuming && File.Exists(Path.Combine(s.Out, "config.json"))))
        {
            throw new UsageException($"{s.Out} holds something other than a swarm training checkpoint; use another --out");
        }
        using var identity = NodeIdentity.LoadOrCreate(swarmOptions.Home);
        using var model = resuming ? ModelCheckpoint.Load(s.Out) : new Transformer(ModelConfigs.Resolve(s.Config), seed: s.Seed); // the run's seed: same start on every peer
        var config = model.Config;
        if (s.SeqLen == 0)
        {
            s = s with { SeqLen = Math.Min(config.MaxPositionEmbeddings, 256) };
        }
        if (s.SeqLen < 0 || s.SeqLen > config.MaxPositionEmbeddings)
        {
            throw new UsageException($"--seq-len must be in 1..{config.MaxPositionEmbeddings} (the model's context), got {s.SeqLen}");
        }
        var all = TrainJob.LoadData(s, s.Seed, log, out var unigram); // the run's seed: the same validation split everywhere
        var shard = w.Shard is { } k ? all.Shard(k.Index, k.Count) : all;
        // without --shard every peer reads all the data, each in its own order
        var orderSeed = w.Shard is null ? BitConverter.ToInt32(identity.PublicKey, 0) & int.MaxValue : s.Seed;
        var inner = new TrainerOptions { Steps = w.Rounds * w.InnerSteps, BatchSize = s.BatchSize, LearningRate = s.LearningRate, Seed = orderSeed, EvalEvery = int.MaxValue };
        var diloco = new DilocoOptions { InnerSteps = w.InnerSteps, Compression = w.Compression, Aggregation = w.Aggregation };
        using var peer = new DilocoPeer(model, shard, inner, diloco);
        if (resuming)
        {
            Resume(peer, s.Out, w.RunId, log);
        }
        using var hub = new AveragingHub();
        await using var node = await SwarmNode.StartAsync(swarmOptions, identity, loggerFactory: logging, services: AveragingServing.Services(hub), cancellationToken: ct).ConfigureAwait(false);
        var options = new SwarmDilocoOptions
        {
            RunId = w.RunId,
            MatchmakingWindow = w.MatchmakingWindow,
            AllReduce = new AllReduceOptions { Compression = w.Compression, Aggregation = w.Aggregation, PartTimeout = w.PartTimeout },
        };
        using var swarm = new SwarmDiloco(peer, node, identity, hub, options, logger: logging.CreateLogger("Pollen.Diloco"));
        log.WriteLine($"peer {node.PeerId} at {node.Address}, run '{w.RunId}': {w.Rounds} rounds of {w.InnerSteps} steps, {w.Compression} parts, {w.Aggregation}; join with --initial-peers {node.Address}");
        TokenizerLoader.SaveByteTokenizer(s.Out);
        double? loss = null;
        var lastRound = TimeSpan.Zero;
        try
        {
            await swarm.PublishProgressAsync(ct).ConfigureAwait(false);
            while (peer.Round < w.Rounds)
            {
                if (await swarm.SyncAsync(ct).ConfigureAwait(false))
                {
                    log.WriteLine($"caught up with the run at round {peer.Round}");
                    continue;
                }
                var report = await swarm.RunRoundAsync(ct, evaluate: true).ConfigureAwait(false);
                lastRound = report.InnerTime + report.AveragingTime;
                loss = report.Loss;
                log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"round {report.Round + 1}/{w.Rounds}  peers {report.GroupSize}  val {loss:F3}  sent {report.BytesSent:N0} B  inner {report.InnerTime.TotalSeconds:F1} s  averaging {report.AveragingTime.TotalSeconds:F1} s  params {report.ParameterHash[..12]}"));
                if (peer.Round % w.CheckpointEvery == 0 || peer.Round == w.Rounds)
                {
                    DilocoCheckpoint.Save(peer, model, s.Out, w.RunId);
                }
            }
            // a last round that split the peers (one was late for matchmaking) is settled here, while all are still up:
            // wait for the ones still averaging (about a round), and the minority takes the majority's state
            var hash = peer.ParameterHash;
            if (!await swarm.FinishAsync(w.Rounds, w.MatchmakingWindow + (2 * lastRound), ct).ConfigureAwait(false))
            {
                log.WriteLine("warning: not every peer of the last round ended with these parameters (see the log above)");
            }
            if (peer.ParameterHash != hash)
            {
                log.WriteLine($"took over the parameters most peers ended with ({peer.ParameterHash[..12]})");
                loss = peer.Evaluate();
                DilocoCheckpoint.Save(peer, model, s.Out, w.RunId);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            log.WriteLine($"stopped during round {peer.Round + 1}; the checkpoint of round {peer.Round} is in {s.Out} — rerun the same command to continue");
            DilocoCheckpoint.Save(peer, model, s.Out, w.RunId);
            return 130;
        }
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"done: {peer.Round} rounds, validation loss {loss:F3} (unigram baseline {unigram:F3}), {swarm.BytesSent:N0} bytes sent; checkpoint in {s.Out}"));
        if (s.Json)
        {
            CommonOptions.PrintJson(new JsonObject
            {
                ["peer_id"] = node.PeerId.ToString(),
                ["rounds"] = peer.Round,
                ["val_loss"] = loss is double l ? Math.Round(l, 5) : null,
                ["unigram_loss"] = Math.Round(unigram, 5),
                ["bytes_sent"] = swarm.BytesSent,
                ["parameter_hash"] = peer.ParameterHash,
                ["out"] = s.Out,
            });
        }
        return 0;
    }

    private static void Resume(DilocoPeer peer, string directory, string runId, TextWriter log)
    {
        try
        {
            if (DilocoCheckpoint.TryResume(peer, directory, runId))
            {
                log.WriteLine($"resumed round {peer.Round} from {directory}");
                return;
            }
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
        // a save was cut between the model and the state file: start from round 0 and let the peers' state win
        Console.Error.WriteLine($"warning: the model in {directory} does not match its {DilocoCheckpoint.StateFile} (an interrupted save); catching up from peers instead");
    }
}
