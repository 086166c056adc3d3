using Microsoft.Extensions.Logging;
using Pollen.Inference.Client;
using Pollen.Inference.Routing;
using Pollen.Inference.Server;
using Pollen.Model.Config;
using Pollen.Model.Llama;
using Pollen.Model.Tokenizers;
using Pollen.Node.Api;
using Pollen.Node.Status;
using Pollen.Swarm;
using Pollen.Swarm.Announcements;
using Pollen.Swarm.Identity;
using Pollen.Training.Collaborative;
using Pollen.Training.Collaborative.Network;

namespace Pollen.Node.Hosting;

/// <summary>
/// One node of the swarm, composed from the parts the single-purpose commands use: a
/// <see cref="SwarmNode"/> (DHT + gRPC port) carrying the block server and the averaging service, a
/// <see cref="SwarmDiloco"/> training loop (or, without training, a loop following the run's latest
/// round), a <see cref="BlockServer"/> whose weights follow training (<see cref="ServedWeights"/>), and
/// the HTTP API + dashboard (<see cref="ApiServer"/>) whose model runs its blocks over the swarm.
/// </summary>
/// <remarks>
/// The lifetime follows the generic host's: <see cref="StartAsync"/> brings every part up (failing fast,
/// with everything started so far torn down), <see cref="RunAsync"/> runs until the token is cancelled,
/// and <see cref="DisposeAsync"/> leaves in the order that hurts clients least — stop taking HTTP
/// requests and block sessions, withdraw the DHT announcements, save the checkpoint, close the port.
/// </remarks>
public sealed partial class NodeHost : IAsyncDisposable
{
    private readonly NodeOptions _options;
    private readonly ILoggerFactory _logging;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly List<Func<ValueTask>> _teardown = [];
    private NodeIdentity? _identity;
    private SwarmNode? _node;
    private Transformer? _model;
    private DilocoPeer? _peer;
    private SwarmDiloco? _diloco;
    private AveragingHub? _hub;
    private BlockServing.Slot? _slot;
    private BlockServer? _server;
    private Announcer? _announcer;
    private readonly Lock _spanLock = new();
    private (int Start, int End) _preferredSpan;
    private (int Start, int End) _announcedSpan;
    private Pollen.Inference.Client.SwarmModel? _apiModel;
    private string? _modelId;
    private int _blockCount;
    private ServedWeights? _weights;
    private ApiServer? _api;
    private LiveNodeStatus? _status;
    private bool _left;

    private NodeHost(NodeOptions options, ILoggerFactory logging, TimeProvider time)
    {
        _options = options;
        _logging = logging;
        _time = time;
        _logger = logging.CreateLogger("Pollen.Node");
    }

    /// <summary>The options in effect.</summary>
    public NodeOptions Options => _options;

    /// <summary>host:port of the swarm endpoint (what others pass as <c>--initial-peers</c>).</summary>
    public string SwarmAddress => _node!.Address;

    /// <summary>This node's peer id.</summary>
    public string PeerId => _node!.PeerId.ToString();

    /// <summary>Base URL of the HTTP API and dashboard.</summary>
    public Uri HttpUrl => _api!.Url;

    /// <summary>What the node is doing (for the dashboards).</summary>
    public INodeStatusSource Status => _status!;

    /// <summary>The checkpoint directory (the trained model, or <c>--model</c>).</summary>
    public string CheckpointDirectory => _options.Model ?? Path.Combine(_options.StateDirectory, "checkpoint");

    /// <summary>
    /// Starts every part the options ask for. Joining through <see cref="NodeOptions.InitialPeers"/> is
    /// retried a few times with backoff (<paramref name="progress"/> says so) before it fails with
    /// <see cref="SwarmUnavailableException"/>.
    /// </summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public static async Task<NodeHost> StartAsync(NodeOptions options, ILoggerFactory logging, RecentLog? recentLog = null, TextWriter? progress = null,
        TimeProvider? time = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        var host = new NodeHost(options, logging, time ?? TimeProvider.System);
        try
        {
            await host.StartPartsAsync(recentLog, progress ?? TextWriter.Null, cancellationToken).ConfigureAwait(false);
            return host;
        }
        catch
        {
            await host.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task StartPartsAsync(RecentLog? recentLog, TextWriter progress, CancellationToken cancellationToken)
    {
        var effective = _options.Describe(); // logged once, so what ran can be read back from the log
        Log.Options(_logger, effective);
        Directory.CreateDirectory(_options.StateDirectory);
        _identity = NodeIdentity.LoadOrCreate(_options.Home);
        var (config, round) = OpenModel();
        var modelId = _options.EffectiveModelId;

        _slot = _options.NoServe ? null : new BlockServing.Slot();
        if (_options.Trains)
        {
            _hub = new AveragingHub(_time);
        }
        _node = await JoinAsync(Services(), progress, cancellationToken).ConfigureAwait(false);
        _teardown.Add(() => _node.DisposeAsync());
        if (_peer is not null)
        {
            _diloco = new SwarmDiloco(_peer, _node, _identity, _hub!, new SwarmDilocoOptions
            {
                RunId = modelId,
                MatchmakingWindow = _options.MatchmakingWindow,
                AllReduce = new AllReduceOptions { PartTimeout = _options.MatchmakingWindow * 2 + TimeSpan.FromSeconds(2) },
            }, _time, _logging.CreateLogger("Pollen.Diloco"));
        }
        if (_slot is not null)
        {
            await StartServingAsync(config, modelId, cancellationToken).ConfigureAwait(false);
        }

        // the API's model: embedding and head here, the blocks wherever the swarm serves them
        var ends = ModelEnds.Load(CheckpointDirectory);
        var directory = new DhtServerDirectory(_node.Dht, modelId, config.Fingerprint(), config.NumHiddenLayers, cacheFor: TimeSpan.FromSeconds(5), time: _time);
        var swarmModel = new SwarmModel(ends, directory, new SwarmModelOptions(), _time, _logging.CreateLogger<SwarmModel>());
        (_apiModel, _modelId, _blockCount) = (swarmModel, modelId, config.NumHiddenLayers);
        _teardown.Add(() =>
        {
            swarmModel.Dispose();
            directory.Dispose();
            return ValueTask.CompletedTask;
        });
        _weights = new ServedWeights(_server, ends, round, _peer?.ParameterHash, _logging.CreateLogger("Pollen.Node.Weights"));
        _teardown.Add(() => _weights.DisposeAsync());

        var roles = new List<string>();
        if (_options.Trains)
        {
            roles.Add("train");
        }
        if (_server is not null)
        {
            roles.Add("serve");
        }
        roles.Add("api");
        var summary = new NodeSummary(PeerId, SwarmAddress, null, roles, _time.GetUtcNow());
        var model = new ModelSummary(modelId, config.Fingerprint(), config.NumHiddenLayers, config.ParameterCount(), config.ToString());
        _status = new LiveNodeStatus(summary, model, directory, _node.Dht, modelId, TrainingNow, ServingNow, recentLog, _time, _logging.CreateLogger("Pollen.Node.Status"));
        _teardown.Add(() => _status.DisposeAsync());
        var served = new ServedModel(modelId, swarmModel, Tokenizer(config));
        _api = await ApiServer.StartAsync(served, new ApiOptions { ListenAddress = _options.HttpListen, Port = _options.HttpPort }, _logging, _time, _status, cancellationToken)
            .ConfigureAwait(false);
        _teardown.Add(() => _api.DisposeAsync());
        _status.HttpUrl = _api.Url.ToString();
    }

    /// <summary>Loads or creates the model; returns its config and the round its weights are at.</summary>
    private (ModelConfig Config, long Round) OpenModel()
    {
        if (_options.Model is { } directory)
        {
            return (ModelConfig.Load(directory), 0);
        }
        var checkpoint = CheckpointDirectory;
        var resuming = DilocoCheckpoint.Exists(checkpoint);
        _model = resuming ? Model.Checkpoints.ModelCheckpoint.Load(checkpoint) : new Transformer(ModelPresets.Get(_options.Preset), seed: _options.Seed);
        _teardown.Add(() =>
        {
            _model.Dispose();
            return ValueTask.CompletedTask;
        });
        if (!resuming)
        {
            // round 0 on disk too: the API's embedding and head are read from it
            Model.Checkpoints.ModelCheckpoint.Save(checkpoint, _model);
        }
        TokenizerLoader.SaveByteTokenizer(checkpoint);
        if (!_options.Trains)
        {
            return (_model.Config, 0); // a follower starts at round 0 (the run's seed) and fetches newer rounds
        }
        _peer = CreatePeer(_model);
        _teardown.Add(() =>
        {
            _peer.Dispose();
            return ValueTask.CompletedTask;
        });
        if (resuming && DilocoCheckpoint.TryResume(_peer, checkpoint, _options.EffectiveModelId))
        {
            Log.Resumed(_logger, _peer.Round, checkpoint);
        }
        return (_model.Config, _peer.Round);
    }

    private SwarmServices? Services()
    {
        var parts = new List<SwarmServices>();
        if (_slot is not null)
        {
            parts.Add(BlockServing.Services(_slot, new BlockServerOptions().MaxMessageBytes));
        }
        if (_hub is not null)
        {
            parts.Add(AveragingServing.Services(_hub));
        }
        return parts.Count == 0 ? null : new SwarmServices
        {
            Register = services => parts.ForEach(p => p.Register(services)),
            Map = endpoints => parts.ForEach(p => p.Map(endpoints)),
        };
    }

    private ITokenizer? Tokenizer(ModelConfig config)
    {
        var directory = CheckpointDirectory;
        var hasFiles = File.Exists(Path.Combine(directory, "tokenizer.json")) || File.Exists(Path.Combine(directory, TokenizerLoader.PollenTokenizerFileName));
        return hasFiles ? TokenizerLoader.Load(directory) : config.VocabSize == ModelPresets.ByteVocabSize ? ByteTokenizer.Instance : null;
    }

    /// <summary>
    /// Runs the node's work — training rounds, or following the run — until <paramref name="stop"/> is
    /// cancelled, then leaves (<see cref="LeaveAsync"/>). Returns normally on a requested stop.
    /// </summary>
    public async Task RunAsync(CancellationToken stop)
    {
        // a node holding every block fills the swarm's gaps while it runs
        var coverage = _server is not null && _options.Model is null ? KeepCoverageAsync(_modelId!, _blockCount, stop) : Task.CompletedTask;
        try
        {
            if (_diloco is not null)
            {
                await TrainAsync(stop).ConfigureAwait(false);
            }
            else if (_options.Model is null)
            {
                await FollowAsync(stop).ConfigureAwait(false);
            }
            else
            {
                await Task.Delay(Timeout.InfiniteTimeSpan, _time, stop).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (stop.IsCancellationRequested)
        {
            // whatever the stop interrupted (a cancelled all-reduce call, a state download) ends here: the
            // round is dropped and the checkpoint of the last finished one is saved below
            Log.Interrupted(_logger, e);
        }
        try
        {
            await coverage.ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        await LeaveAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Leaves the swarm cleanly: stops taking HTTP requests and block sessions, withdraws the server's
    /// announcements, saves the checkpoint. Idempotent; <see cref="DisposeAsync"/> calls it too.
    /// </summary>
    public async Task LeaveAsync()
    {
        if (_left || _node is null)
        {
            return;
        }
        _left = true;
        if (_api is not null)
        {
            await _api.StopAsync(TimeSpan.FromSeconds(3)).ConfigureAwait(false);
        }
        if (_slot is not null)
        {
            _slot.Server = null; // new sessions are refused as UNAVAILABLE; clients route around this node
        }
        if (_announcer is not null)
        {
            await _announcer.DisposeAsync().ConfigureAwait(false);
            _announcer = null;
        }
        if (_server is not null)
        {
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await BlockServing.WithdrawAsync(_node.Dht, _server, BlockServing.DefaultTtl, _time, deadline.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or SwarmUnavailableException or Grpc.Core.RpcException or IOException)
            {
                Log.WithdrawFailed(_logger, e.Message);
            }
        }
        if (_diloco is not null)
        {
            // the others stop waiting for this peer at their next round
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await _diloco.WithdrawProgressAsync(deadline.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or SwarmUnavailableException or Grpc.Core.RpcException or IOException)
            {
                Log.WithdrawFailed(_logger, e.Message);
            }
        }
        if (_peer is not null && _model is not null)
        {
            DilocoCheckpoint.Save(_peer, _model, CheckpointDirectory, _options.EffectiveModelId);
            Log.Left(_logger, _peer.Round, CheckpointDirectory);
        }
        else
        {
            Log.Left(_logger, _weights?.ServedRound ?? 0, CheckpointDirectory);
        }
    }

    /// <summary>Leaves (if not done yet) and releases every part, in reverse order of start.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await LeaveAsync().ConfigureAwait(false);
        }
        finally
        {
            _diloco?.Dispose();
            for (var i = _teardown.Count - 1; i >= 0; i--)
            {
                await _teardown[i]().ConfigureAwait(false);
            }
            _teardown.Clear();
            _hub?.Dispose();
            _identity?.Dispose();
        }
    }
}
