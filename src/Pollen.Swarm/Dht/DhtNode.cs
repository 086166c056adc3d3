using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Pollen.Swarm.Identity;
using Pollen.Swarm.Protos;
using Pollen.Swarm.Records;
using Pollen.Swarm.Transport;

namespace Pollen.Swarm.Dht;

/// <summary>
/// A Kademlia node: the routing table, the records this node holds, outgoing calls to peers, and the
/// handlers for incoming ones. Split by concern: <c>DhtNode.Lookup.cs</c> (iterative lookups),
/// <c>DhtNode.Storage.cs</c> (put/get), <c>DhtNode.Rpc.cs</c> (serving), <c>DhtNode.Maintenance.cs</c>
/// (bucket refresh, republish, expiry).
/// </summary>
/// <remarks>
/// Every outgoing call has a deadline (<see cref="SwarmOptions.RpcTimeout"/>, wall clock, since gRPC
/// deadlines are absolute times); a failure bans the peer's address for a growing time and removes it
/// from the routing table, and it is re-added only when it answers or calls again. Peers are learned
/// only from their own messages (as sender or responder), never from third-party lists, so a liar can
/// point a lookup at wrong peers but cannot plant entries in our table.
/// </remarks>
public sealed partial class DhtNode : IAsyncDisposable
{
    private readonly SwarmOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly PeerChannelPool _channels;
    private readonly CancellationTokenSource _stopping = new();
    private readonly HashSet<PeerId> _pinging = [];
    private readonly Lock _pingingLock = new();
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> _lastFailure = new(StringComparer.Ordinal);
    private PeerInfo _selfInfo;
    private long _messagesSent;

    /// <summary>Creates a node; it serves once a host maps <see cref="DhtRpcService"/> to it and calls <see cref="SetAddress"/>.</summary>
    public DhtNode(NodeIdentity identity, SwarmOptions options, TimeProvider time, ILogger<DhtNode> logger)
    {
        options.Validate();
        Identity = identity;
        _options = options;
        _time = time;
        _logger = logger;
        Routing = new RoutingTable(identity.PeerId.Id, options.BucketSize);
        Records = new RecordStore(time, options.Records);
        Bans = new PeerBans(time, options.BanBase, options.BanMax);
        _channels = new PeerChannelPool(options.MaxMessageBytes, options.ConnectTimeout, options.MaxConnections);
        _selfInfo = new PeerInfo { PeerId = ByteString.CopyFrom(identity.PeerId.ToByteArray()), PublicKey = ByteString.CopyFrom(identity.PublicKey) };
    }

    /// <summary>This node's key pair and peer id.</summary>
    public NodeIdentity Identity { get; }

    /// <summary>This node's peer id (its DHT node id).</summary>
    public PeerId PeerId => Identity.PeerId;

    /// <summary>"host:port" others dial; empty until <see cref="SetAddress"/>.</summary>
    public string Address => _selfInfo.Address;

    /// <summary>The k-buckets.</summary>
    public RoutingTable Routing { get; }

    /// <summary>Records this node holds for the swarm.</summary>
    public RecordStore Records { get; }

    /// <summary>Peers temporarily banned after failed calls.</summary>
    public PeerBans Bans { get; }

    /// <summary>k: bucket size and replication factor.</summary>
    public int K => _options.BucketSize;

    /// <summary>Number of calls this node has made to peers.</summary>
    public long MessagesSent => Interlocked.Read(ref _messagesSent);

    /// <summary>Sets the announce address once the swarm port is bound.</summary>
    public void SetAddress(string address)
    {
        if (!PeerAddress.IsValid(address))
        {
            throw new ArgumentException($"'{address}' is not host:port", nameof(address));
        }
        _selfInfo = new PeerInfo { PeerId = _selfInfo.PeerId, PublicKey = _selfInfo.PublicKey, Address = address };
    }

    /// <summary>Stops background work and closes connections.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_maintenance is not null)
        {
            try
            {
                await _maintenance.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }
        _channels.Dispose();
        _stopping.Dispose();
    }

    internal static PeerInfo ToInfo(Contact contact) => new()
    {
        PeerId = ByteString.CopyFrom(contact.PeerId.ToByteArray()),
        PublicKey = ByteString.CopyFrom(contact.PublicKey),
        Address = contact.Address,
    };

    /// <summary>A contact from a peer's self-description, or null when it is inconsistent (id is not the
    /// hash of the key, bad lengths, no dialable address).</summary>
    internal static Contact? ToContact(PeerInfo? info)
    {
        if (info is null || info.PublicKey.Length != 32 || !DhtId.TryFromBytes(info.PeerId.Span, out var id) || !PeerAddress.IsValid(info.Address))
        {
            return null;
        }
        var publicKey = info.PublicKey.ToByteArray();
        var peer = PeerId.FromPublicKey(publicKey);
        return peer.Id == id ? new Contact(peer, publicKey, info.Address) : null;
    }

    /// <summary>Notes that <paramref name="contact"/> is alive; pings the oldest contact of a full bucket.</summary>
    internal void Learn(Contact contact)
    {
        var touched = Routing.Touch(contact, out var oldest);
        if (touched is (TouchResult.BucketFull or TouchResult.AddressConflict) && oldest is not null)
        {
            lock (_pingingLock)
            {
                if (!_pinging.Add(oldest.PeerId))
                {
                    return;
                }
            }
            _ = PingBeforeEvictAsync(oldest);
        }
    }

    private async Task PingBeforeEvictAsync(Contact oldest)
    {
        try
        {
            // a live oldest contact is touched by CallAsync; one that is dead, or that is no longer the
            // peer answering at its address, is removed, which promotes the newest replacement
            var answered = await PingAsync(oldest.Address, _stopping.Token).ConfigureAwait(false);
            if (answered?.PeerId != oldest.PeerId)
            {
                Routing.Remove(oldest.PeerId);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or RpcException)
        {
            // shutting down: nothing to evict
        }
        finally
        {
            lock (_pingingLock)
            {
                _pinging.Remove(oldest.PeerId);
            }
        }
    }

    /// <summary>Pings "host:port"; returns the peer that answered, or null when it did not.</summary>
    public async Task<Contact?> PingAsync(string address, CancellationToken cancellationToken)
    {
        var response = await CallAsync(address, null, "Ping", (client, options) => client.PingAsync(new PingRequest { Sender = _selfInfo }, options), r => r.Responder, cancellationToken).ConfigureAwait(false);
        return response is null ? null : ToContact(response.Responder);
    }

    /// <summary>
    /// Calls a peer with a deadline. On success the responder is learned (if its self-description is
    /// consistent and, when <paramref name="expected"/> is given, it is that peer); on failure the address
    /// is banned and the expected peer removed from the routing table. Returns null on any failure.
    /// </summary>
    private async Task<TResponse?> CallAsync<TResponse>(
        string address,
        Contact? expected,
        string method,
        Func<Protos.Dht.DhtClient, CallOptions, AsyncUnaryCall<TResponse>> call,
        Func<TResponse, PeerInfo?> responder,
        CancellationToken cancellationToken)
        where TResponse : class
    {
        Interlocked.Increment(ref _messagesSent);
        try
        {
            var client = new Protos.Dht.DhtClient(_channels.Get(address));
            var options = new CallOptions(deadline: DateTime.UtcNow + _options.RpcTimeout, cancellationToken: cancellationToken);
            var response = await call(client, options).ResponseAsync.ConfigureAwait(false);
            var contact = ToContact(responder(response));
            if (contact is null || (expected is not null && contact.PeerId != expected.PeerId))
            {
                // someone else now answers at this address (a restart with a new key), or it lies about itself
                Fail(address, expected, method, "wrong or inconsistent responder");
                return null;
            }
            Bans.RecordSuccess(address);
            _lastFailure.TryRemove(address, out _);
            Learn(contact with { Address = address });
            return response;
        }
        catch (RpcException e) when (!cancellationToken.IsCancellationRequested)
        {
            Fail(address, expected, method, string.IsNullOrEmpty(e.Status.Detail) ? e.StatusCode.ToString() : $"{e.StatusCode}: {e.Status.Detail}");
            return null;
        }
        catch (Exception e) when (e is not OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            // connection refused or reset, a channel closed by the pool, a response that does not parse
            Fail(address, expected, method, $"{e.GetType().Name}: {e.Message}");
            return null;
        }
    }

    /// <summary>Why the last call to <paramref name="address"/> failed, or null when none has.</summary>
    internal string? LastFailure(string address) => _lastFailure.GetValueOrDefault(address);

    private void Fail(string address, Contact? expected, string method, string status)
    {
        if (_lastFailure.Count >= 4096)
        {
            _lastFailure.Clear(); // only recent failures are worth naming; dead addresses must not pile up
        }
        _lastFailure[address] = status;
        var ban = Bans.RecordFailure(address);
        if (expected is not null)
        {
            Routing.Remove(expected.PeerId);
        }
        else
        {
            foreach (var c in Routing.All().Where(c => c.Address == address))
            {
                Routing.Remove(c.PeerId);
            }
        }
        Log.CallFailed(_logger, method, address, status, ban);
    }
}
