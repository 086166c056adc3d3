using Grpc.Core;
using Pollen.Swarm.Dht;
using Pollen.Swarm.Protos;

namespace Pollen.Swarm.Transport;

/// <summary>The gRPC face of a <see cref="DhtNode"/>: decoding and size caps are gRPC's, the rest is the node's.</summary>
internal sealed class DhtRpcService : Protos.Dht.DhtBase
{
    private readonly DhtNode _node;

    public DhtRpcService(DhtNode node) => _node = node;

    public override Task<PingResponse> Ping(PingRequest request, ServerCallContext context) =>
        Task.FromResult(_node.HandlePing(request, context));

    public override Task<FindNodeResponse> FindNode(FindNodeRequest request, ServerCallContext context) =>
        Task.FromResult(_node.HandleFindNode(request, context));

    public override Task<FindValueResponse> FindValue(FindValueRequest request, ServerCallContext context) =>
        Task.FromResult(_node.HandleFindValue(request, context));

    public override Task<StoreResponse> Store(StoreRequest request, ServerCallContext context) =>
        Task.FromResult(_node.HandleStore(request, context));
}
