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
        var command = new Command("train", "Train a model locally; writes a checkpoint (config.json, model.safetensors, optimizer state, metrics.jsonl).")
        {
            data, config, steps, batch, seqLen, lr, seed, threads, outDir, resume, corpusMb, json,
        };
        command.SetAction((r, ct) => CommonOptions.RunAsync(() =>
        {
            CommonOptions.ApplyThreads(r.GetValue(threads));
            var settings = new TrainSettings(r.GetValue(data), r.GetValue(config)!, r.GetValue(steps), r.GetValue(batch), r.GetValue(seqLen) ?? 0,
                r.GetValue(lr), r.GetValue(seed), r.GetValue(outDir)!, r.GetValue(resume), r.GetValue(json), r.GetValue(corpusMb));
            if (settings.CorpusMegabytes <= 0)
            {
                throw new UsageException("--corpus-mb must be positive");
            }
            var result = TrainJob.Run(settings, ct, out var unigram);
            if (settings.Json)
            {
                CommonOptions.PrintJson(TrainJob.ToJson(result, unigram));
            }
            return Task.FromResult(result.Steps < settings.Steps ? 130 : 0);
        }));
        return command;
    }
}
