using Grpc.Core;
using Grpc.Net.Client;
using Pollen.Inference.Protos;
using WireTensor = Pollen.Swarm.Protos.Tensor;

namespace Pollen.Inference.Client;

/// <summary>
/// One inference session on one server's span, over one bidirectional stream: open, then steps answered
/// in order. Works on wire tensors only, so hidden states pass from hop to hop without being decoded.
/// </summary>
/// <remarks>
/// The stream carries a deadline for its whole life (<see cref="SwarmModelOptions.SessionDeadline"/>) and
/// each open or step its own (<see cref="SwarmModelOptions.StepTimeout"/>): a server that stalls fails
/// the step after the step timeout instead of hanging the generation. Any failure leaves this object
/// unusable; the caller bans the server and replays on another. Replies are read one at a time, and a
/// read is never cancelled (a caller that stops waiting leaves it to the next), so a session that sends
/// nothing while its steps pass through it quietly can be listened to across steps.
/// </remarks>
public sealed class RemoteSpan : IAsyncDisposable
{
    private readonly AsyncDuplexStreamingCall<InferenceRequest, InferenceReply> _call;
    private readonly TimeSpan _stepTimeout;
    private ulong _nextStep;
    private Task<bool>? _pending;

    private RemoteSpan(ServerSpan server, int start, int end, AsyncDuplexStreamingCall<InferenceRequest, InferenceReply> call, TimeSpan stepTimeout)
    {
        Server = server;
        Start = start;
        End = end;
        _call = call;
        _stepTimeout = stepTimeout;
    }

    /// <summary>The server.</summary>
    public ServerSpan Server { get; }

    /// <summary>First block this session runs.</summary>
    public int Start { get; }

    /// <summary>One past the last block this session runs.</summary>
    public int End { get; }

    /// <summary>Opens a session for blocks <paramref name="start"/>..<paramref name="end"/>-1 on <paramref name="server"/>.</summary>
    public static async Task<RemoteSpan> OpenAsync(GrpcChannel channel, ServerSpan server, int start, int end, int maxLength, int batchSize,
        SwarmModelOptions options, CancellationToken cancellationToken)
    {
        var client = new Blocks.BlocksClient(channel);
        var call = client.Inference(deadline: DateTime.UtcNow + options.SessionDeadline, cancellationToken: cancellationToken);
        var span = new RemoteSpan(server, start, end, call, options.StepTimeout);
        try
        {
            await span.WriteAsync(new InferenceRequest
            {
                Open = new OpenSession { Blocks = new BlockRange { StartBlock = start, EndBlock = end }, MaxLength = maxLength, BatchSize = batchSize },
            }, cancellationToken).ConfigureAwait(false);
            var reply = await span.NextReplyAsync(options.StepTimeout, cancellationToken).ConfigureAwait(false);
            if (reply.KindCase != InferenceReply.KindOneofCase.Opened)
            {
                throw new RpcException(new Status(StatusCode.Internal, $"server {server} answered open with {reply.KindCase}"));
            }
            span.SessionId = reply.Opened.SessionId;
            span.PushToken = reply.Opened.PushToken;
            span.PushPort = reply.Opened.PushPort; // checked where it is used (PushLaneWriters.For)
            span.AnswerToken = reply.Opened.AnswerToken;
            return span;
        }
        catch
        {
            await span.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The server's id of the session (for pushes into it).</summary>
    public string SessionId { get; private set; } = "";

    /// <summary>The secret a previous server presents to push steps into the session (empty from a server that does not take pushes).</summary>
    public Google.Protobuf.ByteString PushToken { get; private set; } = Google.Protobuf.ByteString.Empty;

    /// <summary>The secret with which this client alone asks for the session's answers on the server's push lane (empty from a server without answer lanes).</summary>
    internal Google.Protobuf.ByteString AnswerToken { get; private set; } = Google.Protobuf.ByteString.Empty;

    /// <summary>Steps the session has run (as far as this client knows).</summary>
    public ulong StepsRun => _nextStep;

    /// <summary>Whether steps can be pushed into this session by another server.</summary>
    public bool TakesPushes => PushToken.Length > 0 && SessionId.Length > 0;

    /// <summary>The server's push lane port (0: none; pushes to it use the gRPC call).</summary>
    public uint PushPort { get; private set; }

    /// <summary>The step_id the session's next step carries, whoever sends it.</summary>
    public ulong NextStepId => _nextStep + 1;

    /// <summary>Runs hidden states (B, T, C) at positions (B, T) through the span; returns the output hidden states.</summary>
    public async Task<WireTensor> StepAsync(WireTensor hidden, WireTensor positions, CancellationToken cancellationToken)
    {
        var id = ++_nextStep;
        await WriteAsync(new InferenceRequest { Step = new InferenceStep { Hidden = hidden, Positions = positions, StepId = id } }, cancellationToken).ConfigureAwait(false);
        return CheckReply(await NextReplyAsync(_stepTimeout, cancellationToken).ConfigureAwait(false), id, hidden);
    }

    /// <summary>
    /// Sends the next step without waiting for its reply, naming the later sessions of the route its output
    /// is pushed to. Each pushed-to span then counts the step as its own (<see cref="ReadStepAsync"/>, or
    /// <see cref="CountPushedStep"/> when the step is <paramref name="quiet"/> and only the last span answers).
    /// </summary>
    public async Task SendStepAsync(WireTensor hidden, WireTensor positions, IEnumerable<PushTarget> next, bool quiet, CancellationToken cancellationToken) =>
        await WriteAsync(new InferenceRequest { Step = NextStep(hidden, positions, next, quiet) }, cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Sends the next step like <see cref="SendStepAsync"/>, but as a push on the server's push lane, when it
    /// has one that can be reached: it then runs as a pushed step, checked against this session's push token.
    /// False when it is to go on the stream instead (nothing was sent); throws if the write failed.
    /// </summary>
    internal Task<bool> PushStepAsync(Wire.PushLaneWriters lanes, WireTensor hidden, WireTensor positions, IEnumerable<PushTarget> next, bool quiet,
        Microsoft.Extensions.Logging.ILogger logger)
    {
        if (PushPort == 0)
        {
            return Task.FromResult(false);
        }
        var message = new PushBatch();
        message.Steps.Add(new PushRequest { SessionId = SessionId, PushToken = PushToken, Step = NextStep(hidden, positions, next, quiet) });
        return lanes.TryWriteAsync(Server.Address, PushPort, message, _stepTimeout, logger);
    }

    private InferenceStep NextStep(WireTensor hidden, WireTensor positions, IEnumerable<PushTarget> next, bool quiet)
    {
        var step = new InferenceStep { Hidden = hidden, Positions = positions, StepId = NextStepId, Quiet = quiet };
        step.Next.Add(next);
        return step;
    }

    /// <summary>
    /// Reads the reply to the next step, which was sent by <see cref="SendStepAsync"/> or pushed by the previous
    /// server; <paramref name="input"/> is what the step's input is known to be (for the shape check). Returns the
    /// output and, when the step named next targets, why its output could not be pushed on (null if it was).
    /// </summary>
    public async Task<(WireTensor Hidden, string? PushError)> ReadStepAsync(WireTensor input, CancellationToken cancellationToken)
    {
        var reply = await NextReplyAsync(_stepTimeout, cancellationToken).ConfigureAwait(false);
        return (AcceptStep(reply, input), reply.Step.PushError.Length > 0 ? reply.Step.PushError : null);
    }

    /// <summary>The connection its server sends the answers of its quiet steps on (see <see cref="Wire.AnswerLane"/>), or null: they come on the stream.</summary>
    internal Wire.AnswerLane? AnswerLane
    {
        get => Volatile.Read(ref field);
        private set => Volatile.Write(ref field, value);
    }

    private readonly Lock _laneLock = new();
    private TaskCompletionSource<StepResult>? _laneWaiter;
    private ulong _laneWaitId;

    /// <summary>Notes that the server was asked to answer on <paramref name="lane"/>.</summary>
    internal void ListeningOn(Wire.AnswerLane lane) => AnswerLane = lane;

    /// <summary>
    /// The answer to the next step, should it come on the answer lane (null without one). Its continuation runs
    /// on the thread that reads the lane, the tensor thread. It fails if the lane is lost meanwhile; an answer
    /// may come on the stream instead (the server falls back to it when the lane cannot take it).
    /// </summary>
    internal Task<StepResult>? ExpectLaneAnswer()
    {
        if (AnswerLane is null)
        {
            return null;
        }
        var waiter = new TaskCompletionSource<StepResult>(); // continued where the answer is read
        lock (_laneLock)
        {
            (_laneWaiter, _laneWaitId) = (waiter, NextStepId);
        }
        return waiter.Task;
    }

    /// <summary>An answer that came on the answer lane: the one awaited, or a late one, which is dropped.</summary>
    internal void OnLaneAnswer(StepResult step)
    {
        TaskCompletionSource<StepResult>? waiter = null;
        lock (_laneLock)
        {
            if (_laneWaiter is not null && step.StepId == _laneWaitId)
            {
                (waiter, _laneWaiter) = (_laneWaiter, null);
            }
        }
        waiter?.TrySetResult(step);
    }

    /// <summary>The answer lane closed: answers come on the stream again, and one awaited there fails.</summary>
    internal void LaneLost(Wire.AnswerLane lane, IOException error)
    {
        TaskCompletionSource<StepResult>? waiter;
        lock (_laneLock)
        {
            if (AnswerLane != lane)
            {
                return;
            }
            AnswerLane = null;
            (waiter, _laneWaiter) = (_laneWaiter, null);
        }
        waiter?.TrySetException(error);
    }

    /// <summary>This session as the target of a push carrying its next step.</summary>
    public PushTarget AsPushTarget() => new() { Address = Server.Address, SessionId = SessionId, PushToken = PushToken, StepId = NextStepId, PushPort = PushPort };

    /// <summary>Counts a step that reached this session by a push and was not answered (a quiet step passed on).</summary>
    internal void CountPushedStep() => _nextStep++;

    /// <summary>
    /// The read of the session's next reply, started if none is under way. It is never cancelled: a caller
    /// that stops waiting leaves it for the next, so a quiet session can be listened to across steps (its
    /// reply, if one ever comes, means something went wrong) without ever losing a message.
    /// </summary>
    internal Task Listen() => _pending ??= _call.ResponseStream.MoveNext(CancellationToken.None);

    /// <summary>Takes the reply that <see cref="Listen"/> read; throws as the stream failed, or if it ended.</summary>
    internal InferenceReply TakeReply()
    {
        var read = _pending ?? throw new InvalidOperationException("nothing was read");
        _pending = null;
        if (!read.GetAwaiter().GetResult())
        {
            throw new RpcException(new Status(StatusCode.Unavailable, $"server {Server} ended the session"));
        }
        return _call.ResponseStream.Current;
    }

    /// <summary>Accepts <paramref name="reply"/> as the answer to the next step: its output, checked against the step's <paramref name="input"/>.</summary>
    internal WireTensor AcceptStep(InferenceReply reply, WireTensor input)
    {
        var id = NextStepId;
        var hidden = CheckReply(reply, id, input);
        _nextStep = id;
        return hidden;
    }

    private async Task<InferenceReply> NextReplyAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            await Listen().WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"server {Server} did not answer within {timeout}"));
        }
        return TakeReply();
    }

    /// <summary>
    /// Asks where the session stands: the last step it ran, with the outputs of steps <paramref name="from"/>..
    /// <paramref name="to"/> (as many as the server sends at once; none when <paramref name="from"/> is 0). The
    /// push token is replaced, so pushes still on their way into the session are dropped; the step replies
    /// that were on their way to the client are skipped.
    /// </summary>
    internal async Task<(ulong Last, IReadOnlyList<WireTensor> Outputs)> SyncAsync(ulong from, ulong to, CancellationToken cancellationToken)
    {
        await WriteAsync(new InferenceRequest { Sync = new SyncSession { FromStep = from, ToStep = to } }, cancellationToken).ConfigureAwait(false);
        while (true)
        {
            // a sync waits for the step the server is running: it has a step's time
            var reply = await NextReplyAsync(_stepTimeout, cancellationToken).ConfigureAwait(false);
            if (reply.KindCase == InferenceReply.KindOneofCase.Step)
            {
                continue; // an answer (or refusal) from before the sync, already accounted for by it
            }
            // outputs of from..min(to, last): at least one when there are any, never more
            var synced = reply.Synced ?? new SessionSynced();
            var end = to == 0 ? synced.LastStepId : Math.Min(to, synced.LastStepId);
            var owed = from == 0 || from > end ? 0 : end - from + 1;
            if (synced.PushToken.Length == 0 || (ulong)synced.Outputs.Count > owed || (owed > 0 && synced.Outputs.Count == 0))
            {
                throw new RpcException(new Status(StatusCode.DataLoss, $"server {Server} answered a sync with a reply that does not match it"));
            }
            _nextStep = synced.LastStepId;
            PushToken = synced.PushToken;
            return (synced.LastStepId, synced.Outputs);
        }
    }

    /// <summary>
    /// The outputs the session kept of steps <paramref name="from"/>..<paramref name="from"/> + count - 1, each
    /// checked against the input of the same step in <paramref name="like"/> (the step's input to the route,
    /// of the same shape and dtype); fails if the session has not run them all.
    /// </summary>
    internal async Task<List<WireTensor>> OutputsAsync(ulong from, IReadOnlyList<WireTensor> like, CancellationToken cancellationToken)
    {
        var outputs = new List<WireTensor>(like.Count);
        var to = from + (ulong)like.Count - 1;
        while (outputs.Count < like.Count)
        {
            var id = from + (ulong)outputs.Count;
            var (last, got) = await SyncAsync(id, to, cancellationToken).ConfigureAwait(false);
            if (last < to)
            {
                throw new RpcException(new Status(StatusCode.DataLoss, $"server {Server} has run {last} steps, fewer than the {to} it was given"));
            }
            foreach (var output in got) // never more than asked for (checked by the sync)
            {
                outputs.Add(CheckTensor(output, from + (ulong)outputs.Count, like[outputs.Count]));
            }
        }
        return outputs;
    }

    /// <summary>The reply's hidden states, if it answers step <paramref name="id"/> with a tensor shaped like the input, of exact size and finite.</summary>
    private WireTensor CheckReply(InferenceReply reply, ulong id, WireTensor hidden)
    {
        if (reply.KindCase != InferenceReply.KindOneofCase.Step || reply.Step.StepId != id || reply.Step.Hidden is null)
        {
            throw new RpcException(new Status(StatusCode.DataLoss, $"server {Server} answered step {id} with a reply that does not match it"));
        }
        return CheckTensor(reply.Step.Hidden, id, hidden);
    }

    /// <summary><paramref name="output"/>, if it is shaped like <paramref name="input"/>, of exact size and finite.</summary>
    private WireTensor CheckTensor(WireTensor output, ulong id, WireTensor input)
    {
        if (!output.Shape.SequenceEqual(input.Shape) || output.Dtype != input.Dtype)
        {
            throw new RpcException(new Status(StatusCode.DataLoss, $"server {Server} returned an output of step {id} shaped unlike its input"));
        }
        // a server is not trusted with what it returns either: exact size, finite values
        try
        {
            Pollen.Swarm.Tensors.TensorCodec.Validate(output, long.MaxValue);
        }
        catch (Pollen.Swarm.Tensors.TensorFormatException e)
        {
            throw new RpcException(new Status(StatusCode.DataLoss, $"server {Server} returned a malformed output of step {id}: {e.Message}"));
        }
        if (!Wire.TensorWire.AllFinite(output))
        {
            throw new RpcException(new Status(StatusCode.DataLoss, $"server {Server} returned NaN or infinite values as the output of step {id}"));
        }
        return output;
    }

    /// <summary>
    /// Runs several steps pipelined: all requests are written before the replies are read, so replaying a
    /// session's history to a new server costs about one round trip instead of one per step. The
    /// deadline covers the whole batch, one step timeout per 16 steps (at least one).
    /// </summary>
    public async Task<IReadOnlyList<WireTensor>> StepManyAsync(IReadOnlyList<(WireTensor Hidden, WireTensor Positions)> steps, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + _stepTimeout * Math.Max(1, (steps.Count + 15) / 16);
        using var writer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var first = _nextStep + 1;
        _nextStep += (ulong)steps.Count;
        var writing = Task.Run(async () =>
        {
            for (var i = 0; i < steps.Count; i++)
            {
                var step = new InferenceStep { Hidden = steps[i].Hidden, Positions = steps[i].Positions, StepId = first + (ulong)i };
                await _call.RequestStream.WriteAsync(new InferenceRequest { Step = step }, writer.Token).ConfigureAwait(false);
            }
        }, writer.Token);
        try
        {
            var outputs = new List<WireTensor>(steps.Count);
            for (var i = 0; i < steps.Count; i++)
            {
                var left = deadline - DateTime.UtcNow;
                var reply = await NextReplyAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
                outputs.Add(CheckReply(reply, first + (ulong)i, steps[i].Hidden));
            }
            await writing.ConfigureAwait(false);
            return outputs;
        }
        finally
        {
            if (!writing.IsCompleted)
            {
                // a failed read leaves the writer blocked on the stream: stop it before its token goes away
                await writer.CancelAsync().ConfigureAwait(false);
                await writing.ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
            }
        }
    }

    private async Task WriteAsync(InferenceRequest request, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_stepTimeout);
        try
        {
            await _call.RequestStream.WriteAsync(request, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"server {Server} did not take a message within {_stepTimeout}"));
        }
    }

    /// <summary>Closes the session (best effort) and the stream.</summary>
    public async ValueTask DisposeAsync()
    {
        AnswerLane?.Forget(SessionId);
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            await _call.RequestStream.WriteAsync(new InferenceRequest { Close = new CloseSession() }, timeout.Token).ConfigureAwait(false);
            await _call.RequestStream.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is RpcException or InvalidOperationException or OperationCanceledException or IOException)
        {
            // the server is gone or the stream already failed: nothing to close
        }
        _call.Dispose();
        // a read left listening fails with the call; nobody waits for it any more
        _ = _pending?.ContinueWith(static read => read.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
    }
}
