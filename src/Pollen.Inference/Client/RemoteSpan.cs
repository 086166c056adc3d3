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
/// unusable; the caller bans the server and replays on another.
/// </remarks>
public sealed class RemoteSpan : IAsyncDisposable
{
    private readonly AsyncDuplexStreamingCall<InferenceRequest, InferenceReply> _call;
    private readonly TimeSpan _stepTimeout;
    private ulong _nextStep;

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
            var reply = await span.ExchangeAsync(new InferenceRequest
            {
                Open = new OpenSession { Blocks = new BlockRange { StartBlock = start, EndBlock = end }, MaxLength = maxLength, BatchSize = batchSize },
            }, cancellationToken).ConfigureAwait(false);
            if (reply.KindCase != InferenceReply.KindOneofCase.Opened)
            {
                throw new RpcException(new Status(StatusCode.Internal, $"server {server} answered open with {reply.KindCase}"));
            }
            span.SessionId = reply.Opened.SessionId;
            span.PushToken = reply.Opened.PushToken;
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

    /// <summary>Whether steps can be pushed into this session by another server.</summary>
    public bool TakesPushes => PushToken.Length > 0 && SessionId.Length > 0;

    /// <summary>The step_id the session's next step carries, whoever sends it.</summary>
    public ulong NextStepId => _nextStep + 1;

    /// <summary>Runs hidden states (B, T, C) at positions (B, T) through the span; returns the output hidden states.</summary>
    public async Task<WireTensor> StepAsync(WireTensor hidden, WireTensor positions, CancellationToken cancellationToken)
    {
        var id = ++_nextStep;
        var reply = await ExchangeAsync(new InferenceRequest { Step = new InferenceStep { Hidden = hidden, Positions = positions, StepId = id } }, cancellationToken).ConfigureAwait(false);
        return CheckReply(reply, id, hidden);
    }

    /// <summary>
    /// Sends the next step without waiting for its reply, naming the later sessions of the route its output
    /// is pushed to (<see cref="ReadStepAsync"/> of each span then collects the replies in order).
    /// </summary>
    public async Task SendStepAsync(WireTensor hidden, WireTensor positions, IEnumerable<PushTarget> next, CancellationToken cancellationToken)
    {
        var step = new InferenceStep { Hidden = hidden, Positions = positions, StepId = NextStepId };
        step.Next.Add(next);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_stepTimeout);
        try
        {
            await _call.RequestStream.WriteAsync(new InferenceRequest { Step = step }, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"server {Server} did not take a step within {_stepTimeout}"));
        }
    }

    /// <summary>
    /// Reads the reply to the next step, which was sent by <see cref="SendStepAsync"/> or pushed by the previous
    /// server; <paramref name="input"/> is what the step's input is known to be (for the shape check). Returns the
    /// output and, when the step named next targets, why its output could not be pushed on (null if it was).
    /// </summary>
    public async Task<(WireTensor Hidden, string? PushError)> ReadStepAsync(WireTensor input, CancellationToken cancellationToken)
    {
        var id = NextStepId;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_stepTimeout);
        try
        {
            if (!await _call.ResponseStream.MoveNext(timeout.Token).ConfigureAwait(false))
            {
                throw new RpcException(new Status(StatusCode.Unavailable, $"server {Server} ended the session"));
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"server {Server} did not answer within {_stepTimeout}"));
        }
        var reply = _call.ResponseStream.Current;
        var hidden = CheckReply(reply, id, input);
        _nextStep = id;
        return (hidden, reply.Step.PushError.Length > 0 ? reply.Step.PushError : null);
    }

    /// <summary>This session as the target of a push carrying its next step.</summary>
    public PushTarget AsPushTarget() => new() { Address = Server.Address, SessionId = SessionId, PushToken = PushToken, StepId = NextStepId };

    /// <summary>The reply's hidden states, if it answers step <paramref name="id"/> with a tensor shaped like the input, of exact size and finite.</summary>
    private WireTensor CheckReply(InferenceReply reply, ulong id, WireTensor hidden)
    {
        if (reply.KindCase != InferenceReply.KindOneofCase.Step || reply.Step.StepId != id || reply.Step.Hidden is null
            || !reply.Step.Hidden.Shape.SequenceEqual(hidden.Shape) || reply.Step.Hidden.Dtype != hidden.Dtype)
        {
            throw new RpcException(new Status(StatusCode.DataLoss, $"server {Server} answered step {id} with a reply that does not match it"));
        }
        // a server is not trusted with what it returns either: exact size, finite values
        try
        {
            Pollen.Swarm.Tensors.TensorCodec.Validate(reply.Step.Hidden, long.MaxValue);
        }
        catch (Pollen.Swarm.Tensors.TensorFormatException e)
        {
            throw new RpcException(new Status(StatusCode.DataLoss, $"server {Server} answered step {id} with a malformed tensor: {e.Message}"));
        }
        if (!Wire.TensorWire.AllFinite(reply.Step.Hidden))
        {
            throw new RpcException(new Status(StatusCode.DataLoss, $"server {Server} answered step {id} with NaN or infinite values"));
        }
        return reply.Step.Hidden;
    }

    /// <summary>
    /// Runs several steps pipelined: all requests are written before the replies are read, so replaying a
    /// session's history to a new server costs about one round trip instead of one per step. The
    /// deadline covers the whole batch, one step timeout per 16 steps (at least one).
    /// </summary>
    public async Task<IReadOnlyList<WireTensor>> StepManyAsync(IReadOnlyList<(WireTensor Hidden, WireTensor Positions)> steps, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_stepTimeout * Math.Max(1, (steps.Count + 15) / 16));
        var first = _nextStep + 1;
        Task? writing = null;
        try
        {
            writing = Task.Run(async () =>
            {
                foreach (var (hidden, positions) in steps)
                {
                    await _call.RequestStream.WriteAsync(new InferenceRequest { Step = new InferenceStep { Hidden = hidden, Positions = positions, StepId = ++_nextStep } }, timeout.Token)
                        .ConfigureAwait(false);
                }
            }, timeout.Token);
            var outputs = new List<WireTensor>(steps.Count);
            for (var i = 0; i < steps.Count; i++)
            {
                if (!await _call.ResponseStream.MoveNext(timeout.Token).ConfigureAwait(false))
                {
                    throw new RpcException(new Status(StatusCode.Unavailable, $"server {Server} ended the session"));
                }
                outputs.Add(CheckReply(_call.ResponseStream.Current, first + (ulong)i, steps[i].Hidden));
            }
            await writing.ConfigureAwait(false);
            return outputs;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"server {Server} did not answer {steps.Count} steps in time"));
        }
        finally
        {
            if (writing is { IsCompleted: false })
            {
                // a failed read leaves the writer blocked on the stream: stop it before its token goes away
                await timeout.CancelAsync().ConfigureAwait(false);
                await writing.ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
            }
        }
    }

    private async Task<InferenceReply> ExchangeAsync(InferenceRequest request, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_stepTimeout);
        try
        {
            await _call.RequestStream.WriteAsync(request, timeout.Token).ConfigureAwait(false);
            if (!await _call.ResponseStream.MoveNext(timeout.Token).ConfigureAwait(false))
            {
                throw new RpcException(new Status(StatusCode.Unavailable, $"server {Server} ended the session"));
            }
            return _call.ResponseStream.Current;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"server {Server} did not answer within {_stepTimeout}"));
        }
    }

    /// <summary>Closes the session (best effort) and the stream.</summary>
    public async ValueTask DisposeAsync()
    {
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
    }
}
