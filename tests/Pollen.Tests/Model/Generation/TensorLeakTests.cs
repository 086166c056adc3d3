using Pollen.Model.Generation;
using Pollen.Model.Llama;
using Pollen.Model.Tokenizers;
using Pollen.Training.Data;
using Pollen.Training.Local;
using static TorchSharp.torch;

namespace Pollen.Tests.Model.Generation;

[CollectionDefinition(nameof(SerialTensorCounting), DisableParallelization = true)]
public sealed class SerialTensorCounting;

/// <summary>
/// Generation and training must not leave tensors behind: a leak shows up as growing memory in a
/// long-running server. Counts are process-wide, so this collection runs alone.
/// </summary>
[Collection(nameof(SerialTensorCounting))]
public class TensorLeakTests
{
    [Fact]
    public async Task RepeatedGenerationLeavesNoTensorsBehind()
    {
        manual_seed(1);
        using var model = new Transformer(ModelTestConfigs.Tiny() with { VocabSize = 264, MaxPositionEmbeddings = 128 });
        model.eval();
        var options = new GenerationOptions { MaxNewTokens = 60, Temperature = 0.9, TopK = 20, StopAtEos = false };
        int[] prompt = [72, 105, 33];
        await TextGenerator.GenerateToEndAsync(model, ByteTokenizer.Instance, prompt, options, TestContext.Current.CancellationToken);
        var before = Tensor.TotalCount;
        for (var i = 0; i < 5; i++)
        {
            await TextGenerator.GenerateToEndAsync(model, ByteTokenizer.Instance, prompt, options with { Seed = i }, TestContext.Current.CancellationToken);
        }
        var grown = Tensor.TotalCount - before;
        Assert.True(grown <= 0, $"{grown} tensors were left alive by 300 generated tokens");
    }

    [Fact]
    public void TrainingStepsAndEvaluationLeaveNoTensorsBehind()
    {
        manual_seed(2);
        using var model = new Transformer(ModelTestConfigs.Tiny() with { VocabSize = 264, MaxPositionEmbeddings = 64 });
        var data = TokenDataset.FromDocuments(SyntheticCorpus.Stories(5, 40_000), ByteTokenizer.Instance, seqLen: 32);
        var options = new TrainerOptions { Steps = 30, BatchSize = 4, EvalEvery = 10, EvalBatches = 2, CheckpointEvery = 0 };
        using var trainer = new Trainer(model, data, options, outDir: null);
        var atStep = new Dictionary<long, long>();
        trainer.Progress += p => atStep[p.Step] = Tensor.TotalCount;
        trainer.Run(TestContext.Current.CancellationToken);
        var grown = atStep[30] - atStep[10];
        Assert.True(grown <= 0, $"{grown} tensors were left alive by 20 training steps and 2 evaluations");
    }
}
