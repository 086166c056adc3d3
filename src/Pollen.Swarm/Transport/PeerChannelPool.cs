using Grpc.Net.Client;

namespace Pollen.Swarm.Transport;

/// <summary>
/// One gRPC channel (HTTP/2 cleartext, one TCP connection) per peer address, created on first use and
/// shared by every call, so a peer costs one connection however many lookups go through it.
/// </summary>
/// <remarks>
/// The pool holds at most <c>maxChannels</c> channels and closes the least recently used one beyond
/// that: lookups touch new peers all the time, and without a cap a long-lived node would keep a socket
/// to every peer it ever asked (until the idle timeout) and run into the file-descriptor limit. A call
/// still running on an evicted channel fails and counts as a failed call, which is rare when the cap is
/// well above k·α. The connect timeout is short because a peer that does not accept within it is
/// treated as dead anyway.
/// </remarks>
public sealed class PeerChannelPool : IDisposable
{
    private readonly Dictionary<string, LinkedListNode<(string Address, GrpcChannel Channel)>> _channels = [];
    private readonly LinkedList<(string Address, GrpcChannel Channel)> _lru = new();
    private readonly Lock _lock = new();
    private readonly int _maxMessageBytes;
    private readonly TimeSpan _connectTimeout;
    private readonly int _maxChannels;

    /// <summary>Creates an empty pool.</summary>
    public PeerChannelPool(int maxMessageBytes, TimeSpan connectTimeout, int maxChannels)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxChannels, 1);
        _maxMessageBytes = maxMessageBytes;
        _connectTimeout = connectTimeout;
        _maxChannels = maxChannels;
    }

    /// <summary>Number of open channels.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _channels.Count;
            }
        }
    }

    /// <summary>The channel for "host:port", created on first use.</summary>
    public GrpcChannel Get(string address)
    {
        GrpcChannel? evicted = null;
        GrpcChannel channel;
        lock (_lock)
        {
            if (_channels.TryGetValue(address, out var node))
            {
                _lru.Remove(node);
                _lru.AddFirst(node);
                return node.Value.Channel;
            }
            channel = Create(address);
            _channels[address] = _lru.AddFirst((address, channel));
            if (_channels.Count > _maxChannels)
            {
                var last = _lru.Last!;
                _lru.RemoveLast();
                _channels.Remove(last.Value.Address);
                evicted = last.Value.Channel;
            }
        }
        evicted?.Dispose();
        return channel;
    }

    private GrpcChannel Create(string address) =>
        GrpcChannel.ForAddress("http://" + address, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                ConnectTimeout = _connectTimeout,
                PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
                // DHT messages are small; one connection per peer is plenty
                EnableMultipleHttp2Connections = false,
            },
            MaxReceiveMessageSize = _maxMessageBytes,
            MaxSendMessageSize = _maxMessageBytes,
            DisposeHttpClient = true,
        });

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var (_, channel) in _lru)
            {
                channel.Dispose();
            }
            _lru.Clear();
            _channels.Clear();
        }
    }
}
