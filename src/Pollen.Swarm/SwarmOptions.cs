using Pollen.Swarm.Records;

namespace Pollen.Swarm;

/// <summary>Options of a swarm node: where it listens, whom it joins, and the DHT's parameters.</summary>
public sealed class SwarmOptions
{
    /// <summary>Node home directory holding <c>identity.key</c>. Default <c>~/.pollen</c>.</summary>
    public string Home { get; set; } = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".pollen");

    /// <summary>IP address the swarm port binds to. Default <c>0.0.0.0</c> (all IPv4 interfaces).</summary>
    public string ListenAddress { get; set; } = "0.0.0.0";

    /// <summary>Swarm port (gRPC over HTTP/2 cleartext); 0 picks a free one. Default 0.</summary>
    public int Port { get; set; }

    /// <summary>"host:port" other peers should dial. Default: the listen address and the bound port, or
    /// this machine's first non-loopback IPv4 address when listening on all interfaces.</summary>
    public string? AnnounceAddress { get; set; }

    /// <summary>"host:port" of peers to join through; none founds a new swarm. Default none.</summary>
    public IList<string> InitialPeers { get; } = [];

    /// <summary>k: bucket size and replication factor. Default 20.</summary>
    public int BucketSize { get; set; } = 20;

    /// <summary>α: parallel requests per lookup round. Default 3.</summary>
    public int Alpha { get; set; } = 3;

    /// <summary>Deadline of every DHT call. Default 5 s.</summary>
    public TimeSpan RpcTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>TCP connect timeout when dialing a peer. Default 3 s.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>How often buckets without a lookup are refreshed. Default 10 min.</summary>
    public TimeSpan RefreshInterval { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>How often held records are re-stored to the current k closest peers. Default 15 min.</summary>
    public TimeSpan RepublishInterval { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>Ban after the first failed call; doubles with each further failure. Default 2 s.</summary>
    public TimeSpan BanBase { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Longest ban. Default 5 min.</summary>
    public TimeSpan BanMax { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Largest gRPC message sent or received on the swarm port, in bytes. Default 4 MiB.</summary>
    public int MaxMessageBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>Most open connections to peers; the least recently used is closed beyond it. Default 128.</summary>
    public int MaxConnections { get; set; } = 128;

    /// <summary>Caps on stored records.</summary>
    public RecordLimits Records { get; } = new();

    /// <summary>Refuses nonsense with a message naming the option.</summary>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public void Validate()
    {
        Check(Port is >= 0 and <= 65535, $"port must be 0..65535 (got {Port})");
        Check(BucketSize >= 1, $"bucket size must be positive (got {BucketSize})");
        Check(Alpha >= 1, $"alpha must be positive (got {Alpha})");
        Check(RpcTimeout > TimeSpan.Zero, "RPC timeout must be positive");
        Check(RefreshInterval > TimeSpan.Zero && RepublishInterval > TimeSpan.Zero, "refresh and republish intervals must be positive");
        Check(BanBase > TimeSpan.Zero && BanMax >= BanBase, "ban durations must be positive, with max >= base");
        Check(MaxConnections >= 1, $"max connections must be positive (got {MaxConnections})");
        Check(MaxMessageBytes >= 64 * 1024, $"max message size must be at least 64 KiB (got {MaxMessageBytes})");
        Check(System.Net.IPAddress.TryParse(ListenAddress, out _), $"listen address '{ListenAddress}' is not an IP address");
        foreach (var peer in InitialPeers)
        {
            Check(Transport.PeerAddress.IsValid(peer), $"initial peer '{peer}' is not host:port");
        }
        Check(AnnounceAddress is null || Transport.PeerAddress.IsValid(AnnounceAddress), $"announce address '{AnnounceAddress}' is not host:port");
    }

    private static void Check(bool ok, string message)
    {
        if (!ok)
        {
            throw new ArgumentException(message);
        }
    }
}
