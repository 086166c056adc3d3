using Pollen.Model.Checkpoints;
using Pollen.Model.Llama;
using Pollen.Model.Runtime;
using Pollen.Tests.Model.Checkpoints;
using static TorchSharp.torch;

namespace Pollen.Tests.Model.Runtime;

public class LowPrecisionDecodingTests
{
    [Fact]
    public async Task Bf16SessionStepsMatchTheFullBf16ForwardAndTheF32Model()
    {
        Assert.True(OneDnn.Available || !OperatingSystem.IsLinux(), "the oneDNN switch was not found in libtorch");
        using var files = new CheckpointTestFiles();
        using var scope = NewDisposeScope();
        manual_seed(21);
        using (var original = new Transformer(ModelTestConfigs.All["rope-standard-gqa"]))
        {
            ModelCheckpoint.Save(files.Directory, original);
        }
        using var f32 = ModelCheckpoint.Load(files.Directory);
        using var bf16 = ModelCheckpoint.Load(files.Directory, ScalarType.BFloat16);
        Assert.Equal(ScalarType.BFloat16, bf16.Dtype);
        long[] ids = [3, 17, 9, 30, 2, 11, 5, 8];
        Tensor full, reference;
        using (no_grad()) // grad mode is per thread: a no_grad scope must not live across an await
        {
            full = bf16.forward(tensor(ids, [1, ids.Length])); // (1, T, V), float32 logits
            reference = f32.forward(tensor(ids, [1, ids.Length]));
        }

        using var session = bf16.OpenSession(16);
        var steps = new List<Tensor> { await session.ForwardAsync(tensor(ids[..4], [1, 4]), TestContext.Current.CancellationToken) };
        for (var t = 4; t < ids.Length; t++)
        {
            // single-token steps run with oneDNN suspended
            steps.Add(await session.ForwardAsync(tensor(ids[t..(t + 1)], [1, 1]), TestContext.Current.CancellationToken));
        }
        var last = stack(steps, 1); // logits of positions 3..7
        var expected = full.narrow(1, 3, 5);
        var stepError = (last - expected).abs().max().item<float>();
        var precisionError = (expected - reference.narrow(1, 3, 5)).abs().max().item<float>();
        Assert.True(stepError < 5e-2, $"bf16 cached steps differ from the bf16 full forward by {stepError}");
        Assert.True(precisionError < 1e-1, $"bf16 differs from f32 by {precisionError}");
        Assert.True(precisionError > 0, "the bf16 model did not run in bf16");
    }
}
