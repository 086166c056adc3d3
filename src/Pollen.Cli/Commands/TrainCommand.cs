using System.CommandLine;

namespace Pollen.Cli.Commands;

/// <summary><c>pollen train</c>: trains a model on one machine.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var data = new Option<string?>("--data") { Description = "A .txt/.jsonl file or a directory of them (default: the built-in synthetic stories)." };
        var config = new Option<string>("--config") { Description = "Model preset (dev, small, base, medium) or a config.json path.", DefaultValueFactory = _ => "dev" };
        var steps = new Option<int>("--steps") { Description = "Optimizer steps.", DefaultValueFactory = _ => 600 };
        var batch = new Option<int>("--batch-size") { Description = "Sequences per step.", DefaultValueFactory = _ => 16 };
        var seqLen = new Option<int?>("--seq-len") { Description = "Tokens per sequence (default: the model's context, at most 256). Generation quality falls past the trained length." };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate (warmup, then cosine decay).", DefaultValueFactory = _ => 3e-3 };
        var seed = CommonOptions.Seed("weights and data order");
        var threads = CommonOptions.Threads();
        var outDir = new Option<string>("--out") { Description = "Checkpoint directory.", DefaultValueFactory = _ => Path.Combine("runs", "train") };
        var resume = new Option<bool>("--resume") { Description = "Continue the run whose checkpoint is in --out." };
        var corpusMb = new Option<int>("--corpus-mb") { Description = "Size of the built-in corpus in MB.", DefaultValueFactory = _ => 4 };
        var json = CommonOptions.Json();
        var swarmFlag = new Option<bool>("--swarm") { Description = "Train collaboratively with the peers of --run-id (DiLoCo: local steps, then an all-reduce of pseudo-gradients each round)." };
        var runId = new Option<string>("--run-id") { Description = "With --swarm: the run to train (every peer of a run uses the same --config, --seed and --run-id).", DefaultValueFactory = _ => "pollen" };
        var rounds = new Option<int>("--rounds") { Description = "With --swarm: rounds to train.", DefaultValueFactory = _ => 10 };
        var innerSteps = new Option<int>("--inner-steps") { Description = "With --swarm: local steps per round (H).", DefaultValueFactory = _ => 50 };
        var compression = new Option<string>("--compression") { Description = "With --swarm: pseudo-gradients on the wire: f32, f16 or int8.", DefaultValueFactory = _ => "f32" };
        var aggregation = new Option<string>("--aggregation") { Description = "With --swarm: mean, trimmed-mean or median (the robust ones out-vote a minority of bad updates).", DefaultValueFactory = _ => "mean" };
        var shard = new Option<string?>("--shard") { Description = "With --swarm: train on shard K/N of the data (e.g. 0/3); default: all of it, in this peer's own order." };
        var window = new Option<double>("--matchmaking-seconds") { Description = "With --swarm: how long a round waits for the live peers.", DefaultValueFactory = _ => 30 };
        var partTimeout = new Option<double>("--averaging-timeout") { Description = "With --swarm: seconds a peer waits for others' parts before it drops them.", DefaultValueFactory = _ => 30 };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "With --swarm: save a checkpoint every N rounds.", DefaultValueFactory = _ => 1 };
        var verbose = new Option<bool>("--verbose") { Description = "With --swarm: log swarm activity (debug level)." };
        var swarmBinding = new SwarmOptionsBinding();
        var command = new Command("train", "Train a model locally (or with --swarm, collaboratively); writes a checkpoint (config.json, model.safetensors, optimizer state, metrics.jsonl).")
        {
            data, config, steps, batch, seqLen, lr, seed, threads, outDir, resume, corpusMb, json,
            swarmFlag, runId, rounds, innerSteps, compression, aggregation, shard, window, partTimeout, checkpointEvery, verbose,
        };
        foreach (var option in swarmBinding.All)
        {
            command.Options.Add(option);
        }
        command.SetAction((r, ct) => CommonOptions.RunAsync(async () =>
        {
            CommonOptions.ApplyThreads(r.GetValue(threads));
            var settings = new TrainSettings(r.GetValue(data), r.GetValue(config)!, r.GetValue(steps), r.GetValue(batch), r.GetValue(seqLen) ?? 0,
                r.GetValue(lr), r.GetValue(seed), r.GetValue(outDir)!, r.GetValue(resume), r.GetValue(json), r.GetValue(corpusMb));
            if (settings.CorpusMegabytes <= 0)
            {
                throw new UsageException("--corpus-mb must be positive");
            }
            if (r.GetValue(swarmFlag))
            {
                var swarm = ReadSwarmSettings(r, runId, rounds, innerSteps, compression, aggregation, shard, window, partTimeout, checkpointEvery);
                var swarmOptions = swarmBinding.Bind(r);
                using var logging = NodeLogging.Create(r.GetValue(verbose), quiet: !r.GetValue(verbose));
                return await SwarmTrainJob.RunAsync(settings, swarm, swarmOptions, logging, ct).ConfigureAwait(false);
            }
            var result = TrainJob.Run(settings, ct, out var unigram);
            if (settings.Json)
            {
                CommonOptions.PrintJson(TrainJob.ToJson(result, unigram));
            }
            return result.Steps < settings.Steps ? 130 : 0;
        }));
        return command;
    }

    private static SwarmTrainSettings ReadSwarmSettings(System.CommandLine.ParseResult r, Option<string> runId, Option<int> rounds, Option<int> innerSteps,
        Option<string> compression, Option<string> aggregation, Option<string?> shard, Option<double> window, Option<double> partTimeout, Option<int> checkpointEvery)
    {
        var id = r.GetValue(runId)!;
        try
        {
            Swarm.Records.OwnedRecords.CheckName(id, "--run-id");
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
        if (r.GetValue(rounds) < 1 || r.GetValue(innerSteps) < 1 || r.GetValue(checkpointEvery) < 1)
        {
            throw new UsageException("--rounds, --inner-steps and --checkpoint-every must be positive");
        }
        if (r.GetValue(window) is not (> 0 and <= 3600) || r.GetValue(partTimeout) is not (> 0 and <= 3600))
        {
            throw new UsageException("--matchmaking-seconds and --averaging-timeout must be in (0, 3600]");
        }
        var wire = r.GetValue(compression) switch
        {
            "f32" => Training.Collaborative.DeltaCompression.F32,
            "f16" => Training.Collaborative.DeltaCompression.F16,
            "int8" => Training.Collaborative.DeltaCompression.Int8,
            var other => throw new UsageException($"--compression {other}: choose f32, f16 or int8"),
        };
        var combine = r.GetValue(aggregation) switch
        {
            "mean" => Training.Collaborative.Aggregation.Mean,
            "trimmed-mean" => Training.Collaborative.Aggregation.TrimmedMean,
            "median" => Training.Collaborative.Aggregation.Median,
            var other => throw new UsageException($"--aggregation {other}: choose mean, trimmed-mean or median"),
        };
        (int, int)? part = null;
        if (r.GetValue(shard) is { } text)
        {
            var pieces = text.Split('/');
            if (pieces.Length != 2 || !int.TryParse(pieces[0], System.Globalization.CultureInfo.InvariantCulture, out var k) || !int.TryParse(pieces[1], System.Globalization.CultureInfo.InvariantCulture, out var n)
                || n < 1 || k < 0 || k >= n)
            {
                throw new UsageException($"--shard {text}: give K/N with 0 <= K < N, e.g. 0/3");
            }
            part = (k, n);
        }
        return new SwarmTrainSettings(id, r.GetValue(rounds), r.GetValue(innerSteps), wire, combine, part,
            TimeSpan.FromSeconds(r.GetValue(window)), TimeSpan.FromSeconds(r.GetValue(partTimeout)), r.GetValue(checkpointEvery));
    }
}
