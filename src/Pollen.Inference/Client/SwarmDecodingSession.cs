using Grpc.Core;
using Microsoft.Extensions.Logging;
using Pollen.Inference.Protos;
using Pollen.Inference.Wire;
using Pollen.Model;
using Pollen.Model.Llama;
using Pollen.Model.Runtime;
using static TorchSharp.torch;
using WireTensor = Pollen.Swarm.Protos.Tensor;

namespace Pollen.Inference.Client;

/// <summary>
/// A decoding session through the swarm. Embedding and head run here; between them the hidden states
/// pass hop by hop as wire tensors (never decoded on the way). Each hop remembers the steps it was sent,
/// so when a server fails, its span is routed anew and the steps are replayed to the new servers to
/// rebuild their caches before the current step continues.
/// </summary>
/// <remarks>
/// Replay resends each past step as it was sent, not one concatenated prefill: the new server then
/// computes exactly what the failed one did (same shapes, same kernels), so generation after a failure
/// is token-for-token identical to an undisturbed one; the price is one round trip per past step. The
/// history is kept as immutable wire messages, so it costs memory (tokens × hidden × wire dtype size per
/// hop) but no tensor lifetime management. Tensor work never spans an await: TorchSharp dispose scopes
/// belong to a thread and continuations may run on another.
/// </remarks>
internal sealed class SwarmDecodingSession(SwarmModel model, int maxLength) : IDecodingSession
{
    private readonly List<Hop> _hops = [];
    private int _batch;
    private int _failures;

    public int Length { get; private set; }

    public int MaxLength => maxLength;

    public async ValueTask<Tensor> ForwardAsync(Tensor ids, CancellationToken cancellationToken = default)
    {
        var (batch, tokens) = ((int)ids.shape[0], (int)ids.shape[1]);
        if (Length + tokens > maxLength)
        {
            throw new InvalidOperationException($"the session holds {Length} tokens and {tokens} more would exceed its maximum length of {maxLength}");
        }
        var (hidden, positions) = await TensorThread.InvokeAsync(() => EmbedHere(ids)).ConfigureAwait(false);
        if (_hops.Count == 0)
        {
            _batch = batch;
            var route = await model.FindRouteAsync(0, model.Config.NumHiddenLayers, cancellationToken: cancellationToken).ConfigureAwait(false);
            _hops.AddRange(route.Select(r => new Hop(r.Server, r.Start, r.End, [])));
        }
        else if (batch != _batch)
        {
            throw new ArgumentException($"the session was opened with batch {_batch}, got {batch}", nameof(ids));
        }
        _failures = 0;
        var k = 0;
        if (model.Options.PushBetweenServers && _hops.Count > 1 && _hops.TrueForAll(h => h.Span is { TakesPushes: true }))
        {
            (hidden, k) = await ChainAsync(hidden, positions, cancellationToken).ConfigureAwait(false);
        }
        for (; k < _hops.Count; k++)
        {
            var hop = _hops[k];
            try
            {
                hop.Span ??= await ReopenAsync(hop, cancellationToken).ConfigureAwait(false);
                var output = await hop.Span.StepAsync(hidden, positions, cancellationToken).ConfigureAwait(false);
                hop.History.Add((hidden, positions));
                model.Bans.RecordSuccess(hop.Server.Address);
                hidden = output;
            }
            catch (Exception e) when (IsHopFailure(e, cancellationToken))
            {
                CountFailure(hop.Server, e);
                await ReplaceAsync(k, cancellationToken).ConfigureAwait(false);
                k--; // run the current step on the replacement
            }
        }
        Length += tokens;
        return await HeadAsync(hidden).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs the step down the route with server-to-server pushes: the first server gets the step and the
    /// later sessions as its next targets, and each server's reply is read in route order (each hop's input
    /// is the previous reply, kept for replay). Returns the output and the number of hops done; when a hop
    /// fails, or a server could not push to the next, it returns that hop's input and index, and the caller
    /// goes on hop by hop from there.
    /// </summary>
    /// <remarks>
    /// After a failed hop the later servers may or may not have run the step (it may have been pushed before
    /// the failure), so their sessions are closed and reopened from the client's history; after a failed push
    /// the later servers never saw the step and keep their sessions.
    /// </remarks>
    private async Task<(WireTensor Hidden, int Done)> ChainAsync(WireTensor hidden, WireTensor positions, CancellationToken cancellationToken)
    {
        var k = 0;
        try
        {
            await _hops[0].Span!.SendStepAsync(hidden, positions, _hops.Skip(1).Select(h => h.Span!.AsPushTarget()), cancellationToken).ConfigureAwait(false);
            for (; k < _hops.Count; k++)
            {
                var hop = _hops[k];
                var (output, pushError) = await hop.Span!.ReadStepAsync(hidden, cancellationToken).ConfigureAwait(false);
                hop.History.Add((hidden, positions));
                model.Bans.RecordSuccess(hop.Server.Address);
                hidden = output;
                if (pushError is not null && k + 1 < _hops.Count)
                {
                    // the later servers most likely never saw the step; start them over to be sure
                    Log.PushFailed(model.Logger, hop.Server.Address, pushError);
                    await CloseLaterAsync(k + 1).ConfigureAwait(false);
                    return (hidden, k + 1);
                }
            }
            return (hidden, k);
        }
        catch (Exception e) when (IsHopFailure(e, cancellationToken))
        {
            CountFailure(_hops[k].Server, e);
            await CloseLaterAsync(k + 1).ConfigureAwait(false);
            await ReplaceAsync(k, cancellationToken).ConfigureAwait(false);
            return (hidden, k);
        }
    }

    /// <summary>Closes the sessions of hops <paramref name="from"/> on; each is reopened and replayed when a step reaches it.</summary>
    private async Task CloseLaterAsync(int from)
    {
        for (var j = from; j < _hops.Count; j++)
        {
            if (_hops[j].Span is { } later)
            {
                _hops[j].Span = null;
                await later.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>A session on <paramref name="hop"/>'s server, its history (if any) replayed into it.</summary>
    private async Task<RemoteSpan> ReopenAsync(Hop hop, CancellationToken cancellationToken)
    {
        var span = await OpenAsync(hop.Server, hop.Start, hop.End, cancellationToken).ConfigureAwait(false);
        try
        {
            if (hop.History.Count > 0)
            {
                _ = await span.StepManyAsync(hop.History, cancellationToken).ConfigureAwait(false);
            }
            return span;
        }
        catch
        {
            await span.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Routes hop <paramref name="k"/>'s blocks anew and replays its history through the new hops; a
    /// replacement that fails too is banned and routed around in turn.
    /// </summary>
    private async Task ReplaceAsync(int k, CancellationToken cancellationToken)
    {
        var old = _hops[k];
        _hops.RemoveAt(k);
        if (old.Span is not null)
        {
            await old.Span.DisposeAsync().ConfigureAwait(false);
        }
        while (true)
        {
            var route = await model.FindRouteAsync(old.Start, old.End, refresh: true, cancellationToken).ConfigureAwait(false);
            var replacement = route.Select(r => new Hop(r.Server, r.Start, r.End, [])).ToList();
            var inputs = old.History;
            Hop? current = null;
            try
            {
                foreach (var hop in replacement)
                {
                    if (inputs.Count == 0)
                    {
                        break; // opened lazily by the step itself
                    }
                    current = hop;
                    hop.Span = await OpenAsync(hop.Server, hop.Start, hop.End, cancellationToken).ConfigureAwait(false);
                    // pipelined: the whole history in about one round trip
                    var replies = await hop.Span.StepManyAsync(inputs, cancellationToken).ConfigureAwait(false);
                    var outputs = replies.Select((reply, i) => (reply, inputs[i].Positions)).ToList();
                    hop.History.AddRange(inputs);
                    inputs = outputs;
                }
                _hops.InsertRange(k, replacement);
                return;
            }
            catch (Exception e) when (current is not null && IsHopFailure(e, cancellationToken))
            {
                CountFailure(current.Server, e);
                foreach (var hop in replacement)
                {
                    if (hop.Span is not null)
                    {
                        await hop.Span.DisposeAsync().ConfigureAwait(false);
                    }
                }
            }
        }
    }

    private void CountFailure(ServerSpan server, Exception e)
    {
        if (++_failures > model.Options.MaxFailuresPerStep)
        {
            throw new Swarm.SwarmUnavailableException($"the step failed {_failures} times; last on {server}: {e.Message}", e);
        }
        var ban = model.Bans.RecordFailure(server.Address);
        Log.HopFailed(model.Logger, server.ToString(), ban, e.Message);
    }

    private Task<RemoteSpan> OpenAsync(ServerSpan server, int start, int end, CancellationToken cancellationToken) =>
        RemoteSpan.OpenAsync(model.Channel(server.Address), server, start, end, maxLength, _batch, model.Options, cancellationToken);

    private static bool IsHopFailure(Exception e, CancellationToken cancellationToken) =>
        !cancellationToken.IsCancellationRequested && e is RpcException or IOException or HttpRequestException or ObjectDisposedException;

    private (WireTensor Hidden, WireTensor Positions) EmbedHere(Tensor ids)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var positions = Transformer.DefaultPositions(ids.shape[0], ids.shape[1], Length); // (B, T)
        var hidden = model.Ends.Embed(ids); // (B, T, C)
        return (TensorWire.Encode(hidden, model.Options.WireDtype), TensorWire.Encode(positions));
    }

    private async Task<Tensor> HeadAsync(WireTensor hidden)
    {
        using var logits = await TensorThread.InvokeAsync(() =>
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            return model.Ends.Head(TensorWire.Decode(hidden)).select(1, -1).DetachFromDisposeScope(); // (B, V)
        }).ConfigureAwait(false);
        return logits.clone(); // in the caller's dispose scope, as a forward's result is
    }

    public void Dispose()
    {
        foreach (var hop in _hops)
        {
            // close in the background: Dispose is synchronous and a dead server must not block it
            if (hop.Span is { } span)
            {
                _ = span.DisposeAsync().AsTask();
            }
        }
        _hops.Clear();
    }

    private sealed class Hop(ServerSpan server, int start, int end, List<(WireTensor Hidden, WireTensor Positions)> history)
    {
        internal ServerSpan Server { get; } = server;

        internal int Start { get; } = start;

        internal int End { get; } = end;

        internal List<(WireTensor Hidden, WireTensor Positions)> History { get; } = history;

        internal RemoteSpan? Span { get; set; }
    }
}
