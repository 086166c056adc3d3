using System.Diagnostics;
using Pollen.Model;
using static TorchSharp.torch;

namespace Pollen.Bench.Inference;

/// <summary>Greedy tokens of one session, and the wall time of each one-token step.</summary>
/// <param name="Ids">The generated ids; the first comes from the prompt's forward.</param>
/// <param name="StepSeconds">StepSeconds[i] is the time of the one-token step that produced Ids[i + 1].</param>
internal sealed record Decoded(long[] Ids, double[] StepSeconds)
{
    /// <summary>Decoding rate: one-token steps per second (the prompt's forward is not counted).</summary>
    public double TokensPerSecond => StepSeconds.Length / StepSeconds.Sum();
}

/// <summary>
/// Batch-1 greedy decoding written against <see cref="ICausalLM"/> only, so the local model and the swarm
/// run exactly the same loop: the prompt in one forward, then one token per forward, argmax each time.
/// No dispose scope spans an await (a swarm session may continue on another thread); every tensor is
/// disposed explicitly.
/// </summary>
internal static class GreedyDecoder
{
    /// <summary>Decodes <paramref name="tokens"/> tokens after <paramref name="prompt"/>.</summary>
    /// <param name="model">Local or swarm model.</param>
    /// <param name="prompt">Prompt ids.</param>
    /// <param name="tokens">Tokens to generate (at least 2).</param>
    /// <param name="beforeStep">Called before the one-token step that produces token i (1-based), outside its timing.</param>
    /// <param name="prefilled">Awaited after the prompt's forward and before the first one-token step, so concurrent sessions start decoding together.</param>
    /// <param name="cancellationToken">Cancels the decoding.</param>
    public static async Task<Decoded> RunAsync(ICausalLM model, long[] prompt, int tokens, Func<int, Task>? beforeStep = null, Func<Task>? prefilled = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(tokens, 2);
        using var session = model.OpenSession(prompt.Length + tokens);
        var ids = new long[tokens];
        var steps = new double[tokens - 1];
        ids[0] = await StepAsync(session, prompt, cancellationToken).ConfigureAwait(false);
        if (prefilled is not null)
        {
            await prefilled().ConfigureAwait(false);
        }
        for (var i = 1; i < tokens; i++)
        {
            if (beforeStep is not null)
            {
                await beforeStep(i).ConfigureAwait(false);
            }
            var start = Stopwatch.GetTimestamp();
            ids[i] = await StepAsync(session, [ids[i - 1]], cancellationToken).ConfigureAwait(false);
            steps[i - 1] = Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
        return new Decoded(ids, steps);
    }

    private static async Task<long> StepAsync(IDecodingSession session, long[] input, CancellationToken cancellationToken)
    {
        using var ids = tensor(input, [1, input.Length]); // (1, T)
        using var logits = await session.ForwardAsync(ids, cancellationToken).ConfigureAwait(false); // (1, V)
        using var next = logits.argmax(-1);
        return next.item<long>();
    }
}
