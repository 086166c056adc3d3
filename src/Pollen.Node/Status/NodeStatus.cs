using System.Text.Json;
using System.Text.Json.Serialization;

namespace Pollen.Node.Status;

/// <summary>
/// What a node is doing, at one moment: the one picture the terminal dashboard, the web dashboard
/// (<c>GET /api/status</c>), <c>GET /metrics</c> and <c>pollen status</c> all render. Immutable; a node
/// builds a fresh one whenever asked (<see cref="INodeStatusSource"/>).
/// </summary>
public sealed record NodeStatus
{
    /// <summary>When this snapshot was taken.</summary>
    public required DateTimeOffset Time { get; init; }

    /// <summary>This node.</summary>
    public required NodeSummary Node { get; init; }

    /// <summary>The model the swarm serves and trains.</summary>
    public required ModelSummary Model { get; init; }

    /// <summary>Every peer known to serve blocks of the model (this node included when it serves).</summary>
    public required IReadOnlyList<PeerSummary> Peers { get; init; }

    /// <summary>Collaborative training, or null when this node does not train.</summary>
    public TrainingSummary? Training { get; init; }

    /// <summary>Block serving, or null when this node does not serve.</summary>
    public ServingSummary? Serving { get; init; }

    /// <summary>The most recent log lines, oldest first.</summary>
    public IReadOnlyList<LogLine> RecentLog { get; init; } = [];

    /// <summary>The training run as its progress entries in the DHT show it, or null when not read.</summary>
    public RunSummary? Run { get; init; }

    /// <summary>JSON options for every status document: snake_case names, nulls omitted.</summary>
    public static JsonSerializerOptions Json { get; } = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };
}

/// <summary>Who a node is and where it listens.</summary>
/// <param name="PeerId">The swarm identity (public key fingerprint).</param>
/// <param name="SwarmAddress">host:port of the swarm (gRPC) endpoint.</param>
/// <param name="HttpUrl">Base URL of the HTTP API and dashboard, or null without one.</param>
/// <param name="Roles">What the node does: "train", "serve", "api".</param>
/// <param name="StartedAt">When the node started.</param>
public sealed record NodeSummary(string PeerId, string SwarmAddress, string? HttpUrl, IReadOnlyList<string> Roles, DateTimeOffset StartedAt);

/// <summary>The model: its id, shape fingerprint and number of blocks (for the coverage picture).</summary>
public sealed record ModelSummary(string ModelId, string ConfigFingerprint, int NumBlocks, long Parameters, string Description);

/// <summary>One serving peer as the swarm sees it.</summary>
/// <param name="PeerId">Its identity.</param>
/// <param name="Address">host:port of its swarm endpoint.</param>
/// <param name="StartBlock">First block served.</param>
/// <param name="EndBlock">One past the last block served.</param>
/// <param name="Throughput">Announced block-steps per second.</param>
/// <param name="LastSeen">When its announcement was last refreshed.</param>
/// <param name="IsSelf">Whether it is this node.</param>
public sealed record PeerSummary(string PeerId, string Address, int StartBlock, int EndBlock, double Throughput, DateTimeOffset LastSeen, bool IsSelf);

/// <summary>Collaborative training as this node runs it.</summary>
/// <param name="RunId">The training run.</param>
/// <param name="Round">Rounds finished by this node.</param>
/// <param name="InnerStep">Inner steps done in the current round.</param>
/// <param name="InnerSteps">Inner steps per round.</param>
/// <param name="TokensPerSecond">Training tokens per second over the last round.</param>
/// <param name="BytesSent">Bytes this node has sent for averaging and state transfer.</param>
/// <param name="BytesReceived">Bytes this node has received for them.</param>
/// <param name="LastGroupSize">Peers in the last averaging round.</param>
/// <param name="Losses">Validation loss by round, oldest first.</param>
public sealed record TrainingSummary(string RunId, int Round, int InnerStep, int InnerSteps, double TokensPerSecond,
    long BytesSent, long BytesReceived, int LastGroupSize, IReadOnlyList<RoundLoss> Losses)
{
    /// <summary>SHA-256 of the parameters at the start of the current round (equal on peers in sync), or null.</summary>
    public string? ParameterHash { get; init; }
}

/// <summary>A training run as the swarm sees it: the peers' signed progress entries in the DHT.</summary>
/// <param name="RunId">The run.</param>
/// <param name="Round">The newest round any live peer has finished.</param>
/// <param name="Tokens">Training tokens processed, summed over the live peers.</param>
/// <param name="LivePeers">Peers with an unexpired progress entry.</param>
/// <param name="ParameterHash">Parameters most peers of the newest round agree on.</param>
public sealed record RunSummary(string RunId, long Round, long Tokens, int LivePeers, string? ParameterHash);

/// <summary>Validation loss (nats/token) after a round.</summary>
public sealed record RoundLoss(int Round, double Loss);

/// <summary>Block serving as this node runs it.</summary>
/// <param name="StartBlock">First block served.</param>
/// <param name="EndBlock">One past the last block served.</param>
/// <param name="ServedRound">The training round whose parameters are served (0 for a fixed checkpoint).</param>
/// <param name="OpenSessions">Inference sessions open now.</param>
/// <param name="TokensServed">Tokens stepped through this node's blocks since it started.</param>
/// <param name="TokensPerSecond">Tokens per second over the last few seconds.</param>
/// <param name="CacheTokensUsed">Cache tokens reserved by open sessions.</param>
/// <param name="CacheTokens">The cache budget.</param>
public sealed record ServingSummary(int StartBlock, int EndBlock, int ServedRound, int OpenSessions, long TokensServed,
    double TokensPerSecond, long CacheTokensUsed, long CacheTokens)
{
    /// <summary>SHA-256 of the served parameters when they came from a training round, or null.</summary>
    public string? ParameterHash { get; init; }
}

/// <summary>One log line.</summary>
public sealed record LogLine(DateTimeOffset Time, string Level, string Category, string Message);

/// <summary>Whatever can say what a node is doing right now.</summary>
public interface INodeStatusSource
{
    /// <summary>A fresh snapshot; cheap enough to call a few times a second.</summary>
    NodeStatus Snapshot();
}
