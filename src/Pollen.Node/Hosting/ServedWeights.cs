using Microsoft.Extensions.Logging;
using Pollen.Inference.Client;
using Pollen.Inference.Server;
using Pollen.Model.Llama;
using static TorchSharp.torch;

namespace Pollen.Node.Hosting;

/// <summary>
/// Continuous learning: the weights a node serves follow its training. After each finished round the
/// training loop hands over a copy of the round's parameters (<see cref="Publish"/>), which goes into the
/// block server and the API's embedding and head together, between sessions: while a session is open
/// the copy waits (a KV cache filled by one round's weights must not be continued with another's). A
/// newer round replaces a copy still waiting, so a busy server skips rounds instead of falling behind.
/// </summary>
/// <remarks>
/// The copy is taken on the training thread at the round boundary (the parameters are then the round's
/// θ_start), so the inner steps of the next round never race with the swap. A server that never has a
/// moment without sessions keeps serving the older round; the status shows which one. The API's
/// embedding and head change together with this node's blocks; a reply whose route runs entirely through
/// other nodes' servers may see them change between two of its tokens (its sessions are not this node's
/// to wait for).
/// </remarks>
public sealed class ServedWeights : IAsyncDisposable
{
    private static readonly string[] EndPrefixes = ["model.embed_tokens.", "model.norm.", "lm_head."];

    private readonly BlockServer? _server;
    private readonly ModelEnds? _ends;
    private readonly TimeSpan _retry;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _signal = new(0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private Snapshot? _pending;
    private long _servedRound;
    private string? _servedHash;

    /// <summary>Starts applying published rounds to <paramref name="server"/> and <paramref name="ends"/> (either may be null).</summary>
    /// <param name="server">The block server, or null when the node does not serve.</param>
    /// <param name="ends">The API model's embedding and head, or null.</param>
    /// <param name="initialRound">The round the served weights are at now.</param>
    /// <param name="initialHash">Their parameter hash, if known.</param>
    /// <param name="retry">How often a waiting copy retries while sessions are open (default 200 ms).</param>
    /// <param name="logger">Where swaps are logged.</param>
    public ServedWeights(BlockServer? server, ModelEnds? ends, long initialRound, string? initialHash, ILogger logger, TimeSpan? retry = null)
    {
        _server = server;
        _ends = ends;
        _servedRound = initialRound;
        _servedHash = initialHash;
        _logger = logger;
        _retry = retry ?? TimeSpan.FromMilliseconds(200);
        _loop = RunAsync(_stop.Token);
    }

    /// <summary>The round whose parameters are served now.</summary>
    public long ServedRound => Interlocked.Read(ref _servedRound);

    /// <summary>Hash of the served parameters, when known.</summary>
    public string? ServedHash => Volatile.Read(ref _servedHash);

    /// <summary>Fires after a round's parameters went in (for tests and the status).</summary>
    public event Action<long>? Swapped;

    /// <summary>
    /// Copies <paramref name="model"/>'s parameters (the served blocks and the ends) for round
    /// <paramref name="round"/>; they go in as soon as no session is open. Call between rounds.
    /// </summary>
    public void Publish(Transformer model, long round, string? parameterHash)
    {
        var snapshot = new Snapshot(round, parameterHash);
        using (no_grad())
        {
            if (_server is not null)
            {
                for (var i = _server.StartBlock; i < _server.EndBlock; i++)
                {
                    snapshot.Blocks[i] = model.Blocks[i].named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone().DetachFromDisposeScope());
                }
            }
            if (_ends is not null)
            {
                foreach (var (name, parameter) in model.named_parameters())
                {
                    if (EndPrefixes.Any(p => name.StartsWith(p, StringComparison.Ordinal)))
                    {
                        snapshot.Ends[name] = parameter.detach().clone().DetachFromDisposeScope();
                    }
                }
            }
        }
        Interlocked.Exchange(ref _pending, snapshot)?.Dispose();
        _signal.Release();
    }

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        await Task.Yield();
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await _signal.WaitAsync(cancellationToken).ConfigureAwait(false);
                // the loop owns a snapshot once taken out of _pending; Publish only disposes one still waiting there
                while (Interlocked.Exchange(ref _pending, null) is { } snapshot)
                {
                    using (snapshot)
                    {
                        // the copy may wait on the compute thread behind steps: a round published meanwhile replaces this one
                        if (_server is not null && !await _server.TryReplaceWeightsAsync(snapshot.Blocks.ToDictionary(b => b.Key, b => (IReadOnlyDictionary<string, Tensor>)b.Value),
                                snapshot.Round, () => Volatile.Read(ref _pending) is null).ConfigureAwait(false))
                        {
                            if (Volatile.Read(ref _pending) is not null)
                            {
                                continue; // superseded: the newer round is tried at once
                            }
                            // sessions open: put it back unless a newer round arrived meanwhile, and try again shortly
                            if (Interlocked.CompareExchange(ref _pending, snapshot.Keep(), null) is not null)
                            {
                                snapshot.Release();
                            }
                            await Task.Delay(_retry, cancellationToken).ConfigureAwait(false);
                            continue;
                        }
                        _ends?.CopyFrom(snapshot.Ends);
                        Interlocked.Exchange(ref _servedRound, snapshot.Round);
                        Volatile.Write(ref _servedHash, snapshot.Hash);
                        Log.WeightsSwapped(_logger, snapshot.Round, snapshot.Hash is { Length: >= 12 } h ? h[..12] : "?");
                        Swapped?.Invoke(snapshot.Round);
                    }
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                Log.SwapFailed(_logger, e);
            }
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        Interlocked.Exchange(ref _pending, null)?.Dispose();
        _stop.Dispose();
        _signal.Dispose();
    }

    private sealed class Snapshot(long round, string? hash) : IDisposable
    {
        public long Round { get; } = round;

        public string? Hash { get; } = hash;

        public Dictionary<int, Dictionary<string, Tensor>> Blocks { get; } = [];

        public Dictionary<string, Tensor> Ends { get; } = [];

        private bool _kept;

        /// <summary>Marks the snapshot as handed back to <c>_pending</c>: the next <see cref="Dispose"/> leaves it alone.</summary>
        public Snapshot Keep()
        {
            _kept = true;
            return this;
        }

        /// <summary>Undoes <see cref="Keep"/> (it was not handed back after all).</summary>
        public void Release() => _kept = false;

        public void Dispose()
        {
            if (_kept)
            {
                _kept = false;
                return;
            }
            foreach (var t in Blocks.Values.SelectMany(b => b.Values).Concat(Ends.Values))
            {
                t.Dispose();
            }
        }
    }
}
