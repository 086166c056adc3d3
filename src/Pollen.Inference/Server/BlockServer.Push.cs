using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using Pollen.Inference.Protos;
using Pollen.Inference.Wire;
using Pollen.Swarm.Transport;
using WireTensor = Pollen.Swarm.Protos.Tensor;

namespace Pollen.Inference.Server;

/// <summary>
/// Server-to-server pushes: a step may name the sessions of the route's later servers, and its output is
/// then written straight into the next one's session instead of waiting for the client to carry it there.
/// </summary>
/// <remarks>
/// <para>
/// A token crosses the route in hops + 1 messages (client → first server → … → last server → client)
/// instead of two per hop. A step marked quiet is answered by the last server only: the intermediate
/// servers speak only when something went wrong (their push failed, they refused a pushed step, their
/// session ended). Each server keeps the outputs of its session's steps, so a client that never saw them
/// can still fetch the inputs a replacement server needs, and a sync (answered in order with the steps)
/// tells the client how far a session got and replaces its push token, fencing off pushes still on their
/// way; from then on only the client, or a push with the new token, advances the session, and no step
/// runs twice.
/// </para>
/// <para>
/// A server keeps one push stream to each next server, shared by all its sessions, and the outputs of one
/// batched forward that go to the same next server travel as one message (<see cref="PushBatch"/>). Eight
/// sessions stepping together then cost one message per hop instead of eight, and the next server can run
/// them as one batch as soon as that message arrives.
/// </para>
/// <para>
/// A push is accepted only for an open session with its current push token (otherwise it is dropped:
/// there is nobody to tell). Each step of a message is checked on its own before any work, like a step from
/// the client, and also for being the next step in order: a step the session cannot take is answered as
/// refused on the session's stream, and the session stays as it was, so its client can check what the
/// previous server computed and carry the step itself; the stream and the other sessions on it go on. The
/// targets in a step are untrusted input like any other: their number is capped and each must be a
/// well-formed address with a token of the right size. A push that cannot be written is reported in the
/// reply (<c>push_error</c>), so the client carries that step itself.
/// </para>
/// </remarks>
public sealed partial class BlockServer
{
    /// <summary>Most next targets one step may name (a route longer than this is not pushed).</summary>
    internal const int MaxPushTargets = 64;

    /// <summary>Most steps in one pushed message.</summary>
    internal const int MaxPushBatch = 64;

    /// <summary>Pushed steps of one stream or lane connection running at once before it waits for some to finish.</summary>
    internal const int MaxPushesInFlight = 4 * MaxPushBatch;

    /// <summary>Most next servers this server keeps a push stream open to.</summary>
    private const int MaxPushStreams = 64;

    private readonly Lock _pushLock = new();
    private readonly Dictionary<string, PushStream> _pushStreams = [];
    private readonly PushLaneWriters _laneWriters = new();
    private PeerChannelPool? _pushChannels;
    private PushLaneListener? _lane;
    private bool _disposing;
    private long _stepsPushed;
    private long _pushMessages;
    private long _laneMessages;
    private long _laneAnswers;
    private long _pushesReceived;
    private long _pushesRefused;

    /// <summary>Step outputs this server pushed to the next server of a route.</summary>
    public long StepsPushed => Interlocked.Read(ref _stepsPushed);

    /// <summary>Messages those pushes took (a batched forward's outputs for one next server share one).</summary>
    public long PushMessages => Interlocked.Read(ref _pushMessages);

    /// <summary>Of <see cref="PushMessages"/>, those that went on the next server's push lane.</summary>
    public long LaneMessages => Interlocked.Read(ref _laneMessages);

    /// <summary>
    /// Largest output answered on a lane: the frame is written at once or not at all (a socket that cannot take
    /// it whole is cut), so a long prompt's outputs go on the stream, which waits for room.
    /// </summary>
    internal const int MaxLaneAnswerBytes = 256 << 10;

    /// <summary>Answers sent back to clients on their push-lane connections (<see cref="LaneAnswer"/>) instead of on the sessions' streams.</summary>
    public long LaneAnswers => Interlocked.Read(ref _laneAnswers);

    /// <summary>Steps that arrived pushed by a previous server.</summary>
    public long PushesReceived => Interlocked.Read(ref _pushesReceived);

    /// <summary>Pushed steps refused (unknown session, wrong token, out of order, invalid).</summary>
    public long PushesRefused => Interlocked.Read(ref _pushesRefused);

    /// <summary>The port of this server's push lane (see <see cref="PushLane"/>), told to clients in <c>SessionOpened</c>; 0 when there is none.</summary>
    public int PushPort => Volatile.Read(ref _lane)?.Port ?? 0;

    /// <summary>
    /// Starts taking pushes on a TCP port of their own (<paramref name="port"/>, 0 for any free one) on
    /// <paramref name="listenAddress"/>, next to the gRPC port; sessions opened from then on tell their
    /// clients about it. Disposing the result stops it (and cuts its connections), as does disposing the server.
    /// </summary>
    /// <exception cref="System.Net.Sockets.SocketException">The port cannot be listened on (in use?).</exception>
    public IDisposable ListenForPushes(string listenAddress, int port)
    {
        var lane = new PushLaneListener(System.Net.IPAddress.Parse(listenAddress), port, StartPushed, _options.MaxMessageBytes + (64 << 10),
            MaxPushesInFlight, _logger, listen: ListenOnLane);
        if (Interlocked.CompareExchange(ref _lane, lane, null) is not null)
        {
            lane.Dispose();
            throw new InvalidOperationException("this server already listens for pushes");
        }
        return new LaneStop(this, lane);
    }

    /// <summary>Push-lane connections open now (for tests).</summary>
    internal int PushLaneConnections => Volatile.Read(ref _lane)?.Connections ?? 0;

    private sealed class LaneStop(BlockServer server, PushLaneListener lane) : IDisposable
    {
        public void Dispose()
        {
            Interlocked.CompareExchange(ref server._lane, null, lane);
            lane.Dispose();
        }
    }

    /// <summary>
    /// Runs a step of <paramref name="session"/> and answers it on the session's stream, pushing the output
    /// to the step's first next target before answering (a quiet step whose push succeeded is not answered).
    /// Steps of one session, their replies and syncs are serialized, whether they came from the client or
    /// from a push. <paramref name="pushToken"/> is the token a pushed step came with (null for the client's).
    /// </summary>
    internal async Task RunStepAndReplyAsync(BlockSession session, InferenceStep step, ByteString? pushToken, CancellationToken cancellationToken)
    {
        if (pushToken is null)
        {
            CheckPushTargets(step);
        }
        await session.StepGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            StepWork? work;
            if (pushToken is null)
            {
                CheckStepId(session, step, pushed: false);
                work = StepAsync(session, step);
            }
            else if (!CryptographicOperations.FixedTimeEquals(pushToken.Span, session.PushToken))
            {
                // sent before a sync replaced the token: the client has taken the session over since
                Interlocked.Increment(ref _pushesRefused);
                Log.PushRefused(_logger, "a push made with a replaced token");
                return;
            }
            else if (!TryStartPushed(session, step, out work, out var refusal))
            {
                // the session is unchanged; its client hears why and carries the step itself
                Interlocked.Increment(ref _pushesRefused);
                Log.PushRefused(_logger, refusal);
                await ReplyAsync(session, new InferenceReply { Step = new StepResult { StepId = step.StepId, Refused = refusal } }).ConfigureAwait(false);
                return;
            }
            var hidden = await work.Completion.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            session.Outputs.Add(hidden);
            if (work.Answered is { } answered)
            {
                // the last server of a route: the answer was started on the tensor thread, like a push
                await answered.ConfigureAwait(false);
                return;
            }
            string? pushError = null;
            if (work.Pushed is { } pushed)
            {
                // started on the tensor thread as soon as the output was encoded (with a batch's other outputs
                // for the same server, in one message)
                pushError = await pushed.ConfigureAwait(false);
                if (pushError is not null)
                {
                    Log.PushFailed(_logger, session.Id, step.Next[0].Address, pushError);
                }
                else if (step.Quiet)
                {
                    return; // the last server of the route answers for the whole chain
                }
            }
            await ReplyAsync(session, new InferenceReply { Step = new StepResult { Hidden = hidden, StepId = step.StepId, PushError = pushError ?? "" } }).ConfigureAwait(false);
        }
        finally
        {
            session.StepGate.Release();
        }
    }

    /// <summary>
    /// Answers a sync: replaces the push token (fencing off pushes still on their way) and returns the last
    /// step run with the outputs asked for, as many as fit in half the largest message.
    /// </summary>
    internal async Task SyncAsync(BlockSession session, SyncSession sync, CancellationToken cancellationToken)
    {
        await session.StepGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var synced = new SessionSynced { PushToken = ByteString.CopyFrom(session.RenewPushToken()), LastStepId = session.LastStepId };
            var last = sync.ToStep == 0 ? session.LastStepId : Math.Min(sync.ToStep, session.LastStepId);
            long bytes = 0;
            for (var id = Math.Max(sync.FromStep, 1); sync.FromStep > 0 && id <= last; id++)
            {
                var output = session.Outputs[(int)(id - 1)];
                bytes += output.Bytes.Length;
                if (synced.Outputs.Count > 0 && bytes > _options.MaxMessageBytes / 2)
                {
                    break;
                }
                synced.Outputs.Add(output);
            }
            await ReplyAsync(session, new InferenceReply { Synced = synced }).ConfigureAwait(false);
        }
        finally
        {
            session.StepGate.Release();
        }
    }

    private static Task ReplyAsync(BlockSession session, InferenceReply reply) =>
        (session.Reply ?? throw new RpcException(new Status(StatusCode.NotFound, "the session has no open stream")))(reply);

    /// <summary>
    /// Answers <paramref name="work"/> with its output: on the push-lane connection its client listens on when
    /// it is a quiet chain's last step (the client then expects it there or on the stream), else, or if that
    /// connection cannot take it, on the session's stream.
    /// </summary>
    private Task AnswerAsync(StepWork work, WireTensor output)
    {
        var result = new StepResult { Hidden = output, StepId = work.Step.StepId };
        if (work.Step.Quiet && output.Bytes.Length <= MaxLaneAnswerBytes && work.Session.AnswerLane is { } lane)
        {
            // counted before it is sent, as pushes are: the client may act on it before TrySend returns
            Interlocked.Increment(ref _laneAnswers);
            if (lane.TrySend(new LaneAnswer { SessionId = work.Session.Id.ToString(CultureInfo.InvariantCulture), Step = result }))
            {
                return Task.CompletedTask;
            }
            Interlocked.Decrement(ref _laneAnswers);
        }
        return ReplyAsync(work.Session, new InferenceReply { Step = result });
    }

    /// <summary>
    /// Sends the answers of the quiet steps of the session <paramref name="listen"/> names back on
    /// <paramref name="lane"/> from now on, if its answer token is the session's; else does nothing (a
    /// closed session, or someone other than its client: its answers stay on its stream).
    /// </summary>
    internal void ListenOnLane(ListenRequest listen, IAnswerLane lane)
    {
        if (FindSession(listen.SessionId, listen.AnswerToken, s => s.AnswerToken) is { } session)
        {
            session.AnswerLane = lane;
        }
        else
        {
            Log.PushRefused(_logger, "a request for answers without the session's answer token");
        }
    }

    /// <summary>Refuses a step that is not the session's next (a step from the client may leave its id 0, meaning the next).</summary>
    private static void CheckStepId(BlockSession session, InferenceStep step, bool pushed)
    {
        if ((pushed || step.StepId != 0) && step.StepId != session.LastStepId + 1)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition,
                $"the step has step_id {step.StepId} but the session's last step was {session.LastStepId}; the next is {session.LastStepId + 1}"));
        }
    }

    /// <summary>Starts a pushed step, or says why the session cannot take it; checked in full before anything changes.</summary>
    private bool TryStartPushed(BlockSession session, InferenceStep step, [NotNullWhen(true)] out StepWork? work, [NotNullWhen(false)] out string? refusal)
    {
        try
        {
            CheckStepId(session, step, pushed: true);
            CheckPushTargets(step);
            (work, refusal) = (StepAsync(session, step, pushed: true), null);
            return true;
        }
        catch (RpcException e)
        {
            (work, refusal) = (null, e.Status.Detail);
            return false;
        }
    }

    /// <summary>
    /// Starts the steps of a pushed message (from the <c>Push</c> call or a push lane), after checking it
    /// carries 1..<see cref="MaxPushBatch"/> of them, and adds them to <paramref name="running"/>, from which
    /// the finished ones are dropped. Returns at once: each step waits for its turn and its output on its own.
    /// </summary>
    internal void StartPushed(PushBatch batch, List<Task> running)
    {
        if (batch.Steps.Count is 0 or > MaxPushBatch)
        {
            throw Invalid($"a push message carries 1..{MaxPushBatch} steps, got {batch.Steps.Count}");
        }
        running.RemoveAll(t => t.IsCompleted);
        foreach (var push in batch.Steps)
        {
            running.Add(RunPushedAsync(push));
        }
    }

    /// <summary>
    /// Runs a step pushed by a previous server. Never throws: a step for no open session (or with the wrong
    /// token) is dropped, one the session cannot take is answered as refused, and a step that fails while
    /// running ends its session with the reason, which its client then reads.
    /// </summary>
    internal async Task RunPushedAsync(PushRequest push)
    {
        BlockSession session;
        try
        {
            session = FindPushTarget(push.SessionId, push.PushToken);
        }
        catch (RpcException e)
        {
            Interlocked.Increment(ref _pushesRefused);
            Log.PushRefused(_logger, e.Status.Detail);
            return;
        }
        try
        {
            // not tied to the push stream: a step that arrived whole runs even if its sender goes away
            await RunStepAndReplyAsync(session, push.Step ?? new InferenceStep(), push.PushToken, CancellationToken.None).ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            Interlocked.Increment(ref _pushesRefused);
            Log.PushRefused(_logger, e.Status.Detail);
            session.Abort(e); // the session's client cannot hear about it otherwise
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or ObjectDisposedException or OperationCanceledException)
        {
            // the session's stream ended meanwhile (closed, cut, or the server is stopping): nobody to answer
        }
        catch (Exception e)
        {
            Log.UnexpectedError(_logger, e);
            session.Abort(new RpcException(new Status(StatusCode.Internal, "the server failed to run a pushed step; see its log")));
        }
    }

    /// <summary>The open session <paramref name="sessionId"/>, if <paramref name="token"/> is its push token.</summary>
    internal BlockSession FindPushTarget(string sessionId, ByteString token) =>
        FindSession(sessionId, token, s => s.PushToken) ?? throw new RpcException(new Status(StatusCode.NotFound, "no open session with this id and push token"));

    /// <summary>The open session <paramref name="sessionId"/>, if <paramref name="token"/> is its <paramref name="secret"/>; else null.</summary>
    private BlockSession? FindSession(string sessionId, ByteString token, Func<BlockSession, byte[]> secret)
    {
        BlockSession? session = null;
        if (long.TryParse(sessionId, NumberStyles.None, CultureInfo.InvariantCulture, out var id))
        {
            lock (_lock)
            {
                _sessions.TryGetValue(id, out session);
            }
        }
        return session is not null && token.Length == BlockSession.PushTokenBytes && CryptographicOperations.FixedTimeEquals(token.Span, secret(session))
            ? session : null;
    }

    private static void CheckPushTargets(InferenceStep step)
    {
        if (step.Next.Count > MaxPushTargets)
        {
            throw Invalid($"a step may name at most {MaxPushTargets} next servers, got {step.Next.Count}");
        }
        foreach (var target in step.Next)
        {
            if (!PeerAddress.IsValid(target.Address) || target.SessionId.Length is 0 or > 20 || target.PushToken.Length != BlockSession.PushTokenBytes
                || target.PushPort > ushort.MaxValue)
            {
                throw Invalid("each next target needs a host:port address, a session id, a 16-byte push token and a push port of at most 65535 (0: none)");
            }
        }
    }

    /// <summary>The push that carries <paramref name="hidden"/>, the output of <paramref name="step"/>, to its first next target.</summary>
    private static PushRequest PushOf(InferenceStep step, WireTensor hidden)
    {
        var target = step.Next[0];
        var next = new InferenceStep { Hidden = hidden, Positions = step.Positions, StepId = target.StepId, Quiet = step.Quiet };
        next.Next.Add(step.Next.Skip(1));
        return new PushRequest { SessionId = target.SessionId, PushToken = target.PushToken, Step = next };
    }

    /// <summary>
    /// Sends the outputs of a batched forward on: the steps that name a next target, grouped by its server,
    /// one message per server, and the others' answers to their clients. Sets each step's
    /// <see cref="StepWork.Pushed"/> or <see cref="StepWork.Answered"/>; called on the tensor thread before
    /// the steps complete, and returns without waiting for the network.
    /// </summary>
    private void SendOn(List<StepWork> works, WireTensor[] outputs)
    {
        // rows bound for each next server, in order (plain loops: this runs on the tensor thread for every step)
        Dictionary<(string Address, uint PushPort), List<int>>? bound = null;
        for (var i = 0; i < works.Count; i++)
        {
            var next = works[i].Step.Next;
            if (next.Count == 0)
            {
                works[i].Answered = AnswerAsync(works[i], outputs[i]);
                continue;
            }
            bound ??= [];
            var key = (next[0].Address, next[0].PushPort);
            if (!bound.TryGetValue(key, out var rows))
            {
                bound[key] = rows = [];
            }
            rows.Add(i);
        }
        foreach (var ((address, pushPort), rows) in bound ?? [])
        {
            for (var start = 0; start < rows.Count; start += MaxPushBatch)
            {
                var chunk = rows.GetRange(start, Math.Min(MaxPushBatch, rows.Count - start));
                var sent = PushAsync(address, pushPort, chunk.ConvertAll(i => PushOf(works[i].Step, outputs[i])));
                chunk.ForEach(i => works[i].Pushed = sent);
            }
        }
    }

    /// <summary>
    /// Writes <paramref name="pushes"/> to the server at <paramref name="address"/> as one message: on its push
    /// lane when it has one (<paramref name="pushPort"/>) that can be reached, else with the <c>Push</c> call.
    /// Returns why it could not, or null.
    /// </summary>
    private async Task<string?> PushAsync(string address, uint pushPort, List<PushRequest> pushes)
    {
        var message = new PushBatch();
        message.Steps.Add(pushes);
        // counted before they are written, and taken back if they are not: the route's end may answer the
        // client before a write returns, and whoever sees the answer sees the push counted
        Interlocked.Add(ref _stepsPushed, pushes.Count);
        Interlocked.Increment(ref _pushMessages);
        Interlocked.Increment(ref _laneMessages);
        var onLane = true;
        try
        {
            if (!await _laneWriters.TryWriteAsync(address, pushPort, message, _options.PushTimeout, _logger).ConfigureAwait(false))
            {
                onLane = false;
                Interlocked.Decrement(ref _laneMessages);
                await PushStreamTo(address).WriteAsync(message, _options.PushTimeout).ConfigureAwait(false);
            }
            return null;
        }
        catch (Exception e) when (e is RpcException or IOException or HttpRequestException or OperationCanceledException or InvalidOperationException
            or ObjectDisposedException or TimeoutException or System.Net.Sockets.SocketException)
        {
            Interlocked.Add(ref _stepsPushed, -pushes.Count);
            Interlocked.Decrement(ref _pushMessages);
            if (onLane)
            {
                Interlocked.Decrement(ref _laneMessages);
            }
            return $"could not push to {address}: {e.Message}";
        }
    }

    private PushStream PushStreamTo(string address)
    {
        PushStream? evicted = null;
        PushStream stream;
        lock (_pushLock)
        {
            ObjectDisposedException.ThrowIf(_disposing, this);
            _pushChannels ??= new PeerChannelPool(_options.MaxMessageBytes + (64 << 10), _options.PushTimeout, MaxPushStreams);
            if (!_pushStreams.TryGetValue(address, out stream!))
            {
                if (_pushStreams.Count >= MaxPushStreams)
                {
                    evicted = _pushStreams.Values.MinBy(s => s.LastUsed);
                    _pushStreams.Remove(evicted!.Address);
                }
                var channels = _pushChannels;
                stream = _pushStreams[address] = new PushStream(address, () => channels.Get(address));
            }
            stream.LastUsed = Environment.TickCount64;
        }
        evicted?.Close();
        return stream;
    }

    private void DisposePushStreams()
    {
        lock (_pushLock)
        {
            _disposing = true;
            foreach (var stream in _pushStreams.Values)
            {
                stream.Close();
            }
            _pushStreams.Clear();
            _laneWriters.Dispose();
            Interlocked.Exchange(ref _lane, null)?.Dispose();
            _pushChannels?.Dispose();
            _pushChannels = null;
        }
    }
}

/// <summary>
/// The push stream from this server to one next server, shared by all sessions whose next hop it is. Writes
/// take turns; a write that fails ends the stream, and the next write opens a new one (it is never retried:
/// the message may have arrived, and a step must not run twice).
/// </summary>
internal sealed class PushStream(string address, Func<Grpc.Net.Client.GrpcChannel> channel) : IDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private AsyncClientStreamingCall<PushBatch, PushReply>? _call;
    private bool _closed;

    internal string Address => address;

    /// <summary>When it was last chosen for a push, in <see cref="Environment.TickCount64"/> milliseconds; under the server's push lock.</summary>
    internal long LastUsed { get; set; }

    /// <summary>Writes <paramref name="message"/>, opening the stream if needed, within <paramref name="timeout"/>.</summary>
    internal async Task WriteAsync(PushBatch message, TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        await _gate.WaitAsync(cancel.Token).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_closed, this);
            _call ??= new Blocks.BlocksClient(channel()).Push();
            await _call.RequestStream.WriteAsync(message, cancel.Token).ConfigureAwait(false);
        }
        catch
        {
            var failed = _call;
            _call = null;
            if (failed is not null)
            {
                _ = CloseAsync(failed);
            }
            throw;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Ends the stream in the background (the next server may be gone; nobody waits for it).</summary>
    internal void Close() => _ = CloseWhenIdleAsync();

    /// <summary>Same as <see cref="Close"/>; later writes fail.</summary>
    public void Dispose() => Close();

    private async Task CloseWhenIdleAsync()
    {
        try
        {
            await _gate.WaitAsync().ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            return; // closed already
        }
        AsyncClientStreamingCall<PushBatch, PushReply>? call;
        try
        {
            _closed = true;
            (call, _call) = (_call, null);
        }
        finally
        {
            _gate.Release();
            _gate.Dispose(); // a write that comes later fails at once
        }
        if (call is not null)
        {
            await CloseAsync(call).ConfigureAwait(false);
        }
    }

    private static async Task CloseAsync(AsyncClientStreamingCall<PushBatch, PushReply> call)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await call.RequestStream.CompleteAsync().WaitAsync(timeout.Token).ConfigureAwait(false);
            await call.ResponseAsync.WaitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is RpcException or IOException or OperationCanceledException or InvalidOperationException or ObjectDisposedException or TimeoutException)
        {
            // the next server is gone or refused: nothing to close gracefully
        }
        finally
        {
            call.Dispose();
        }
    }
}
