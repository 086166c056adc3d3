using System.CommandLine;
using Pollen.Node.Hosting;

namespace Pollen.Cli.Commands;

/// <summary>
/// The flags of <c>pollen node</c>, bound onto <see cref="NodeOptions"/>: a <c>--config</c> file first,
/// then every flag given on the command line over it. Flags have no defaults of their own (the defaults
/// live in <see cref="NodeOptions"/>), so an absent flag never overrides the file.
/// </summary>
internal sealed class NodeOptionsBinding
{
    private readonly Option<string?> _config = new("--config") { Description = "JSON file with any of these options under the same names without dashes, e.g. {\"http-port\": 0}; flags override it." };
    private readonly Option<string?> _home = new("--home") { Description = "Home directory: identity key, checkpoints, state (default ~/.pollen)." };
    private readonly Option<int?> _port = new("--port") { Description = "Swarm port (gRPC); 0 picks a free one (default 0)." };
    private readonly Option<string?> _listen = new("--listen") { Description = "IP address for the swarm port (default 0.0.0.0)." };
    private readonly Option<int?> _pushPort = new("--push-port") { Description = "Port on which the previous servers of routes push hidden states (TCP); 0 picks a free one, -1 turns it off (default 0)." };
    private readonly Option<int?> _httpPort = new("--http-port") { Description = "HTTP API and dashboard port; 0 picks a free one (default 5000)." };
    private readonly Option<string?> _httpListen = new("--http-listen") { Description = "IP address for the HTTP port (default 0.0.0.0)." };
    private readonly Option<string[]> _initialPeers = new("--initial-peers") { Description = "host:port of peers of the swarm to join; none founds a new swarm.", AllowMultipleArgumentsPerToken = true };
    private readonly Option<string?> _announce = new("--announce-address") { Description = "host:port others should dial, when it differs from the listen address (NAT, containers)." };
    private readonly Option<string?> _model = new("--model") { Description = "Serve this checkpoint directory instead of training the dev model (implies --no-train)." };
    private readonly Option<string?> _modelId = new("--model-id") { Description = "Model id and training run id (default 'pollen'; with --model, its directory name)." };
    private readonly Option<string?> _preset = new("--preset") { Description = "Model preset to train: dev, small, base, medium (default dev)." };
    private readonly Option<string?> _data = new("--data") { Description = "Training data: a .txt/.jsonl file or a directory (default: the built-in stories)." };
    private readonly Option<int?> _corpusMb = new("--corpus-mb") { Description = "Size of the built-in corpus in MB (default 4; 1 with --dev)." };
    private readonly Option<string?> _blocks = new("--blocks") { Description = "Blocks to serve as start:end (end exclusive)." };
    private readonly Option<int?> _numBlocks = new("--num-blocks") { Description = "Serve this many blocks, those the fewest peers serve (default: all)." };
    private readonly Option<bool> _noTrain = new("--no-train") { Description = "Do not train; serve the run's latest round, fetched from peers." };
    private readonly Option<bool> _noServe = new("--no-serve") { Description = "Do not serve blocks." };
    private readonly Option<int?> _seed = new("--seed") { Description = "Seed of the run's initial weights (the same on every peer; default 0)." };
    private readonly Option<int?> _threads = new("--threads") { Description = "CPU threads for tensor math (default: all cores)." };
    private readonly Option<int?> _batchSize = new("--batch-size") { Description = "Sequences per training step (default 16; 4 with --dev)." };
    private readonly Option<int?> _seqLen = new("--seq-len") { Description = "Tokens per training sequence (default 256; 64 with --dev)." };
    private readonly Option<int?> _innerSteps = new("--inner-steps") { Description = "Local steps per DiLoCo round (default 50; 5 with --dev)." };
    private readonly Option<double?> _matchmaking = new("--matchmaking-seconds") { Description = "How long a round waits for the live peers (default 30; 2 with --dev)." };
    private readonly Option<double?> _follow = new("--follow-seconds") { Description = "With --no-train: seconds between checks for a newer round (default 30; 2 with --dev)." };
    private readonly Option<bool> _noDashboard = new("--no-dashboard") { Description = "No terminal dashboard: JSON log lines on stderr." };
    private readonly Option<bool> _reset = new("--reset") { Description = "Delete this node's checkpoints and state (HOME/node) first; asks unless --yes." };
    private readonly Option<bool> _yes = new("--yes") { Description = "Answer yes to --reset's question." };
    private readonly Option<bool> _dev = new("--dev") { Description = "Fast bootstrap settings: few inner steps, a short matchmaking window, little data." };
    private readonly Option<bool> _verbose = new("--verbose") { Description = "Debug-level logs." };

    public IEnumerable<Option> All =>
    [
        _config, _home, _port, _listen, _pushPort, _httpPort, _httpListen, _initialPeers, _announce, _model, _modelId, _preset, _data, _corpusMb, _blocks, _numBlocks,
        _noTrain, _noServe, _seed, _threads, _batchSize, _seqLen, _innerSteps, _matchmaking, _follow, _noDashboard, _reset, _yes, _dev, _verbose,
    ];

    /// <summary>The options of <paramref name="r"/>: the config file's, overridden by the flags given; validated.</summary>
    public NodeOptions Bind(ParseResult r)
    {
        try
        {
            var o = r.GetValue(_config) is { } file ? NodeOptions.LoadFile(file) : new NodeOptions();
            Set(r.GetValue(_home), v => o.Home = v);
            Set(r.GetValue(_port), v => o.Port = v);
            Set(r.GetValue(_listen), v => o.Listen = v);
            Set(r.GetValue(_pushPort), v => o.PushPort = v);
            Set(r.GetValue(_httpPort), v => o.HttpPort = v);
            Set(r.GetValue(_httpListen), v => o.HttpListen = v);
            if (r.GetValue(_initialPeers) is { Length: > 0 } peers)
            {
                o.InitialPeers = peers;
            }
            Set(r.GetValue(_announce), v => o.AnnounceAddress = v);
            Set(r.GetValue(_model), v => o.Model = v);
            Set(r.GetValue(_modelId), v => o.ModelId = v);
            Set(r.GetValue(_preset), v => o.Preset = v);
            Set(r.GetValue(_data), v => o.Data = v);
            Set(r.GetValue(_corpusMb), v => o.CorpusMb = v);
            Set(r.GetValue(_blocks), v => o.Blocks = v);
            Set(r.GetValue(_numBlocks), v => o.NumBlocks = v);
            Set(r.GetValue(_seed), v => o.Seed = v);
            Set(r.GetValue(_threads), v => o.Threads = v);
            Set(r.GetValue(_batchSize), v => o.BatchSize = v);
            Set(r.GetValue(_seqLen), v => o.SeqLen = v);
            Set(r.GetValue(_innerSteps), v => o.InnerSteps = v);
            Set(r.GetValue(_matchmaking), v => o.MatchmakingSeconds = v);
            Set(r.GetValue(_follow), v => o.FollowSeconds = v);
            // a flag can switch these on over the file, not off
            o.NoTrain |= r.GetValue(_noTrain);
            o.NoServe |= r.GetValue(_noServe);
            o.NoDashboard |= r.GetValue(_noDashboard);
            o.Reset |= r.GetValue(_reset);
            o.Yes |= r.GetValue(_yes);
            o.Dev |= r.GetValue(_dev);
            o.Verbose |= r.GetValue(_verbose);
            o.Validate();
            return o;
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
    }

    private static void Set<T>(T? value, Action<T> set) where T : class
    {
        if (value is not null)
        {
            set(value);
        }
    }

    private static void Set<T>(T? value, Action<T> set) where T : struct
    {
        if (value is { } v)
        {
            set(v);
        }
    }
}
