using Grpc.Core;
using Microsoft.Extensions.Logging;
using Pollen.Inference.Protos;

namespace Pollen.Inference.Server;

/// <summary>
/// The gRPC face of a <see cref="BlockServer"/>. One inference stream is one session: it is opened by
/// the first message, and closed (its cache freed) by a close message, the end of the stream, a broken
/// connection or the idle timeout — whichever comes first, so a client that vanishes never leaks a
/// session. A refused or failed step ends the stream and with it the session: the client cannot know
/// what state a half-applied step left, so it reopens (here or elsewhere) and replays. Errors other than
/// <see cref="RpcException"/> become INTERNAL with a fixed message; details go to the log only.
/// </summary>
internal sealed class BlocksService(BlockServing.Slot slot, ILogger<BlocksService> logger) : Blocks.BlocksBase
{
    // one instance per call: a call keeps the server it started with even if the slot changes
    private readonly BlockServer _server = slot.Server ?? throw new RpcException(new Status(StatusCode.Unavailable, "this server is not serving blocks (loading or stopping)"));

    public override Task<InfoReply> Info(InfoRequest request, ServerCallContext context) => Task.FromResult(_server.Info());

    public override async Task<ForwardReply> Forward(ForwardRequest request, ServerCallContext context) =>
        new() { Hidden = await GuardAsync(_server.ForwardAsync, request).ConfigureAwait(false) };

    public override async Task<BackwardReply> Backward(BackwardRequest request, ServerCallContext context) =>
        new() { GradInput = await GuardAsync(_server.BackwardAsync, request).ConfigureAwait(false) };

    public override async Task Inference(IAsyncStreamReader<InferenceRequest> requestStream, IServerStreamWriter<InferenceReply> responseStream, ServerCallContext context)
    {
        using var expired = new CancellationTokenSource();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, expired.Token);
        BlockSession? session = null;
        try
        {
            while (await requestStream.MoveNext(linked.Token).ConfigureAwait(false))
            {
                var request = requestStream.Current;
                switch (request.KindCase)
                {
                    case InferenceRequest.KindOneofCase.Open:
                        if (session is not null)
                        {
                            throw new RpcException(new Status(StatusCode.FailedPrecondition, "this stream already has a session; open another stream for another session"));
                        }
                        session = _server.OpenSession(request.Open, expired);
                        await responseStream.WriteAsync(new InferenceReply
                        {
                            Opened = new SessionOpened
                            {
                                SessionId = session.Id.ToString(System.Globalization.CultureInfo.InvariantCulture),
                                FreeCacheTokens = _server.FreeCacheTokens,
                                PushToken = Google.Protobuf.ByteString.CopyFrom(session.PushToken),
                                PushPort = (uint)_server.PushPort,
                                AnswerToken = Google.Protobuf.ByteString.CopyFrom(session.AnswerToken),
                            },
                        }, linked.Token).ConfigureAwait(false);
                        // pushed steps answer on this stream too (serialized with the client's by the session's gate)
                        session.Reply = reply => responseStream.WriteAsync(reply, linked.Token);
                        break;
                    case InferenceRequest.KindOneofCase.Step:
                        if (session is null)
                        {
                            throw new RpcException(new Status(StatusCode.FailedPrecondition, "unknown session: send open before the first step"));
                        }
                        await _server.RunStepAndReplyAsync(session, request.Step, pushToken: null, linked.Token).ConfigureAwait(false);
                        break;
                    case InferenceRequest.KindOneofCase.Sync:
                        if (session is null)
                        {
                            throw new RpcException(new Status(StatusCode.FailedPrecondition, "unknown session: send open before a sync"));
                        }
                        await _server.SyncAsync(session, request.Sync, linked.Token).ConfigureAwait(false);
                        break;
                    case InferenceRequest.KindOneofCase.Close:
                        return;
                    default:
                        throw BlockServer.Invalid("empty request: set open, step, sync or close");
                }
            }
        }
        catch (OperationCanceledException) when (session?.Failure is { } failure)
        {
            throw failure;
        }
        catch (OperationCanceledException) when (session?.Expired == true)
        {
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"the session was idle for {_server.Options.IdleTimeout} and was closed; open a new one"));
        }
        catch (Exception e) when (e is not RpcException and not OperationCanceledException)
        {
            throw Internal(e);
        }
        finally
        {
            if (session is not null)
            {
                _server.CloseSession(session);
            }
        }
    }

    public override async Task<PushReply> Push(IAsyncStreamReader<PushBatch> requestStream, ServerCallContext context)
    {
        // the steps of a message run at once (the queue batches them); the next message is read meanwhile,
        // up to a bound, so sessions in other phases of their routes do not wait behind them
        var running = new List<Task>();
        try
        {
            while (await requestStream.MoveNext(context.CancellationToken).ConfigureAwait(false))
            {
                _server.StartPushed(requestStream.Current, running);
                while (running.Count > BlockServer.MaxPushesInFlight)
                {
                    running.Remove(await Task.WhenAny(running).ConfigureAwait(false));
                }
            }
            return new PushReply();
        }
        catch (RpcException e)
        {
            Log.PushRefused(logger, e.Status.Detail);
            throw;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw Internal(e);
        }
        finally
        {
            await Task.WhenAll(running).ConfigureAwait(false);
        }
    }

    private async Task<T> GuardAsync<TRequest, T>(Func<TRequest, Task<T>> call, TRequest request)
    {
        try
        {
            return await call(request).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw Internal(e);
        }
    }

    private RpcException Internal(Exception e)
    {
        Log.UnexpectedError(logger, e);
        return new RpcException(new Status(StatusCode.Internal, "the server failed to run the blocks; see its log"));
    }
}
