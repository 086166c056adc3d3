using System.Globalization;
using System.Text.Json.Nodes;
using Pollen.Model.Checkpoints;
using Pollen.Model.Config;
using Pollen.Model.Llama;
using Pollen.Model.Tokenizers;
using Pollen.Training.Data;
using Pollen.Training.Local;
using Spectre.Console;
using TorchSharp;

namespace Pollen.Cli.Commands;

/// <summary>What <c>pollen train</c> and <c>pollen demo</c> need to run a local training job.</summary>
/// <remarks>A <c>SeqLen</c> of 0 means the model's context, at most 256.</remarks>
internal sealed record TrainSettings(
    string? Data, string Config, int Steps, int BatchSize, int SeqLen, double LearningRate, int Seed, string Out, bool Resume, bool Json, int CorpusMegabytes);

/// <summary>Builds the data, model and trainer for a local run, shows progress and writes the checkpoint.</summary>
internal static class TrainJob
{
    /// <summary>Seed of the built-in synthetic corpus (fixed, so every run sees the same text).</summary>
    public const int CorpusSeed = 1234;

    public static TrainResult Run(TrainSettings s, CancellationToken cancellationToken, out double unigramLoss)
    {
        var log = s.Json ? Console.Error : Console.Out;
        var stateExists = File.Exists(Path.Combine(s.Out, Trainer.StateFile));
        if (stateExists && !s.Resume)
        {
            throw new UsageException($"{s.Out} already holds a training checkpoint; pass --resume to continue it, or --out to start a new run elsewhere");
        }
        var config = stateExists ? ModelConfig.Load(s.Out) : ModelConfigs.Resolve(s.Config);
        if (s.SeqLen == 0)
        {
            s = s with { SeqLen = Math.Min(config.MaxPositionEmbeddings, 256) };
        }
        if (s.SeqLen < 0 || s.SeqLen > config.MaxPositionEmbeddings)
        {
            throw new UsageException($"--seq-len must be in 1..{config.MaxPositionEmbeddings} (the model's context), got {s.SeqLen}");
        }
        var tokenizer = ByteTokenizer.Instance;
        if (config.VocabSize < tokenizer.VocabSize)
        {
            throw new UsageException($"the model's vocab_size {config.VocabSize} is smaller than the byte tokenizer's {tokenizer.VocabSize} ids");
        }

        var data = LoadData(s, s.Seed, log, out unigramLoss);

        using var model = new Transformer(config, seed: s.Seed);
        log.WriteLine($"model: {config}");
        var options = new TrainerOptions { Steps = s.Steps, BatchSize = s.BatchSize, LearningRate = s.LearningRate, Seed = s.Seed };
        using var trainer = new Trainer(model, data, options, s.Out);
        if (s.Resume && trainer.TryResume())
        {
            log.WriteLine($"resumed from {s.Out} at step {trainer.Step}");
        }
        TokenizerLoader.SaveByteTokenizer(s.Out);
        var result = RunWithProgress(trainer, options, log, s.Json, cancellationToken);
        if (result.Steps < s.Steps)
        {
            log.WriteLine($"stopped at step {result.Steps} of {s.Steps}; the checkpoint in {s.Out} is saved — continue with the same command plus --resume");
        }
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"done: step {result.Steps}, train loss {result.TrainLoss:F3}, validation loss {result.ValLoss:F3} (unigram baseline {unigramLoss:F3}), {result.TokensPerSecond:F0} tokens/s, {result.Elapsed.TotalSeconds:F0} s; checkpoint in {s.Out}"));
        return result;
    }

    /// <summary>The token dataset of --data (or the built-in corpus), split into train and validation sequences of s.SeqLen.</summary>
    public static TokenDataset LoadData(TrainSettings s, int orderSeed, TextWriter log, out double unigramLoss)
    {
        var documents = s.Data is null
            ? SyntheticCorpus.Stories(CorpusSeed, (long)s.CorpusMegabytes * 1024 * 1024).ToList()
            : TextCorpus.Load(s.Data);
        var data = TokenDataset.FromDocuments(documents, ByteTokenizer.Instance, s.SeqLen, seed: orderSeed);
        unigramLoss = data.UnigramBaseline();
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"data: {(s.Data ?? "built-in synthetic stories")} — {data.TotalTokens:N0} tokens, {data.TrainSequences:N0} train / {data.ValidationSequences:N0} validation sequences of {s.SeqLen}; unigram baseline {unigramLoss:F3} nats/token"));
        return data;
    }

    public static JsonObject ToJson(TrainResult r, double unigram) => new()
    {
        ["train_loss"] = Math.Round(r.TrainLoss, 5),
        ["val_loss"] = Math.Round(r.ValLoss, 5),
        ["unigram_loss"] = Math.Round(unigram, 5),
        ["tokens_per_s"] = Math.Round(r.TokensPerSecond, 1),
        ["steps"] = r.Steps,
        ["elapsed_s"] = Math.Round(r.Elapsed.TotalSeconds, 2),
        ["out"] = r.CheckpointDirectory,
    };

    private static TrainResult RunWithProgress(Trainer trainer, TrainerOptions options, TextWriter log, bool json, CancellationToken cancellationToken)
    {
        var interactive = !json && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
        if (!interactive)
        {
            var every = Math.Max(1, options.Steps / 20);
            trainer.Progress += p =>
            {
                if (p.Step % every == 0 || p.Step == p.TotalSteps)
                {
                    log.WriteLine(Describe(p));
                }
            };
            return trainer.Run(cancellationToken);
        }
        TrainResult? result = null;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("training", maxValue: options.Steps);
                task.Value = trainer.Step;
                trainer.Progress += p =>
                {
                    task.Value = p.Step;
                    task.Description = Markup.Escape(Describe(p));
                };
                result = trainer.Run(cancellationToken);
            });
        return result!;
    }

    private static string Describe(TrainProgress p) => string.Create(CultureInfo.InvariantCulture,
        $"step {p.Step}/{p.TotalSteps}  loss {p.TrainLoss:F3}  val {(p.ValLoss is double v ? v.ToString("F3", CultureInfo.InvariantCulture) : "-")}  lr {p.LearningRate:E2}  {p.TokensPerSecond:F0} tok/s  ETA {p.Eta:mm\\:ss}");
}
