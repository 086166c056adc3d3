using Grpc.Core;
using Pollen.Swarm.Identity;
using Pollen.Swarm.Protos;
using Pollen.Swarm.Records;

namespace Pollen.Swarm.Dht;

public sealed partial class DhtNode
{
    /// <summary>Most entries one Store request may carry.</summary>
    public const int MaxEntriesPerStore = 64;

    internal PingResponse HandlePing(PingRequest request, ServerCallContext context)
    {
        LearnSender(request.Sender, context);
        return new PingResponse { Responder = _selfInfo };
    }

    internal FindNodeResponse HandleFindNode(FindNodeRequest request, ServerCallContext context)
    {
        var target = ParseId(request.Target, "target");
        var sender = LearnSender(request.Sender, context);
        var response = new FindNodeResponse { Responder = _selfInfo };
        response.Closest.AddRange(Routing.Closest(target, K, c => c.PeerId != sender).Select(ToInfo));
        return response;
    }

    internal FindValueResponse HandleFindValue(FindValueRequest request, ServerCallContext context)
    {
        var key = ParseId(request.Key, "key");
        var sender = LearnSender(request.Sender, context);
        var response = new FindValueResponse { Responder = _selfInfo };
        response.Entries.AddRange(Records.Get(key).Select(ToProto));
        response.Closest.AddRange(Routing.Closest(key, K, c => c.PeerId != sender).Select(ToInfo));
        return response;
    }

    internal StoreResponse HandleStore(StoreRequest request, ServerCallContext context)
    {
        var key = ParseId(request.Key, "key");
        if (request.Entries.Count > MaxEntriesPerStore)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"a Store request carries at most {MaxEntriesPerStore} entries, got {request.Entries.Count}"));
        }
        LearnSender(request.Sender, context);
        var response = new StoreResponse { Responder = _selfInfo };
        foreach (var wire in request.Entries)
        {
            var entry = FromProto(wire);
            var outcome = entry is null
                ? new StoreOutcome(RecordError.Expired, $"expiration {wire.ExpirationUnixMs} of subkey '{wire.Subkey}' is not a valid time")
                : Records.Store(key, entry);
            if (!outcome.IsAccepted)
            {
                Log.EntryRefused(_logger, wire.Subkey, outcome.Message);
            }
            response.Results.Add(new StoreResult { Subkey = wire.Subkey, Error = (StoreError)(int)outcome.Error, Message = outcome.Message });
        }
        return response;
    }

    private static DhtId ParseId(Google.Protobuf.ByteString bytes, string field) =>
        DhtId.TryFromBytes(bytes.Span, out var id)
            ? id
            : throw new RpcException(new Status(StatusCode.InvalidArgument, $"{field} must be {DhtId.Size} bytes, got {bytes.Length}"));

    /// <summary>Adds a caller that serves (has an address) to the routing table; a caller whose id is not
    /// the hash of its key is refused, since it is either broken or impersonating someone.</summary>
    private PeerId? LearnSender(PeerInfo? sender, ServerCallContext context)
    {
        if (sender is null || (sender.PeerId.IsEmpty && sender.PublicKey.IsEmpty))
        {
            return null; // a client that serves nothing
        }
        var contact = ToContact(sender);
        if (contact is null)
        {
            if (sender.PublicKey.Length == 32 && sender.PeerId.Length == DhtId.Size && string.IsNullOrEmpty(sender.Address)
                && PeerId.FromPublicKey(sender.PublicKey.Span).Id == DhtId.FromBytes(sender.PeerId.Span))
            {
                return PeerId.FromPublicKey(sender.PublicKey.Span); // consistent, but not dialable
            }
            Log.BadSender(_logger, context.Peer);
            throw new RpcException(new Status(StatusCode.InvalidArgument, "sender: peer_id must be SHA-256 of the 32-byte public_key, and address host:port"));
        }
        Learn(contact);
        return contact.PeerId;
    }
}
