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
/// pass hop by hop as wire tensors (never decoded on the way). When a server fails, its span is routed anew
/// and the past steps are replayed to the new servers to rebuild their caches before the current step
/// continues.
/// </summary>
/// <remarks>
/// <para>
/// A step normally travels as a quiet chain: the client sends it to the first server, naming the later
/// sessions; each server pushes its output to the next, and only the last answers. The client listens on
/// every session meanwhile: an intermediate server speaks only when something went wrong (its push failed,
/// it refused a pushed step, its stream ended), and the last server's answer is due within the step timeout.
/// </para>
/// <para>
/// The client keeps only the first hop's inputs (its own embeddings); each server keeps the outputs of its
/// session's steps. When a chain is interrupted, the client catches up hop by hop: it asks each session
/// where it stands (a sync, which also fences off pushes still on their way), feeds it the steps it lacks
/// — inputs it knows, or the previous server's kept outputs — and replaces a server that fails, stalls or
/// returns garbage, replaying its whole history into the replacement. A step that was pushed into a
/// session is never run twice, and a replaced server's replacement computes exactly what it did (every
/// past step resent as it was, same shapes, same kernels), so generation after a failure is
/// token-for-token identical to an undisturbed one. Tensor work never spans an await: TorchSharp dispose
/// scopes belong to a thread and continuations may run on another.
/// </para>
/// </remarks>
internal sealed class SwarmDecodingSession(SwarmModel model, int maxLength) : IDecodingSession
{
    private readonly List<Hop> _hops = [];
    private readonly List<WireTensor> _embeddings = []; // the first hop's input of each step
    private readonly List<WireTensor> _positions = []; // each step's positions, the same on every hop
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
        // here, not on the tensor thread: a lookup and two copies cost less than the two thread handoffs
        var (hidden, positions) = EmbedHere(ids);
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
        _embeddings.Add(hidden);
        _positions.Add(positions);
        var step = _positions.Count;
        _failures = 0;
        WireTensor output;
        try
        {
            output = (QuietChainReady(step) ? await QuietStepAsync(step, cancellationToken).ConfigureAwait(false) : null)
                ?? await CatchUpAsync(step, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // the step may have run on some servers and not on others: start every server over from the history
            _embeddings.RemoveAt(step - 1);
            _positions.RemoveAt(step - 1);
            CloseAll();
            if (TensorThread.IsCurrent)
            {
                await Task.Yield(); // failed after a lost answer lane: the caller's handler must not run on the tensor thread either
            }
            throw;
        }
        Length += tokens;
        using var logits = await HeadAsync(output).ConfigureAwait(false);
        if (TensorThread.IsCurrent)
        {
            // the answer came on the answer lane and the head ran right where it was read; the caller's code
            // must not hold up the tensor thread
            await Task.Yield();
        }
        return logits.clone(); // in the caller's dispose scope, as a forward's result is
    }

    /// <summary>Whether step <paramref name="step"/> can go as a quiet chain: several servers, all taking pushes, all known to stand at the step before.</summary>
    private bool QuietChainReady(int step) =>
        model.Options.PushBetweenServers && _hops.Count > 1
        && _hops.TrueForAll(h => h is { Replace: false, Uncertain: false, Span: { TakesPushes: true } span } && span.StepsRun == (ulong)step - 1);

    /// <summary>
    /// Sends step <paramref name="step"/> down the route as a quiet chain and returns the last server's output,
    /// or null when the chain was interrupted (an intermediate server spoke, the last one did not answer in
    /// time, or answered wrongly): the servers at fault are replaced, the others marked for a sync, and the
    /// caller catches up hop by hop.
    /// </summary>
    private async Task<WireTensor?> QuietStepAsync(int step, CancellationToken cancellationToken)
    {
        var hidden = _embeddings[step - 1];
        var spans = _hops.ConvertAll(h => h.Span!);
        var next = spans.Skip(1).Select(s => s.AsPushTarget()).ToList();
        var last = spans[^1];
        if (last.AnswerLane is null)
        {
            // the answer on the last server's push lane when it has one: read by this process's tensor thread,
            // which computes the head at once, instead of crossing the gRPC stream's threads
            await model.AnswerLanes.TryListenAsync(last, model.Options.StepTimeout, model.Logger).ConfigureAwait(false);
        }
        var laneAnswer = last.ExpectLaneAnswer();
        bool onLane;
        try
        {
            // on the first server's push lane when it has one (written on this thread, read there by its tensor
            // thread), else on the session's stream
            onLane = await spans[0].PushStepAsync(model.Lanes, hidden, _positions[step - 1], next, quiet: true, model.Logger).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or TimeoutException or ObjectDisposedException && !cancellationToken.IsCancellationRequested)
        {
            // the lane broke: the step may or may not have arrived; the session's stream tells which
            return await InterruptedAsync(0, "did not take the step on its push lane", e.Message).ConfigureAwait(false);
        }
        try
        {
            if (!onLane)
            {
                await spans[0].SendStepAsync(hidden, _positions[step - 1], next, quiet: true, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (IsHopFailure(e, cancellationToken))
        {
            return await InterruptedAsync(0, "failed", e.Message, e).ConfigureAwait(false);
        }
        var reads = spans.ConvertAll(s => s.Listen());
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var timeout = Task.Delay(model.Options.StepTimeout, timer.Token);
        var first = await (laneAnswer is null ? Task.WhenAny([.. reads, timeout]) : Task.WhenAny([.. reads, laneAnswer, timeout])).ConfigureAwait(false);
        timer.Cancel(); // at once: CancelAsync would hop to a pool thread on every token
        cancellationToken.ThrowIfCancellationRequested();
        var k = first == laneAnswer ? spans.Count - 1 : reads.IndexOf((Task)first);
        if (k < 0)
        {
            MarkUncertain();
            Log.ChainTimedOut(model.Logger, model.Options.StepTimeout);
            return null;
        }
        if (first == laneAnswer && laneAnswer.IsFaulted)
        {
            // the answer may have been lost with the lane: the last server is asked where it stands
            return await InterruptedAsync(k, "lost the connection it answers on", laneAnswer.Exception!.InnerException!.Message).ConfigureAwait(false);
        }
        WireTensor output;
        try
        {
            var reply = first == laneAnswer ? new InferenceReply { Step = laneAnswer.Result } : spans[k].TakeReply();
            if (reply.Step is { Refused.Length: > 0 } refused)
            {
                // not the refuser's fault: the catch-up checks what the server before it pushed
                return await InterruptedAsync(k, "refused a pushed step", refused.Refused).ConfigureAwait(false);
            }
            if (k < spans.Count - 1)
            {
                return await InterruptedAsync(k, "answered out of turn", reply.Step?.PushError ?? "").ConfigureAwait(false);
            }
            output = spans[k].AcceptStep(reply, hidden);
        }
        catch (Exception e) when (IsHopFailure(e, cancellationToken))
        {
            return await InterruptedAsync(k, "failed", e.Message, e).ConfigureAwait(false);
        }
        foreach (var span in spans.Take(spans.Count - 1))
        {
            span.CountPushedStep();
        }
        foreach (var hop in _hops)
        {
            model.Bans.RecordSuccess(hop.Server.Address);
        }
        return output;
    }

    /// <summary>
    /// A quiet chain stopped at hop <paramref name="k"/>: every hop is to be synced, and hop <paramref name="k"/>
    /// replaced if it failed (<paramref name="failure"/>), rather than spoke up for a fault elsewhere.
    /// </summary>
    private async Task<WireTensor?> InterruptedAsync(int k, string what, string reason, Exception? failure = null)
    {
        Log.ChainInterrupted(model.Logger, _hops[k].Server, what, reason);
        MarkUncertain();
        if (failure is not null)
        {
            await FailAsync(k, failure).ConfigureAwait(false);
        }
        return null;
    }

    /// <summary>
    /// Brings every hop, in route order, to step <paramref name="step"/> and returns the last hop's output of
    /// it. A hop with no session gets one; a hop whose standing is unknown is synced; each is then sent the
    /// steps it lacks, with inputs the client knows or fetches from the previous hop's kept outputs. A hop
    /// that fails is banned and its span routed anew; the replacement is replayed from the start.
    /// </summary>
    private async Task<WireTensor> CatchUpAsync(int step, CancellationToken cancellationToken)
    {
        WireTensor? output = null;
        for (var k = 0; k < _hops.Count;)
        {
            var hop = _hops[k];
            if (hop.Replace)
            {
                await ReplaceAsync(k, cancellationToken).ConfigureAwait(false);
                continue;
            }
            try
            {
                if (hop.Span is null)
                {
                    hop.Span = await OpenAsync(hop.Server, hop.Start, hop.End, cancellationToken).ConfigureAwait(false);
                }
                else if (hop.Uncertain)
                {
                    await hop.Span.SyncAsync(0, 0, cancellationToken).ConfigureAwait(false);
                }
                hop.Uncertain = false;
                if (hop.Span.StepsRun > (ulong)step)
                {
                    throw new RpcException(new Status(StatusCode.DataLoss, $"server {hop.Server} claims {hop.Span.StepsRun} steps; only {step} were sent"));
                }
            }
            catch (Exception e) when (IsHopFailure(e, cancellationToken))
            {
                await FailAsync(k, e).ConfigureAwait(false);
                continue;
            }
            var from = (int)hop.Span.StepsRun + 1;
            List<WireTensor> inputs;
            try
            {
                inputs = await InputsAsync(k, from, step, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (IsHopFailure(e, cancellationToken))
            {
                // the previous hop could not give what it computed (gone, or it kept garbage): it is replaced
                await FailAsync(k - 1, e).ConfigureAwait(false);
                k--;
                continue;
            }
            if (inputs.Count > 0)
            {
                try
                {
                    // pipelined: a whole history in about one round trip
                    var outputs = await hop.Span.StepManyAsync([.. inputs.Select((h, i) => (h, _positions[from - 1 + i]))], cancellationToken).ConfigureAwait(false);
                    model.Bans.RecordSuccess(hop.Server.Address);
                    if (k + 1 < _hops.Count)
                    {
                        Store(_hops[k + 1].Inputs, from, outputs);
                    }
                    else
                    {
                        output = outputs[^1];
                    }
                }
                catch (Exception e) when (IsHopFailure(e, cancellationToken))
                {
                    await FailAsync(k, e).ConfigureAwait(false);
                    continue;
                }
            }
            else if (k == _hops.Count - 1)
            {
                // the step was pushed to the last server before the chain broke: it kept the output
                try
                {
                    output = (await hop.Span.OutputsAsync((ulong)step, [_embeddings[step - 1]], cancellationToken).ConfigureAwait(false))[0];
                }
                catch (Exception e) when (IsHopFailure(e, cancellationToken))
                {
                    await FailAsync(k, e).ConfigureAwait(false);
                    continue;
                }
            }
            k++;
        }
        return output ?? throw new InvalidOperationException("the route ended without an output");
    }

    /// <summary>
    /// Hop <paramref name="k"/>'s inputs of steps <paramref name="from"/>..<paramref name="to"/>: the embeddings
    /// for the first hop; for a later one, what the client has seen of the previous hop's outputs, the rest
    /// fetched from the previous hop (which has run them all). Fails as the previous hop if it cannot give them.
    /// </summary>
    private async Task<List<WireTensor>> InputsAsync(int k, int from, int to, CancellationToken cancellationToken)
    {
        if (from > to)
        {
            return [];
        }
        if (k == 0)
        {
            return _embeddings.GetRange(from - 1, to - from + 1);
        }
        var known = _hops[k].Inputs;
        while (known.Count < to)
        {
            known.Add(null);
        }
        var missing = known.FindIndex(from - 1, to - from + 1, input => input is null);
        if (missing >= 0)
        {
            var previous = _hops[k - 1].Span ?? throw new InvalidOperationException("the previous hop has no session");
            var fetched = await previous.OutputsAsync((ulong)missing + 1, _embeddings.GetRange(missing, to - missing), cancellationToken).ConfigureAwait(false);
            Store(known, missing + 1, fetched);
        }
        return known.GetRange(from - 1, to - from + 1).ConvertAll(input => input!);
    }

    /// <summary>Records <paramref name="outputs"/> (of steps <paramref name="from"/> on) as a hop's known inputs.</summary>
    private static void Store(List<WireTensor?> inputs, int from, IReadOnlyList<WireTensor> outputs)
    {
        while (inputs.Count < from - 1 + outputs.Count)
        {
            inputs.Add(null);
        }
        for (var i = 0; i < outputs.Count; i++)
        {
            inputs[from - 1 + i] = outputs[i];
        }
    }

    /// <summary>Every hop with a session is asked where it stands before it is used again.</summary>
    private void MarkUncertain()
    {
        foreach (var hop in _hops)
        {
            hop.Uncertain = hop.Span is not null;
        }
    }

    /// <summary>Counts a failure of hop <paramref name="k"/> (banning its server) and drops its session; its span is routed anew.</summary>
    private async Task FailAsync(int k, Exception e)
    {
        var hop = _hops[k];
        CountFailure(hop.Server, e);
        hop.Replace = true;
        if (hop.Span is { } span)
        {
            hop.Span = null;
            await span.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Routes hop <paramref name="k"/>'s blocks anew; the new hops start without sessions and are replayed by the catch-up.</summary>
    private async Task ReplaceAsync(int k, CancellationToken cancellationToken)
    {
        var old = _hops[k];
        var route = await model.FindRouteAsync(old.Start, old.End, refresh: true, cancellationToken).ConfigureAwait(false);
        _hops.RemoveAt(k);
        // the first new hop takes the same inputs as the old one; the client knows what it knew of them
        _hops.InsertRange(k, route.Select((r, i) => new Hop(r.Server, r.Start, r.End, i == 0 ? old.Inputs : [])));
    }

    /// <summary>Closes every session; the next step replays the whole history into new ones.</summary>
    private void CloseAll()
    {
        foreach (var hop in _hops)
        {
            if (hop.Span is { } span)
            {
                _ = span.DisposeAsync().AsTask();
            }
            (hop.Span, hop.Uncertain) = (null, false);
            if (hop.Inputs.Count > _embeddings.Count)
            {
                hop.Inputs.RemoveRange(_embeddings.Count, hop.Inputs.Count - _embeddings.Count);
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

    /// <summary>The logits (B, V) of the last position, computed on the tensor thread (at once when called there); not in any dispose scope.</summary>
    private Task<Tensor> HeadAsync(WireTensor hidden) => TensorThread.InvokeAsync(() =>
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return model.Ends.Head(TensorWire.Decode(hidden)).select(1, -1).DetachFromDisposeScope(); // (B, V)
    });

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

    private sealed class Hop(ServerSpan server, int start, int end, List<WireTensor?> inputs)
    {
        internal ServerSpan Server { get; } = server;

        internal int Start { get; } = start;

        internal int End { get; } = end;

        /// <summary>This hop's input of each step, where the client has seen it (null where only the previous server has).</summary>
        internal List<WireTensor?> Inputs { get; } = inputs;

        /// <summary>The session, or null when a new one is to be opened (and the whole history replayed into it).</summary>
        internal RemoteSpan? Span { get; set; }

        /// <summary>Whether the session may have run a step the client did not see it finish (a broken chain): sync before use.</summary>
        internal bool Uncertain { get; set; }

        /// <summary>Whether the server failed and its span is to be routed anew.</summary>
        internal bool Replace { get; set; }
    }
}
