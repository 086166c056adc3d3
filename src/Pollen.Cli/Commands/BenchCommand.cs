using System.CommandLine;
using Pollen.Bench;
using Pollen.Bench.Inference;
using Pollen.Model.Config;

namespace Pollen.Cli.Commands;

/// <summary><c>pollen bench …</c>: benchmark scenarios that print one JSON object per scenario.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var command = new Command("bench", "Benchmarks; each scenario prints one JSON object with ratios against a baseline measured in the same run.")
        {
            Model(),
            TrainSwarm(),
            Dht(),
            Inference(),
        };
        return command;
    }

    private static Command Inference()
    {
        var servers = new Option<int>("--servers") { Description = "Block servers on 127.0.0.1, each hosting a contiguous part of the blocks.", DefaultValueFactory = _ => 4 };
        var config = new Option<string>("--config") { Description = "Model preset (dev, small, base, medium) or a config.json path; weights are random (seeded).", DefaultValueFactory = _ => "medium" };
        var tokens = new Option<int>("--tokens") { Description = "Tokens generated per session.", DefaultValueFactory = _ => 64 };
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "Prompt length of every session.", DefaultValueFactory = _ => 16 };
        var sessions = new Option<int[]>("--sessions") { Description = "Concurrent session counts (repeatable; the first is the baseline of the ratios).", DefaultValueFactory = _ => [1, 4, 8], AllowMultipleArgumentsPerToken = true };
        var repeats = new Option<int>("--repeats") { Description = "Measurements of each kind, interleaved (the median is reported).", DefaultValueFactory = _ => 5 };
        var seed = CommonOptions.Seed("weights and prompts");
        var threads = CommonOptions.Threads();
        var json = CommonOptions.Json();
        var layout = new Option<Pollen.Inference.Server.WeightLayout>("--weight-layout")
        {
            Description = "How the servers store linear weights: Auto (column-major with one thread, else row-major), RowMajor or ColumnMajor.",
            DefaultValueFactory = _ => Pollen.Inference.Server.WeightLayout.Auto,
        };
        var command = new Command("inference", "Decoding through block servers on loopback against the same model locally: batch-1 tokens/s and ratio, aggregate tokens/s of concurrent sessions, recovery from a killed server.")
        {
            servers, config, tokens, promptTokens, sessions, repeats, seed, threads, json, layout,
        };
        command.SetAction((r, ct) => CommonOptions.RunAsync(async () =>
        {
            CommonOptions.ApplyThreads(r.GetValue(threads));
            var modelConfig = ModelConfigs.Resolve(r.GetValue(config)!);
            var settings = new InferenceBench.Settings(r.GetValue(servers), r.GetValue(promptTokens), r.GetValue(tokens), r.GetValue(repeats), r.GetValue(sessions), r.GetValue(seed), r.GetValue(layout));
            try
            {
                settings.Validate(modelConfig);
            }
            catch (ArgumentException e)
            {
                throw new UsageException(e.Message);
            }
            Action<string>? log = r.GetValue(json) ? null : Console.Error.WriteLine;
            await InferenceBench.RunAsync(modelConfig, settings, CommonOptions.PrintJson, log, ct).ConfigureAwait(false);
            return 0;
        }));
        return command;
    }

    private static Command Dht()
    {
        var nodes = new Option<int>("--nodes") { Description = "In-process peers on loopback.", DefaultValueFactory = _ => 64 };
        var keys = new Option<int>("--keys") { Description = "Keys stored before measuring.", DefaultValueFactory = _ => 32 };
        var lookups = new Option<int>("--lookups") { Description = "Lookups measured per kind (value, node, ping baseline).", DefaultValueFactory = _ => 500 };
        var json = CommonOptions.Json();
        var command = new Command("dht", "DHT lookup latency (median, p99), hops and messages per lookup, next to a single Ping.")
        {
            nodes, keys, lookups, json,
        };
        command.SetAction((r, ct) => CommonOptions.RunAsync(async () =>
        {
            if (r.GetValue(nodes) < 2 || r.GetValue(keys) <= 0 || r.GetValue(lookups) <= 0)
            {
                throw new UsageException("--nodes must be at least 2, --keys and --lookups positive");
            }
            Action<string>? log = r.GetValue(json) ? null : Console.Error.WriteLine;
            var settings = new DhtBench.Settings(r.GetValue(nodes), r.GetValue(keys), r.GetValue(lookups));
            CommonOptions.PrintJson(await DhtBench.RunAsync(settings, log, ct).ConfigureAwait(false));
            return 0;
        }));
        return command;
    }

    private static Command TrainSwarm()
    {
        var peers = new Option<int>("--peers") { Description = "Peers k.", DefaultValueFactory = _ => 4 };
        var rounds = new Option<int>("--rounds") { Description = "DiLoCo rounds R (the baseline takes R·H steps at batch k·B).", DefaultValueFactory = _ => TrainSwarmBench.DefaultRounds };
        var innerSteps = new Option<int>("--inner-steps") { Description = "Local steps per round H.", DefaultValueFactory = _ => 50 };
        var batch = new Option<int>("--batch-size") { Description = "Per-peer batch B.", DefaultValueFactory = _ => 16 };
        var threads = CommonOptions.Threads();
        var json = CommonOptions.Json();
        var outerLr = new Option<double>("--outer-lr") { Description = "Outer Nesterov learning rate η (pollen train's default is the paper's 0.7).", DefaultValueFactory = _ => TrainSwarmBench.DefaultOuterLearningRate };
        var outerMomentum = new Option<double>("--outer-momentum") { Description = "Outer Nesterov momentum μ (pollen train's default is the paper's 0.9).", DefaultValueFactory = _ => TrainSwarmBench.DefaultOuterMomentum };
        var parallel = new Option<bool>("--parallel") { Description = "Make the runs at the same time, each on a thread of its own (in-process form; same results, less wall time with --threads 1 on several cores)." };
        var network = new Option<bool>("--network") { Description = "Run DiLoCo through real swarm peers on 127.0.0.1 (DHT matchmaking, all-reduce over gRPC) and count the bytes sent." };
        var innerLr = new Option<double?>("--inner-lr") { Description = "Peak learning rate of the DiLoCo peers' inner AdamW (default: the baseline's, 3e-3)." };
        var runs = new Option<string[]>("--run") { Description = "Runs to make (repeatable: baseline, f32, int8; default all three). Ratios need the baseline.", AllowMultipleArgumentsPerToken = true };
        var command = new Command("train-swarm", "Synchronous data-parallel baseline vs DiLoCo (f32 and int8 parts) at equal tokens, peers in one process: validation loss and bytes per peer.")
        {
            peers, rounds, innerSteps, batch, threads, json, network, outerLr, outerMomentum, innerLr, runs, parallel,
        };
        command.SetAction((r, ct) => CommonOptions.RunAsync(() =>
        {
            CommonOptions.ApplyThreads(r.GetValue(threads));
            if (r.GetValue(peers) < 1 || r.GetValue(rounds) < 1 || r.GetValue(innerSteps) < 1 || r.GetValue(batch) < 1)
            {
                throw new UsageException("--peers, --rounds, --inner-steps and --batch-size must be positive");
            }
            var selected = r.GetValue(runs) is { Length: > 0 } chosen ? chosen : null;
            if (selected?.FirstOrDefault(n => !TrainSwarmBench.Settings.RunNames.Contains(n)) is { } unknown)
            {
                throw new UsageException($"--run {unknown}: expected one of {string.Join(", ", TrainSwarmBench.Settings.RunNames)}");
            }
            if (r.GetValue(innerLr) is { } lr && !(lr > 0 && double.IsFinite(lr)))
            {
                throw new UsageException($"--inner-lr must be positive (got {lr})");
            }
            Action<string>? log = r.GetValue(json) ? null : Console.Error.WriteLine;
            var settings = new TrainSwarmBench.Settings(r.GetValue(peers), r.GetValue(rounds), r.GetValue(innerSteps), r.GetValue(batch), Network: r.GetValue(network),
                OuterLearningRate: r.GetValue(outerLr), OuterMomentum: r.GetValue(outerMomentum), InnerLearningRate: r.GetValue(innerLr), Runs: selected, Parallel: r.GetValue(parallel));
            // progress goes to stderr even with --json (stdout then carries only the result): a full run takes hours
            CommonOptions.PrintJson(TrainSwarmBench.Run(settings, log, Console.Error.WriteLine, ct));
            return Task.FromResult(0);
        }));
        return command;
    }

    private static Command Model()
    {
        var presets = new Option<string[]>("--preset") { Description = "Presets to measure (repeatable; default: dev and small).", DefaultValueFactory = _ => ["dev", "small"] };
        var model = new Option<string?>("--model") { Description = "Measure an existing checkpoint's prompt and generation tokens/s instead." };
        var steps = new Option<int>("--steps") { Description = "Measured training steps per loop.", DefaultValueFactory = _ => 10 };
        var tokens = new Option<int>("--tokens") { Description = "Tokens generated per measurement.", DefaultValueFactory = _ => 128 };
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "Prompt length for --model.", DefaultValueFactory = _ => 128 };
        var repeats = new Option<int>("--repeats") { Description = "Measurements per loop, interleaved with the baseline (the median is reported).", DefaultValueFactory = _ => 5 };
        var threads = CommonOptions.Threads();
        var json = CommonOptions.Json();
        var dtype = ModelLoading.DtypeOption();
        var command = new Command("model", "Training and generation tokens/s of the presets, next to a bare TorchSharp loop over the same model.")
        {
            presets, model, dtype, steps, tokens, promptTokens, repeats, threads, json,
        };
        command.SetAction((r, ct) => CommonOptions.RunAsync(() =>
        {
            CommonOptions.ApplyThreads(r.GetValue(threads));
            Action<string>? log = r.GetValue(json) ? null : Console.Error.WriteLine;
            if (r.GetValue(steps) <= 0 || r.GetValue(tokens) <= 0 || r.GetValue(repeats) <= 0)
            {
                throw new UsageException("--steps, --tokens and --repeats must be positive");
            }
            if (r.GetValue(model) is string dir)
            {
                var (lm, _) = ModelLoading.Load(dir, ModelLoading.ParseDtype(r.GetValue(dtype)));
                using var owned = lm;
                CommonOptions.PrintJson(ModelBench.RunCheckpoint(lm, dir, r.GetValue(promptTokens), r.GetValue(tokens), r.GetValue(repeats), log));
                return Task.FromResult(0);
            }
            var settings = new ModelBench.Settings(TrainSteps: r.GetValue(steps), GenerateTokens: r.GetValue(tokens), Repeats: r.GetValue(repeats));
            foreach (var preset in r.GetValue(presets)!)
            {
                if (!ModelPresets.Names.Contains(preset))
                {
                    throw new UsageException($"--preset {preset}: choose from {string.Join(", ", ModelPresets.Names)}");
                }
                ct.ThrowIfCancellationRequested();
                CommonOptions.PrintJson(ModelBench.RunPreset(preset, settings, log));
                ct.ThrowIfCancellationRequested();
                CommonOptions.PrintJson(ModelBench.RunSessions(preset, sessions: 8, steps: 10, settings.Repeats, log));
            }
            return Task.FromResult(0);
        }));
        return command;
    }
}
