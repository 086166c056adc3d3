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
internal sealed class GreedyDecoder : IDisposable
{
    private readonly IDecodingSession _session;
    private readonly List<long> _ids = [];
    private readonly List<double> _steps = [];

    private GreedyDecoder(IDecodingSession session) => _session = session;

    /// <summary>The tokens and step times so far.</summary>
    public Decoded Result => new([.. _ids], [.. _steps]);

    /// <summary>Opens a session for <paramref name="prompt"/> plus <paramref name="tokens"/> tokens and runs the prompt's forward.</summary>
    public static async Task<GreedyDecoder> StartAsync(ICausalLM model, long[] prompt, int tokens, CancellationToken cancellationToken)
    {
        var decoder = new GreedyDecoder(model.OpenSession(prompt.Length + tokens));
        try
        {
            decoder._ids.Add(await decoder.ForwardAsync(prompt, cancellationToken).ConfigureAwait(false));
            return decoder;
        }
        catch
        {
            decoder.Dispose();
            throw;
        }
    }

    /// <summary>Feeds the last token and appends the next; the step is timed.</summary>
    public async Task StepAsync(CancellationToken cancellationToken)
    {
        var start = Stopwatch.GetTimestamp();
        var next = await ForwardAsync([_ids[^1]], cancellationToken).ConfigureAwait(false);
        _steps.Add(Stopwatch.GetElapsedTime(start).TotalSeconds);
        _ids.Add(next);
    }

    /// <summary>Decodes <paramref name="tokens"/> tokens (at least 2) after <paramref name="prompt"/>.</summary>
    /// <param name="model">Local or swarm model.</param>
    /// <param name="prompt">Prompt ids.</param>
    /// <param name="tokens">Tokens to generate.</param>
    /// <param name="beforeStep">Called before the one-token step that produces token i (1-based), outside its timing.</param>
    /// <param name="prefilled">Awaited after the prompt's forward and before the first one-token step, so concurrent sessions start decoding together.</param>
    /// <param name="cancellationToken">Cancels the decoding.</param>
    public static async Task<Decoded> RunAsync(ICausalLM model, long[] prompt, int tokens, Func<int, Task>? beforeStep = null, Func<Task>? prefilled = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(tokens, 2);
        using var decoder = await StartAsync(model, prompt, tokens, cancellationToken).ConfigureAwait(false);
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
            await decoder.StepAsync(cancellationToken).ConfigureAwait(false);
        }
        return decoder.Result;
    }

    /// <summary>
    /// Decodes the same prompt with two models in alternation, <paramref name="chunk"/> tokens at a time
    /// (a then b, b then a, …), so both see the same machine load to within one chunk: their rates compare
    /// even on a busy machine. With a chunk of 1 each model's steps are separated by the other's, so its
    /// threads go idle between its own steps; longer chunks measure decoding as a user runs it, one token
    /// after another.
    /// </summary>
    public static async Task<(Decoded A, Decoded B)> RunAlternatingAsync(ICausalLM a, ICausalLM b, long[] prompt, int tokens, int chunk, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(tokens, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunk, 1);
        using var first = await StartAsync(a, prompt, tokens, cancellationToken).ConfigureAwait(false);
        using var second = await StartAsync(b, prompt, tokens, cancellationToken).ConfigureAwait(false);
        var turn = 0;
        for (var i = 1; i < tokens; i += chunk, turn++)
        {
            var (x, y) = turn % 2 == 0 ? (first, second) : (second, first);
            var steps = Math.Min(chunk, tokens - i);
            for (var k = 0; k < steps; k++)
            {
                await x.StepAsync(cancellationToken).ConfigureAwait(false);
            }
            for (var k = 0; k < steps; k++)
            {
                await y.StepAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        return (first.Result, second.Result);
    }

    private async Task<long> ForwardAsync(long[] input, CancellationToken cancellationToken)
    {
        using var ids = tensor(input, [1, input.Length]); // (1, T)
        using var logits = await _session.ForwardAsync(ids, cancellationToken).ConfigureAwait(false); // (1, V)
        using var next = logits.argmax(-1);
        return next.item<long>();
    }

    public void Dispose() => _session.Dispose();
}
