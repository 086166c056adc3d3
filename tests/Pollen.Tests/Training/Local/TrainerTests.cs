using Pollen.Model.Checkpoints;
using Pollen.Model.Config;
using Pollen.Model.Llama;
using Pollen.Model.Tokenizers;
using Pollen.Training.Data;
using Pollen.Training.Local;
using Pollen.Training.Optim;
using static TorchSharp.torch;

namespace Pollen.Tests.Training.Local;

public class TrainerTests
{
    private static readonly ModelConfig Tiny = TrainingTestData.Tiny;

    private static readonly Lazy<TokenDataset> Data = new(() => TrainingTestData.Stories(corpusSeed: 99, dataSeed: 1));

    private static TrainerOptions Options(int steps) => new()
    {
        Steps = steps,
        BatchSize = 8,
        LearningRate = 3e-3,
        EvalEvery = 1000,
        EvalBatches = 4,
        CheckpointEvery = 0,
    };

    private static List<double> Losses(Trainer trainer)
    {
        var losses = new List<double>();
        trainer.Progress += p => losses.Add(p.TrainLoss);
        return losses;
    }

    [Fact]
    public void ShortRunLowersValidationLossWellBelowUntrainedAndUnigram()
    {
        using var model = new Transformer(Tiny, seed: 0);
        using var trainer = new Trainer(model, Data.Value, Options(300) with { LearningRate = 1e-2 }, outDir: null);
        var untrained = trainer.Evaluate();
        var result = trainer.Run(TestContext.Current.CancellationToken);
        var unigram = Data.Value.UnigramBaseline();
        Assert.InRange(untrained, Math.Log(ModelPresets.ByteVocabSize) - 0.5, Math.Log(ModelPresets.ByteVocabSize) + 0.5);
        Assert.True(result.ValLoss < untrained - 2.5, $"validation loss {result.ValLoss:F3} vs untrained {untrained:F3}");
        Assert.True(result.ValLoss < unigram - 0.5, $"validation loss {result.ValLoss:F3} vs unigram {unigram:F3}");
        Assert.Equal(300, result.Steps);
    }

    [Fact]
    public void SameSeedAndThreadsGiveIdenticalLosses()
    {
        List<double> RunOnce()
        {
            using var model = new Transformer(Tiny, seed: 4);
            using var trainer = new Trainer(model, Data.Value, Options(6), outDir: null);
            var losses = Losses(trainer);
            trainer.Run(TestContext.Current.CancellationToken);
            return losses;
        }
        var a = RunOnce();
        var b = RunOnce();
        Assert.Equal(6, a.Count);
        Assert.Equal(a, b);
        Assert.NotEqual(a[0], a[^1]);
    }

    [Fact]
    public void TrainsOnAThreadWhoseGradModeWasLeftOff()
    {
        // grad mode is per thread; a pool thread can be handed over with it off by code elsewhere
        using var model = new Transformer(Tiny, seed: 4);
        using var trainer = new Trainer(model, Data.Value, Options(3), outDir: null);
        var losses = Losses(trainer);
        using (no_grad())
        {
            trainer.Run(TestContext.Current.CancellationToken);
            Assert.False(is_grad_enabled()); // the caller's mode is left as it was
        }
        Assert.Equal(3, losses.Count);
        Assert.NotEqual(losses[0], losses[^1]);
    }

    [Fact]
    public void ResumedRunContinuesExactlyAsAnUninterruptedOne()
    {
        var dir = Path.Combine(Path.GetTempPath(), "pollen-trainer-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var straightModel = new Transformer(Tiny, seed: 5);
            using var straight = new Trainer(straightModel, Data.Value, Options(8), outDir: null);
            var expected = Losses(straight);
            straight.Run(TestContext.Current.CancellationToken);

            using (var firstModel = new Transformer(Tiny, seed: 5))
            using (var first = new Trainer(firstModel, Data.Value, Options(8) with { Steps = 8 }, dir))
            {
                using var stop = new CancellationTokenSource();
                first.Progress += p =>
                {
                    if (p.Step == 4)
                    {
                        stop.Cancel(); // stops after step 4 and writes a checkpoint
                    }
                };
                first.Run(stop.Token);
                Assert.Equal(4, first.Step);
            }

            using var resumedModel = new Transformer(Tiny, seed: 1234); // different init: everything must come from the checkpoint
            using var resumed = new Trainer(resumedModel, Data.Value, Options(8), dir);
            Assert.True(resumed.TryResume());
            Assert.Equal(4, resumed.Step);
            var rest = Losses(resumed);
            resumed.Run(TestContext.Current.CancellationToken);
            Assert.Equal(expected.Skip(4), rest);
            Assert.True(File.Exists(Path.Combine(dir, Trainer.MetricsFile)));
            using var saved = ModelCheckpoint.Load(dir);
            Assert.True(saved.state_dict()["model.norm.weight"].eq(straightModel.state_dict()["model.norm.weight"]).all().item<bool>());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void InterruptedCheckpointIsDetectedOnResume()
    {
        var dir = Path.Combine(Path.GetTempPath(), "pollen-trainer-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var model = new Transformer(Tiny, seed: 6))
            using (var trainer = new Trainer(model, Data.Value, Options(2), dir))
            {
                trainer.Run(TestContext.Current.CancellationToken);
                trainer.SaveCheckpoint();
            }
            // a state file from a later step than the weights: as if the process died between files
            var state = Path.Combine(dir, Trainer.StateFile);
            File.WriteAllText(state, File.ReadAllText(state).Replace("\"step\": 2", "\"step\": 3", StringComparison.Ordinal));
            using var again = new Transformer(Tiny);
            using var resumed = new Trainer(again, Data.Value, Options(4), dir);
            Assert.Contains("interrupted", Assert.Throws<InvalidDataException>(() => resumed.TryResume()).Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void ScheduleWarmsUpThenDecaysToTheFloor()
    {
        var s = new LearningRateSchedule(1.0, WarmupSteps: 10, TotalSteps: 110, MinRatio: 0.1);
        Assert.Equal(0.1, s.At(0), 12);
        Assert.Equal(1.0, s.At(9), 12);
        Assert.Equal(0.55, s.At(60), 9);
        Assert.Equal(0.1, s.At(110), 12);
        Assert.True(s.At(30) > s.At(31));
    }

    [Fact]
    public void AdvancingTheClockSkipsTheWarmUpAndNeverGoesBack()
    {
        using var model = new Transformer(Tiny, seed: 4);
        var options = Options(40) with { WarmupSteps = 10 };
        using var trainer = new Trainer(model, Data.Value, options, outDir: null);
        var rates = new List<(long Step, double Lr)>();
        trainer.Progress += p => rates.Add((p.Step, p.LearningRate));
        trainer.AdvanceTo(20);
        trainer.AdvanceTo(5); // never back
        Assert.Equal(20, trainer.Step);
        trainer.RunUntil(21, TestContext.Current.CancellationToken);
        var schedule = new LearningRateSchedule(options.LearningRate, 10, 40, options.MinLearningRateRatio);
        Assert.Equal((21L, schedule.At(20)), rates[^1]); // the step after the jump uses the schedule at step 20, past warm-up
        trainer.AdvanceTo(1000);
        Assert.Equal(40, trainer.Step); // never past the end
    }

    [Fact]
    public void BadOptionsAreNamed()
    {
        Assert.Contains("--steps", Assert.Throws<ArgumentException>(() => new TrainerOptions { Steps = 0 }.Validate()).Message);
        Assert.Contains("--lr", Assert.Throws<ArgumentException>(() => new TrainerOptions { LearningRate = double.NaN }.Validate()).Message);
        using var model = new Transformer(Tiny with { MaxPositionEmbeddings = 32 });
        Assert.Contains("--seq-len", Assert.Throws<ArgumentException>(() => new Trainer(model, Data.Value, Options(1), null)).Message);
    }
}
