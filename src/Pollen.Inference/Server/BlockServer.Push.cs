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
/// A push is accepted only for an open session, with the secret token the session's client was given at
/// open, and with the next step id in order; anything else is refused (a wrong id also ends the session,
/// so its client learns at once). The targets in a step are untrusted input like any other: their number
/// is capped and each must be a well-formed address with a token of the right size. A push that cannot be
/// written is reported in the reply (<c>push_error</c>), so the client carries that step itself.
/// </para>
/// </remarks>
public sealed partial class BlockServer
{
    /// <summary>Most next targets one step may name (a route longer than this is not pushed).</summary>
    internal const int MaxPushTargets = 64;

    private readonly Lock _pushLock = new();
    private PeerChannelPool? _pushChannels;
    private long _stepsPushed;
    private long _pushesReceived;

    /// <summary>Step outputs this server pushed to the next server of a route.</summary>
    public long StepsPushed => Interlocked.Read(ref _stepsPushed);

    /// <summary>Steps that arrived pushed by a previous server.</summary>
    public long PushesReceived => Interlocked.Read(ref _pushesReceived);

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
            var hidden = await StepAsync(session, step).WaitAsync(cancellationToken).ConfigureAwait(false);
            session.LastStepId = step.StepId;
            var pushError = step.Next.Count > 0 ? await PushAsync(session, step, hidden, cancellationToken).ConfigureAwait(false) : null;
            var reply = session.Reply ?? throw new RpcException(new Status(StatusCode.NotFound, "the session has no open stream"));
            await reply(new InferenceReply { Step = new StepResult { Hidden = hidden, StepId = step.StepId, PushError = pushError ?? "" } }, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            session.StepGate.Release();
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

    /// <summary>Writes the step's output into the first next target's session; returns why it could not, or null.</summary>
    private async Task<string?> PushAsync(BlockSession session, InferenceStep step, WireTensor hidden, CancellationToken cancellationToken)
    {
        var target = step.Next[0];
        try
        {
            var link = session.Downstream;
            if (link is null || link.Address != target.Address || link.SessionId != target.SessionId)
            {
                link?.Close();
                session.Downstream = null;
                link = session.Downstream = PushLink.Open(PushChannels().Get(target.Address), target.Address, target.SessionId);
            }
            var next = new InferenceStep { Hidden = hidden, Positions = step.Positions, StepId = target.StepId };
            next.Next.Add(step.Next.Skip(1));
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(_options.PushTimeout);
            await link.Call.RequestStream.WriteAsync(new PushRequest { SessionId = target.SessionId, PushToken = target.PushToken, Step = next }, timeout.Token).ConfigureAwait(false);
            Interlocked.Increment(ref _stepsPushed);
            return null;
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested
            && e is RpcException or IOException or HttpRequestException or OperationCanceledException or InvalidOperationException or ObjectDisposedException)
        {
            session.Downstream?.Close();
            session.Downstream = null;
            Log.PushFailed(_logger, session.Id, target.Address, e.Message);
            return $"could not push to {target.Address}: {e.Message}";
        }
    }

    private PeerChannelPool PushChannels()
    {
        lock (_pushLock)
        {
            return _pushChannels ??= new PeerChannelPool(_options.MaxMessageBytes + (64 << 10), _options.PushTimeout, 64);
        }
    }

    private void DisposePushChannels()
    {
        lock (_pushLock)
        {
            _pushChannels?.Dispose();
            _pushChannels = null;
        }
    }
}

/// <summary>An open push stream from one of this server's sessions to a session on the next server.</summary>
internal sealed class PushLink
{
    private PushLink(string address, string sessionId, AsyncClientStreamingCall<PushRequest, PushReply> call)
    {
        Address = address;
        SessionId = sessionId;
        Call = call;
    }

    internal string Address { get; }

    internal string SessionId { get; }

    internal AsyncClientStreamingCall<PushRequest, PushReply> Call { get; }

    internal static PushLink Open(Grpc.Net.Client.GrpcChannel channel, string address, string sessionId) =>
        new(address, sessionId, new Blocks.BlocksClient(channel).Push());

    /// <summary>Ends the stream in the background (the next server may be gone; nobody waits for it).</summary>
    internal void Close() => _ = CloseAsync();

    private async Task CloseAsync()
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await Call.RequestStream.CompleteAsync().WaitAsync(timeout.Token).ConfigureAwait(false);
            await Call.ResponseAsync.WaitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is RpcException or IOException or OperationCanceledException or InvalidOperationException or ObjectDisposedException or TimeoutException)
        {
            // the next server is gone or refused: nothing to close gracefully
        }
        finally
        {
            Call.Dispose();
        }
    }
}
