using System.Collections.Concurrent;
using Grpc.Net.Client;

namespace Pollen.Swarm.Transport;

/// <summary>
/// One gRPC channel (HTTP/2 cleartext) per peer address, created on first use and shared by every call,
/// so a peer costs one TCP connection however many lookups go through it.
/// </summary>
/// <remarks>
/// Channels are not evicted: a node talks to O(k log N) peers, and an idle channel holds only a socket
/// that the handler closes after <see cref="SocketsHttpHandler.PooledConnectionIdleTimeout"/>. The
/// connect timeout is short because a peer that does not accept within it is treated as dead anyway.
/// </remarks>
public sealed class PeerChannelPool : IDisposable
{
    private readonly ConcurrentDictionary<string, GrpcChannel> _channels = new();
    private readonly int _maxMessageBytes;
    private readonly TimeSpan _connectTimeout;

    /// <summary>Creates an empty pool.</summary>
    public PeerChannelPool(int maxMessageBytes, TimeSpan connectTimeout)
    {
        _maxMessageBytes = maxMessageBytes;
        _connectTimeout = connectTimeout;
    }

    /// <summary>The channel for "host:port", created on first use.</summary>
    public GrpcChannel Get(string address) => _channels.GetOrAdd(address, Create);

    private GrpcChannel Create(string address) =>
        GrpcChannel.ForAddress("http://" + address, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                ConnectTimeout = _connectTimeout,
                PooledConnectionIdleTimeout = TimeSpan.FromMinutes(2),
                EnableMultipleHttp2Connections = true,
            },
            MaxReceiveMessageSize = _maxMessageBytes,
            MaxSendMessageSize = _maxMessageBytes,
            DisposeHttpClient = true,
        });

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var channel in _channels.Values)
        {
            channel.Dispose();
        }
        _channels.Clear();
    }
}
