using System.Diagnostics;
using Pollen.Model.Layers;
using Pollen.Model.Runtime;
using static TorchSharp.torch;

namespace Pollen.Inference.Server;

public sealed partial class BlockServer
{
    /// <summary>
    /// Measures how fast this server runs one-token steps (batch 1) and returns it as block-steps per
    /// second: tokens per second through a single block, which clients divide into the length of the span
    /// they route through here. Runs on the compute thread, so it also waits for any queued work.
    /// </summary>
    /// <param name="steps">Timed steps after two untimed warm-up steps.</param>
    public Task<double> MeasureThroughputAsync(int steps = 8) => _queue.RunAsync(() =>
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(steps, 1);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var cache = new KvCache(steps + 2);
        using var dnn = Dtype != ScalarType.Float32 ? Model.Runtime.OneDnn.Suspend() : default;
        var hidden = randn(1, 1, Config.HiddenSize, dtype: Dtype).TimesConstant(0.02);
        var clock = new Stopwatch();
        for (var step = 0; step < steps + 2; step++)
        {
            if (step == 2)
            {
                clock.Start();
            }
            var positions = full(1, 1, step, dtype: ScalarType.Int64);
            foreach (var block in _blocks)
            {
                hidden = block.forward(hidden, positions, cache); // eager: returns when computed
            }
        }
        var seconds = Math.Max(clock.Elapsed.TotalSeconds, 1e-6);
        return steps * _blocks.Length / seconds;
    });
}
