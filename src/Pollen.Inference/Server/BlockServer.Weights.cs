using static TorchSharp.torch;

namespace Pollen.Inference.Server;

/// <summary>
/// Replacing the served weights while the server runs, for a node whose model keeps training: the new
/// parameters go in on the compute thread, and only while no session is open, so a reply is never
/// generated half with one round's weights and half with the next's (its KV cache would no longer match).
/// </summary>
public sealed partial class BlockServer
{
    private long _servedRound;

    /// <summary>The training round whose parameters are served (0 for a fixed checkpoint).</summary>
    public long ServedRound => Interlocked.Read(ref _servedRound);

    /// <summary>Tokens stepped through this server's blocks by inference sessions since it started (rows × tokens).</summary>
    public long TokensServed => Interlocked.Read(ref _tokensServed);

    /// <summary>
    /// Copies <paramref name="weights"/> (block index → parameter name, as in <see cref="Model.Llama.Block"/>'s
    /// <c>named_parameters</c> → tensor) into the served blocks and records <paramref name="round"/>, unless a
    /// session is open: then nothing changes and the result is false (call again once sessions have closed).
    /// No session can open while the copy runs.
    /// </summary>
    /// <param name="weights">The new parameters of every block of the span.</param>
    /// <param name="round">The training round they come from.</param>
    /// <param name="stillWanted">
    /// Asked on the compute thread right before the copy (the call may wait there behind steps): false leaves the
    /// weights as they are and returns false, e.g. because a newer round has arrived meanwhile.
    /// </param>
    /// <exception cref="ArgumentException">A block of the span or one of its parameters is missing, or a shape differs.</exception>
    public Task<bool> TryReplaceWeightsAsync(IReadOnlyDictionary<int, IReadOnlyDictionary<string, Tensor>> weights, long round, Func<bool>? stillWanted = null) =>
        _queue.RunAsync(() =>
        {
            lock (_lock)
            {
                if (_sessions.Count > 0 || stillWanted?.Invoke() == false)
                {
                    return false;
                }
                using var noGrad = no_grad();
                foreach (var block in _blocks)
                {
                    if (!weights.TryGetValue(block.LayerIndex, out var source))
                    {
                        throw new ArgumentException($"no weights for block {block.LayerIndex}", nameof(weights));
                    }
                    foreach (var (name, parameter) in block.named_parameters())
                    {
                        if (!source.TryGetValue(name, out var value) || !value.shape.SequenceEqual(parameter.shape))
                        {
                            throw new ArgumentException($"block {block.LayerIndex}: parameter '{name}' is missing or has another shape", nameof(weights));
                        }
                        parameter.copy_(value); // converted to the served dtype by the copy
                    }
                }
                Interlocked.Exchange(ref _servedRound, round);
                return true;
            }
        });
}
