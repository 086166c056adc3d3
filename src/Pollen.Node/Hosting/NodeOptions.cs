using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Pollen.Model.Config;
using Pollen.Swarm.Records;
using Pollen.Swarm.Transport;

namespace Pollen.Node.Hosting;

/// <summary>
/// Everything <c>pollen node</c> can be told. The same names work as command-line flags
/// (<c>--http-port</c>) and as keys of a JSON config file (<c>"http-port"</c>); flags override the file.
/// Validated once at start-up (<see cref="Validate"/>), logged once (<see cref="Describe"/>).
/// </summary>
public sealed class NodeOptions
{
    /// <summary>Node home directory: identity key, checkpoints, state. Default <c>~/.pollen</c>.</summary>
    public string Home { get; set; } = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".pollen");

    /// <summary>Swarm port (gRPC over HTTP/2); 0 picks a free one. Default 0.</summary>
    public int Port { get; set; }

    /// <summary>IP address the swarm port binds to. Default <c>0.0.0.0</c>.</summary>
    public string Listen { get; set; } = "0.0.0.0";

    /// <summary>
    /// Port of the push lane, on which the servers before this one in clients' routes push hidden states (TCP,
    /// next to the swarm port); 0 picks a free one, -1 turns it off (pushes then come over the swarm port).
    /// Default 0.
    /// </summary>
    public int PushPort { get; set; }

    /// <summary>HTTP API and web dashboard port; 0 picks a free one. Default 5000.</summary>
    public int HttpPort { get; set; } = 5000;

    /// <summary>IP address the HTTP port binds to. Default <c>0.0.0.0</c>.</summary>
    public string HttpListen { get; set; } = "0.0.0.0";

    /// <summary>host:port of swarm peers to join through; none founds a new swarm. Default none.</summary>
    public string[] InitialPeers { get; set; } = [];

    /// <summary>host:port other peers should dial, when it differs from the listen address. Default: derived.</summary>
    public string? AnnounceAddress { get; set; }

    /// <summary>Serve this checkpoint directory instead of training; implies <see cref="NoTrain"/>. Default none.</summary>
    public string? Model { get; set; }

    /// <summary>Model id servers announce and the training run id. Default <c>pollen</c> (with <see cref="Model"/>: its directory name).</summary>
    public string? ModelId { get; set; }

    /// <summary>Model preset of the trained model (dev, small, base, medium). Default <c>dev</c>.</summary>
    public string Preset { get; set; } = "dev";

    /// <summary>Training data: a .txt/.jsonl file or a directory of them. Default: the built-in synthetic stories.</summary>
    public string? Data { get; set; }

    /// <summary>Size of the built-in corpus in MB. Default 4 (1 with <see cref="Dev"/>).</summary>
    public int? CorpusMb { get; set; }

    /// <summary>Blocks to serve as start:end (end exclusive). Default: <see cref="NumBlocks"/>, else all.</summary>
    public string? Blocks { get; set; }

    /// <summary>Serve this many consecutive blocks, those served by the fewest peers. Default: all blocks.</summary>
    public int? NumBlocks { get; set; }

    /// <summary>Do not train; follow the run by fetching its latest round from peers. Default false.</summary>
    public bool NoTrain { get; set; }

    /// <summary>Do not serve blocks. Default false.</summary>
    public bool NoServe { get; set; }

    /// <summary>Seed of the run's initial weights and validation split (the same on every peer). Default 0.</summary>
    public int Seed { get; set; }

    /// <summary>CPU threads for tensor math. Default: all cores.</summary>
    public int Threads { get; set; } = Environment.ProcessorCount;

    /// <summary>Sequences per inner step. Default 16 (4 with <see cref="Dev"/>).</summary>
    public int? BatchSize { get; set; }

    /// <summary>Tokens per training sequence. Default 256 (64 with <see cref="Dev"/>), at most the model's context.</summary>
    public int? SeqLen { get; set; }

    /// <summary>Inner steps per DiLoCo round. Default 50 (5 with <see cref="Dev"/>).</summary>
    public int? InnerSteps { get; set; }

    /// <summary>Seconds a round waits for the live peers. Default 30 (2 with <see cref="Dev"/>).</summary>
    public double? MatchmakingSeconds { get; set; }

    /// <summary>With <see cref="NoTrain"/>: seconds between checks for a newer round. Default 30 (2 with <see cref="Dev"/>).</summary>
    public double? FollowSeconds { get; set; }

    /// <summary>No terminal dashboard; structured JSON log lines on stderr instead. Default false.</summary>
    public bool NoDashboard { get; set; }

    /// <summary>Delete this node's checkpoints and state (under <c>Home/node</c>) before starting. Default false.</summary>
    public bool Reset { get; set; }

    /// <summary>Do not ask for confirmation (of <see cref="Reset"/>). Default false.</summary>
    public bool Yes { get; set; }

    /// <summary>Fast bootstrap settings for trying things out and tests: few inner steps, a short matchmaking window, little data. Default false.</summary>
    public bool Dev { get; set; }

    /// <summary>Debug-level logs. Default false.</summary>
    public bool Verbose { get; set; }

    /// <summary>Whether this node trains.</summary>
    [JsonIgnore]
    public bool Trains => !NoTrain && Model is null;

    /// <summary>The model id / run id in effect.</summary>
    [JsonIgnore]
    public string EffectiveModelId => ModelId ?? (Model is null ? "pollen" : Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(Model))));

    /// <summary>Where this node keeps its checkpoints and state; <c>--reset</c> deletes exactly this.</summary>
    [JsonIgnore]
    public string StateDirectory => Path.Combine(Home, "node");

    /// <summary>Inner steps per round in effect.</summary>
    [JsonIgnore]
    public int EffectiveInnerSteps => InnerSteps ?? (Dev ? 5 : 50);

    /// <summary>How often a serving node checks that every block has a live server. 15 s (2 s with <see cref="Dev"/>).</summary>
    public TimeSpan EffectiveCoverageInterval => TimeSpan.FromSeconds(Dev ? 2 : 15);

    /// <summary>Batch size in effect.</summary>
    [JsonIgnore]
    public int EffectiveBatchSize => BatchSize ?? (Dev ? 4 : 16);

    /// <summary>Sequence length in effect (before capping at the model's context).</summary>
    [JsonIgnore]
    public int EffectiveSeqLen => SeqLen ?? (Dev ? 64 : 256);

    /// <summary>Built-in corpus size in effect.</summary>
    [JsonIgnore]
    public int EffectiveCorpusMb => CorpusMb ?? (Dev ? 1 : 4);

    /// <summary>Matchmaking window in effect.</summary>
    [JsonIgnore]
    public TimeSpan MatchmakingWindow => TimeSpan.FromSeconds(MatchmakingSeconds ?? (Dev ? 2 : 30));

    /// <summary>Follow interval in effect.</summary>
    [JsonIgnore]
    public TimeSpan FollowInterval => TimeSpan.FromSeconds(FollowSeconds ?? (Dev ? 2 : 30));

    /// <summary>JSON names of the config file: the flags' names without the dashes in front.</summary>
    public static JsonSerializerOptions FileJson { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.KebabCaseLower,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        WriteIndented = false,
    };

    /// <summary>Reads a JSON config file (keys as the flags, e.g. <c>"http-port": 0</c>).</summary>
    /// <exception cref="ArgumentException">The file is missing, not JSON, or names an unknown option or a wrong type.</exception>
    public static NodeOptions LoadFile(string path)
    {
        if (!File.Exists(path))
        {
            throw new ArgumentException($"--config {path}: no such file");
        }
        try
        {
            return JsonSerializer.Deserialize<NodeOptions>(File.ReadAllText(path), FileJson) ?? throw new ArgumentException($"--config {path}: the file holds null");
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"--config {path}: {e.Message}");
        }
    }

    /// <summary>The effective options as one JSON object (for the start-up log).</summary>
    public string Describe() => JsonSerializer.Serialize(this, FileJson);

    /// <summary>Throws <see cref="ArgumentException"/> whose message names the first bad option.</summary>
    public void Validate()
    {
        Check(!string.IsNullOrWhiteSpace(Home), "--home must not be empty");
        Check(Port is >= 0 and <= 65535, $"--port must be 0..65535 (got {Port})");
        Check(HttpPort is >= 0 and <= 65535, $"--http-port must be 0..65535 (got {HttpPort})");
        Check(PushPort is >= -1 and <= 65535, $"--push-port must be 0..65535, or -1 for none (got {PushPort})");
        Check(System.Net.IPAddress.TryParse(Listen, out _), $"--listen '{Listen}' is not an IP address");
        Check(System.Net.IPAddress.TryParse(HttpListen, out _), $"--http-listen '{HttpListen}' is not an IP address");
        foreach (var peer in InitialPeers)
        {
            Check(PeerAddress.IsValid(peer), $"--initial-peers '{peer}' is not host:port");
        }
        Check(AnnounceAddress is null || PeerAddress.IsValid(AnnounceAddress), $"--announce-address '{AnnounceAddress}' is not host:port");
        Check(Model is null || Directory.Exists(Model), $"--model {Model}: no such directory");
        Check(Model is not null || ModelPresets.Names.Contains(Preset), $"--preset '{Preset}' is not one of {string.Join(", ", ModelPresets.Names)}");
        Check(Data is null || File.Exists(Data) || Directory.Exists(Data), $"--data {Data}: no such file or directory");
        try
        {
            OwnedRecords.CheckName(EffectiveModelId, "--model-id");
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException(e.Message);
        }
        Check(Blocks is null || NumBlocks is null, "give --blocks start:end or --num-blocks N, not both");
        Check(NumBlocks is null or >= 1, $"--num-blocks must be positive (got {NumBlocks})");
        Check(Blocks is null || TryParseBlocks(Blocks, out _), $"--blocks {Blocks}: give start:end with start < end (end exclusive), e.g. 0:2");
        Check(!(NoServe && NoTrain), "--no-serve with --no-train leaves the node nothing to do");
        Check(!(NoServe && Model is not null), "--no-serve with --model leaves the node nothing to do");
        Check(Threads >= 1, $"--threads must be positive (got {Threads})");
        Check(EffectiveBatchSize >= 1, $"--batch-size must be positive (got {BatchSize})");
        Check(EffectiveSeqLen >= 2, $"--seq-len must be at least 2 (got {SeqLen})");
        Check(EffectiveInnerSteps >= 1, $"--inner-steps must be positive (got {InnerSteps})");
        Check(EffectiveCorpusMb >= 1, $"--corpus-mb must be positive (got {CorpusMb})");
        Check(MatchmakingWindow > TimeSpan.Zero && MatchmakingWindow <= TimeSpan.FromHours(1), $"--matchmaking-seconds must be in (0, 3600] (got {MatchmakingSeconds})");
        Check(FollowInterval > TimeSpan.Zero && FollowInterval <= TimeSpan.FromHours(1), $"--follow-seconds must be in (0, 3600] (got {FollowSeconds})");
    }

    /// <summary>Parses "start:end" (end exclusive, start &lt; end); the range against the model is checked later.</summary>
    public static bool TryParseBlocks(string text, out (int Start, int End) span)
    {
        span = default;
        var parts = text.Split(':');
        if (parts.Length != 2 || !int.TryParse(parts[0], CultureInfo.InvariantCulture, out var start) || !int.TryParse(parts[1], CultureInfo.InvariantCulture, out var end)
            || start < 0 || start >= end)
        {
            return false;
        }
        span = (start, end);
        return true;
    }

    private static void Check(bool ok, string message)
    {
        if (!ok)
        {
            throw new ArgumentException(message);
        }
    }
}
