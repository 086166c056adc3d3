using System.CommandLine;
using Pollen.Model.Checkpoints;
using Pollen.Training.Local;

namespace Pollen.Cli.Commands;

/// <summary><c>pollen demo</c>: trains the dev model on the built-in corpus, then samples from it.</summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var steps = new Option<int>("--steps") { Description = "Training steps.", DefaultValueFactory = _ => 600 };
        var prompt = new Option<string>("--prompt") { Description = "Prompt for the sample.", DefaultValueFactory = _ => "Once upon a time" };
        var outDir = new Option<string>("--out") { Description = "Checkpoint directory (replaced on every run).", DefaultValueFactory = _ => Path.Combine("runs", "demo") };
        var threads = CommonOptions.Threads();
        var json = CommonOptions.Json();
        var sampling = new SamplingOptions();
        var command = new Command("demo", "Train the dev model on the built-in synthetic stories (a few minutes on 2 cores), then generate from it.")
        {
            steps, prompt, outDir, threads, json,
        };
        sampling.AddTo(command);
        command.SetAction((r, ct) => CommonOptions.RunAsync(async () =>
        {
            CommonOptions.ApplyThreads(r.GetValue(threads));
            var options = sampling.Read(r);
            var dir = r.GetValue(outDir)!;
            foreach (var file in new[] { Trainer.StateFile, Trainer.MetricsFile, Trainer.OptimizerFile, ModelCheckpoint.WeightsFile })
            {
                var path = Path.Combine(dir, file);
                if (File.Exists(path))
                {
                    File.Delete(path);
                }
            }
            var settings = new TrainSettings(null, "dev", r.GetValue(steps), 16, 0, 3e-3, 0, dir, false, r.GetValue(json), 4);
            var result = TrainJob.Run(settings, ct, out var unigram);
            var log = settings.Json ? Console.Error : Console.Out;
            log.WriteLine();
            log.WriteLine($"sample (pollen generate --model {dir} --prompt \"...\"):");
            var (model, tokenizer) = ModelLoading.Load(dir);
            using var _ = model;
            var ids = GenerateCommand.PromptIds(r.GetValue(prompt), null, tokenizer);
            var sample = await GenerateCommand.StreamAsync(model, tokenizer, ids, options, log, ct).ConfigureAwait(false);
            if (settings.Json)
            {
                var summary = TrainJob.ToJson(result, unigram);
                summary["sample"] = sample;
                CommonOptions.PrintJson(summary);
            }
            return 0;
        }));
        return command;
    }
}
