using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Pollen.Swarm;
using Pollen.Training.Protos;

namespace Pollen.Training.Collaborative.Network;

/// <summary>The gRPC face of an <see cref="AveragingHub"/>, served on the swarm port.</summary>
internal sealed class AveragingService(AveragingHub hub) : Averaging.AveragingBase
{
    public override async Task<PartReply> PutPart(PartRequest request, ServerCallContext context)
    {
        using var wait = WaitWithin(context);
        await hub.PutPartAsync(request, wait.Token).ConfigureAwait(false);
        return new PartReply();
    }

    public override async Task<ReducedReply> GetReduced(ReducedRequest request, ServerCallContext context)
    {
        using var wait = WaitWithin(context);
        var reply = await hub.GetReducedAsync(request, wait.Token).ConfigureAwait(false);
        hub.CountServed(reply.Payload.Length);
        return reply;
    }

    public override async Task GetState(StateRequest request, IServerStreamWriter<StateChunk> responseStream, ServerCallContext context)
    {
        using var state = hub.TakeSnapshot(request.RunId)
            ?? throw new RpcException(new Status(StatusCode.NotFound, $"this peer does not train run '{request.RunId}'"));
        var parameters = DeltaCodec.Encode(state.Parameters, DeltaCompression.F32);
        var momentum = state.Momentum is null ? [] : DeltaCodec.Encode(state.Momentum, DeltaCompression.F32);
        await responseStream.WriteAsync(new StateChunk
        {
            Header = new StateHeader
            {
                Rounds = state.Round,
                OuterSteps = state.OuterSteps,
                Elements = state.Parameters.numel(),
                Layout = state.Layout,
                ParameterHash = StateTransfer.Hash(parameters),
                HasMomentum = state.Momentum is not null,
            },
        }, context.CancellationToken).ConfigureAwait(false);
        foreach (var bytes in new[] { parameters, momentum })
        {
            for (var offset = 0; offset < bytes.Length; offset += StateTransfer.ChunkBytes)
            {
                var data = ByteString.CopyFrom(bytes, offset, Math.Min(StateTransfer.ChunkBytes, bytes.Length - offset));
                await responseStream.WriteAsync(new StateChunk { Data = data }, context.CancellationToken).ConfigureAwait(false);
                hub.CountServed(data.Length);
            }
        }
    }

    /// <summary>Waits end a little before the caller's deadline, so the caller still hears why.</summary>
    private static CancellationTokenSource WaitWithin(ServerCallContext context)
    {
        var wait = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken);
        var left = context.Deadline - DateTime.UtcNow;
        var limit = left > TimeSpan.FromMinutes(10) ? TimeSpan.FromMinutes(10) : left * 0.9;
        wait.CancelAfter(limit > TimeSpan.Zero ? limit : TimeSpan.Zero);
        return wait;
    }

    /// <summary>The averaging service for <see cref="SwarmNode.StartAsync"/>, with messages up to <paramref name="maxMessageBytes"/>.</summary>
    public static SwarmServices Services(AveragingHub hub, int maxMessageBytes) => new()
    {
        Register = services =>
        {
            services.AddSingleton(hub);
            services.AddGrpc().AddServiceOptions<AveragingService>(o =>
            {
                o.MaxReceiveMessageSize = maxMessageBytes;
                o.MaxSendMessageSize = maxMessageBytes;
            });
        },
        Map = endpoints => endpoints.MapGrpcService<AveragingService>(),
    };
}

/// <summary>Serving averaging on a swarm node.</summary>
public static class AveragingServing
{
    /// <summary>Largest part or reduced slice, in bytes (64 MiB: a 48M-parameter model's f32 delta split over 3 peers).</summary>
    public const int DefaultMaxMessageBytes = 64 << 20;

    /// <summary>The services to pass to <see cref="SwarmNode.StartAsync"/>.</summary>
    public static SwarmServices Services(AveragingHub hub, int maxMessageBytes = DefaultMaxMessageBytes) => AveragingService.Services(hub, maxMessageBytes);
}
