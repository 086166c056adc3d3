using System.Globalization;
using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using Pollen.Inference.Protos;
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
/// instead of two per hop, which on a real network halves the latency that is not compute. Every server
/// still answers its own client with its output, so the client keeps each hop's inputs for replay and
/// checks every hop's reply in route order: a server that fails, stalls or returns garbage is found and
/// replaced as before, and the later sessions are started over from the client's history.
/// </para>
/// <para>
/// A server keeps one push stream to each next server, shared by all its sessions, and the outputs of one
/// batched forward that go to the same next server travel as one message (<see cref="PushBatch"/>). Eight
/// sessions stepping together then cost one message per hop instead of eight, and the next server can run
/// them as one batch as soon as that message arrives.
/// </para>
/// <para>
/// A push is accepted only for an open session, with the secret token the session's client was given at
/// open, and with the next step id in order. Each step of a message is checked on its own: a step for an
/// unknown session or with the wrong token is dropped (there is nobody to tell), and a step out of order or
/// otherwise refused ends its own session, so its client learns at once; the stream and the other sessions
/// on it go on. The targets in a step are untrusted input like any other: their number is capped and each
/// must be a well-formed address with a token of the right size. A push that cannot be written is reported
/// in the reply (<c>push_error</c>), so the client carries that step itself.
/// </para>
/// </remarks>
public sealed partial class BlockServer
{
    /// <summary>Most next targets one step may name (a route longer than this is not pushed).</summary>
    internal const int MaxPushTargets = 64;

    /// <summary>Most steps in one pushed message.</summary>
    internal const int MaxPushBatch = 64;

    /// <summary>Most next servers this server keeps a push stream open to.</summary>
    private const int MaxPushStreams = 64;

    private readonly Lock _pushLock = new();
    private readonly Dictionary<string, PushStream> _pushStreams = [];
    private PeerChannelPool? _pushChannels;
    private bool _disposing;
    private long _stepsPushed;
    private long _pushMessages;
    private long _pushesReceived;
    private long _pushesRefused;

    /// <summary>Step outputs this server pushed to the next server of a route.</summary>
    public long StepsPushed => Interlocked.Read(ref _stepsPushed);

    /// <summary>Messages those pushes took (a batched forward's outputs for one next server share one).</summary>
    public long PushMessages => Interlocked.Read(ref _pushMessages);

    /// <summary>Steps that arrived pushed by a previous server.</summary>
    public long PushesReceived => Interlocked.Read(ref _pushesReceived);

    /// <summary>Pushed steps refused (unknown session, wrong token, out of order, invalid).</summary>
    public long PushesRefused => Interlocked.Read(ref _pushesRefused);

    /// <summary>
    /// Runs a step of <paramref name="session"/> and answers it on the session's stream, pushing the output
    /// to the step's first next target before answering. Steps of one session and their replies are
    /// serialized, whether they came from the client or from a push.
    /// </summary>
    internal async Task RunStepAndReplyAsync(BlockSession session, InferenceStep step, bool pushed, CancellationToken cancellationToken)
    {
        CheckPushTargets(step);
        await session.StepGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (pushed)
            {
                if (step.StepId != session.LastStepId + 1)
                {
                    throw new RpcException(new Status(StatusCode.FailedPrecondition,
                        $"a pushed step has step_id {step.StepId} but the session's last step was {session.LastStepId}; reopen the session and replay"));
                }
                Interlocked.Increment(ref _pushesReceived);
            }
            var work = StepAsync(session, step);
            var hidden = await work.Completion.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            session.LastStepId = step.StepId;
            string? pushError = null;
            if (step.Next.Count > 0)
            {
                // a batched forward has already sent its outputs on, one message per next server
                pushError = await (work.Pushed ?? PushAsync(step.Next[0].Address, [PushOf(step, hidden)])).ConfigureAwait(false);
                if (pushError is not null)
                {
                    Log.PushFailed(_logger, session.Id, step.Next[0].Address, pushError);
                }
            }
            var reply = session.Reply ?? throw new RpcException(new Status(StatusCode.NotFound, "the session has no open stream"));
            await reply(new InferenceReply { Step = new StepResult { Hidden = hidden, StepId = step.StepId, PushError = pushError ?? "" } }, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            session.StepGate.Release();
        }
    }

    /// <summary>
    /// Runs a step pushed by a previous server. Never throws: a step for no open session (or with the wrong
    /// token) is dropped, and a refused step ends its session with the reason, which its client then reads.
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
            await RunStepAndReplyAsync(session, push.Step ?? throw Invalid("a push needs a step"), pushed: true, CancellationToken.None).ConfigureAwait(false);
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
    internal BlockSession FindPushTarget(string sessionId, ByteString token)
    {
        BlockSession? session = null;
        if (long.TryParse(sessionId, NumberStyles.None, CultureInfo.InvariantCulture, out var id))
        {
            lock (_lock)
            {
                _sessions.TryGetValue(id, out session);
            }
        }
        if (session is null || token.Length != BlockSession.PushTokenBytes || !CryptographicOperations.FixedTimeEquals(token.Span, session.PushToken))
        {
            throw new RpcException(new Status(StatusCode.NotFound, "no open session with this id and push token"));
        }
        return session;
    }

    private static void CheckPushTargets(InferenceStep step)
    {
        if (step.Next.Count > MaxPushTargets)
        {
            throw Invalid($"a step may name at most {MaxPushTargets} next servers, got {step.Next.Count}");
        }
        foreach (var target in step.Next)
        {
            if (!PeerAddress.IsValid(target.Address) || target.SessionId.Length is 0 or > 20 || target.PushToken.Length != BlockSession.PushTokenBytes)
            {
                throw Invalid("each next target needs a host:port address, a session id and a 16-byte push token");
            }
        }
    }

    /// <summary>The push that carries <paramref name="hidden"/>, the output of <paramref name="step"/>, to its first next target.</summary>
    private static PushRequest PushOf(InferenceStep step, WireTensor hidden)
    {
        var target = step.Next[0];
        var next = new InferenceStep { Hidden = hidden, Positions = step.Positions, StepId = target.StepId };
        next.Next.Add(step.Next.Skip(1));
        return new PushRequest { SessionId = target.SessionId, PushToken = target.PushToken, Step = next };
    }

    /// <summary>
    /// Sends the outputs of a batched forward on: the steps that name a next target, grouped by its server,
    /// one message per server. Sets each step's <see cref="StepWork.Pushed"/>; called on the tensor thread
    /// before the steps complete, and returns without waiting for the network.
    /// </summary>
    private void PushBatch(List<StepWork> works, WireTensor[] outputs)
    {
        var bound = Enumerable.Range(0, works.Count).Where(i => works[i].Step.Next.Count > 0);
        foreach (var group in bound.GroupBy(i => works[i].Step.Next[0].Address))
        {
            foreach (var rows in group.Chunk(MaxPushBatch))
            {
                var pushes = rows.Select(i => PushOf(works[i].Step, outputs[i])).ToList();
                var sent = Task.Run(() => PushAsync(group.Key, pushes));
                foreach (var i in rows)
                {
                    works[i].Pushed = sent;
                }
            }
        }
    }

    /// <summary>Writes <paramref name="pushes"/> to <paramref name="address"/> as one message; returns why it could not, or null.</summary>
    private async Task<string?> PushAsync(string address, List<PushRequest> pushes)
    {
        var message = new PushBatch();
        message.Steps.Add(pushes);
        try
        {
            await PushStreamTo(address).WriteAsync(message, _options.PushTimeout).ConfigureAwait(false);
            Interlocked.Add(ref _stepsPushed, pushes.Count);
            Interlocked.Increment(ref _pushMessages);
            return null;
        }
        catch (Exception e) when (e is RpcException or IOException or HttpRequestException or OperationCanceledException or InvalidOperationException or ObjectDisposedException)
        {
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
