using Pollen.Model.Llama;
using static TorchSharp.torch;

namespace Pollen.Training.Local;

/// <summary>Measures a model's next-token loss on a token stream (every full window of seqLen+1 tokens).</summary>
public static class Evaluator
{
    /// <summary>Mean loss (nats/token) and the number of predicted tokens.</summary>
    public static (double Loss, long Tokens) Evaluate(Transformer model, ReadOnlySpan<int> tokens, int seqLen, int batchSize, CancellationToken cancellationToken = default)
    {
        if (seqLen > model.Config.MaxPositionEmbeddings)
        {
            throw new ArgumentException($"--seq-len {seqLen} exceeds the model's context of {model.Config.MaxPositionEmbeddings}");
        }
        var windows = (tokens.Length - 1) / seqLen;
        if (windows == 0)
        {
            throw new ArgumentException($"the data has {tokens.Length} tokens; at least {seqLen + 1} are needed for one window of --seq-len {seqLen}");
        }
        model.eval();
        using var noGrad = no_grad();
        double sum = 0;
        long count = 0;
        for (var start = 0; start < windows; start += batchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var b = Math.Min(batchSize, windows - start);
            var input = new long[b * seqLen];
            var target = new long[b * seqLen];
            for (var i = 0; i < b; i++)
            {
                var window = tokens.Slice((start + i) * seqLen, seqLen + 1);
                for (var t = 0; t < seqLen; t++)
                {
                    input[(i * seqLen) + t] = window[t];
                    target[(i * seqLen) + t] = window[t + 1];
                }
            }
            var loss = model.Loss(tensor(input, [b, seqLen]), tensor(target, [b, seqLen])).item<float>();
            sum += loss * b * seqLen;
            count += (long)b * seqLen;
        }
        return (sum / count, count);
    }
}
