using System.Text.Json.Serialization;

namespace Pollen.Swarm.Announcements;

/// <summary>
/// What a node tells the swarm about itself, stored as JSON under <see cref="PeerDirectory.Key"/> in the
/// subkey it owns (so only it can write it). Later subsystems add what they serve to <see cref="Serves"/>.
/// </summary>
public sealed record PeerAnnouncement
{
    /// <summary>The announcing peer (base32 peer id). Checked against the signing key when read.</summary>
    [JsonPropertyName("peer_id")]
    public required string PeerId { get; init; }

    /// <summary>"host:port" of its swarm port.</summary>
    [JsonPropertyName("address")]
    public required string Address { get; init; }

    /// <summary>Software version, e.g. <c>0.1.0</c>.</summary>
    [JsonPropertyName("version")]
    public required string Version { get; init; }

    /// <summary>Role: <c>dht</c> for a bootstrap/relay-only node, <c>server</c> for a block server, and so on.</summary>
    [JsonPropertyName("role")]
    public string Role { get; init; } = "dht";

    /// <summary>What it serves, as stable names (e.g. <c>M/block/4..8</c>); empty for a DHT-only node.</summary>
    [JsonPropertyName("serves")]
    public IReadOnlyList<string> Serves { get; init; } = [];

    /// <summary>Measured throughput in tokens per second, when it serves blocks.</summary>
    [JsonPropertyName("throughput_tokens_per_s")]
    public double? ThroughputTokensPerSecond { get; init; }

    /// <summary>Free memory for sessions and caches, in bytes.</summary>
    [JsonPropertyName("free_memory_bytes")]
    public long? FreeMemoryBytes { get; init; }

    /// <summary>When this announcement expires (from the record entry, not serialized).</summary>
    [JsonIgnore]
    public DateTimeOffset Expiration { get; init; }
}
