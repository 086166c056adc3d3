using System.Text.Json.Serialization;

namespace Pollen.Inference.Routing;

/// <summary>
/// What a block server tells clients, stored as JSON in its own subkey of
/// <see cref="ModelServers.Key"/> for its model (so only it can write it) and refreshed while it serves.
/// </summary>
public sealed record ServerAnnouncement
{
    /// <summary>The server's peer id (base32); checked against the signing key when read.</summary>
    [JsonPropertyName("peer_id")]
    public required string PeerId { get; init; }

    /// <summary>"host:port" of its swarm port, where the <c>Blocks</c> service answers.</summary>
    [JsonPropertyName("address")]
    public required string Address { get; init; }

    /// <summary>The model id (also part of the DHT key).</summary>
    [JsonPropertyName("model_id")]
    public required string ModelId { get; init; }

    /// <summary><see cref="Model.Config.ModelConfig.Fingerprint"/> of the served model.</summary>
    [JsonPropertyName("config_fingerprint")]
    public required string ConfigFingerprint { get; init; }

    /// <summary>First block served.</summary>
    [JsonPropertyName("start_block")]
    public required int StartBlock { get; init; }

    /// <summary>One past the last block served.</summary>
    [JsonPropertyName("end_block")]
    public required int EndBlock { get; init; }

    /// <summary>
    /// The span the server chose for itself, when it announces more (blocks it covers only while nobody else
    /// serves them); null when it announces just its own span. Newcomers choosing blocks count this span.
    /// </summary>
    [JsonPropertyName("own_blocks")]
    public int[]? OwnBlocks { get; init; }

    /// <summary>The blocks this server counts as its own: <see cref="OwnBlocks"/> when valid, else the announced span.</summary>
    [JsonIgnore]
    public (int Start, int End) OwnSpan => OwnBlocks is [var start, var end] && start >= StartBlock && end <= EndBlock && end > start ? (start, end) : (StartBlock, EndBlock);

    /// <summary>Measured block-steps per second (one-token steps, batch 1, through one block).</summary>
    [JsonPropertyName("throughput")]
    public double Throughput { get; init; }

    /// <summary>Cache tokens not reserved by open sessions when announced.</summary>
    [JsonPropertyName("free_cache_tokens")]
    public long FreeCacheTokens { get; init; }

    /// <summary>Weights' dtype, e.g. <c>float32</c>.</summary>
    [JsonPropertyName("dtype")]
    public string Dtype { get; init; } = "float32";

    /// <summary>Software version.</summary>
    [JsonPropertyName("version")]
    public string Version { get; init; } = "";

    /// <summary>When this announcement expires (from the record entry, not serialized).</summary>
    [JsonIgnore]
    public DateTimeOffset Expiration { get; init; }
}
