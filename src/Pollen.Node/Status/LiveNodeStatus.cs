using Microsoft.Extensions.Logging;
using Pollen.Inference.Routing;
using Pollen.Swarm.Dht;
using Pollen.Training.Collaborative.Network;

namespace Pollen.Node.Status;

/// <summary>
/// The status of a running node (<c>pollen node</c>): who it is, the peers serving the model (from the
/// DHT, refreshed in the background by a <see cref="DirectoryStatusSource"/>), the run's progress entries
/// (refreshed the same way), its own training and serving as the node reports them, and its recent log.
/// <see cref="Snapshot"/> never waits on the network: it combines the last refresh with live counters.
/// </summary>
public sealed class LiveNodeStatus : INodeStatusSource, IAsyncDisposable
{
    private static readonly TimeSpan RateWindow = TimeSpan.FromSeconds(10);

    private readonly NodeSummary _node;
    private readonly DirectoryStatusSource _peers;
    private readonly DhtNode _dht;
    private readonly string _runId;
    private readonly Func<TrainingSummary?> _training;
    private readonly Func<ServingSummary?> _serving;
    private readonly RecentLog? _log;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Queue<(DateTimeOffset Time, long Tokens)> _served = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _runLoop;
    private RunSummary? _run;
    private string? _httpUrl;

    /// <summary>Starts the background refreshes (every <paramref name="refresh"/>, default 5 s).</summary>
    public LiveNodeStatus(NodeSummary node, ModelSummary model, IServerDirectory directory, DhtNode dht, string runId, Func<TrainingSummary?> training,
        Func<ServingSummary?> serving, RecentLog? log, TimeProvider time, ILogger logger, TimeSpan? refresh = null)
    {
        _node = node;
        _dht = dht;
        _runId = runId;
        _training = training;
        _serving = serving;
        _log = log;
        _time = time;
        _logger = logger;
        Refresh = refresh ?? TimeSpan.FromSeconds(5);
        _peers = new DirectoryStatusSource(node, model, directory, Refresh, time, logger);
        _runLoop = BackgroundRefresh.RunAsync(async ct => Volatile.Write(ref _run, await ReadRunAsync(_dht, _runId, ct).ConfigureAwait(false)), Refresh, time,
            e => _logger.LogWarning("could not read the run's progress for the status page: {Error}", e.Message), _stop.Token);
    }

    /// <summary>How often the DHT is read.</summary>
    public TimeSpan Refresh { get; }

    /// <summary>Base URL of the node's HTTP API, once it listens.</summary>
    public string? HttpUrl
    {
        get => Volatile.Read(ref _httpUrl);
        set => Volatile.Write(ref _httpUrl, value);
    }

    /// <inheritdoc/>
    public NodeStatus Snapshot()
    {
        var now = _time.GetUtcNow();
        var directory = _peers.Snapshot();
        var serving = _serving();
        if (serving is not null)
        {
            serving = serving with { TokensPerSecond = Rate(now, serving.TokensServed) };
        }
        return directory with
        {
            Time = now,
            Node = _node with { HttpUrl = HttpUrl },
            Peers = [.. directory.Peers.Select(p => p with { IsSelf = p.PeerId == _node.PeerId })],
            Training = _training(),
            Serving = serving,
            RecentLog = _log?.Tail(_log.Capacity) ?? [],
            Run = Volatile.Read(ref _run),
        };
    }

    /// <summary>Tokens per second served over the last <see cref="RateWindow"/>.</summary>
    private double Rate(DateTimeOffset now, long tokens)
    {
        lock (_served)
        {
            _served.Enqueue((now, tokens));
            while (_served.Count > 1 && now - _served.Peek().Time > RateWindow)
            {
                _served.Dequeue();
            }
            var (then, before) = _served.Peek();
            var seconds = (now - then).TotalSeconds;
            return seconds > 0.5 ? (tokens - before) / seconds : 0;
        }
    }

    /// <summary>Reads the run's progress entries: the newest round, tokens over all live peers, the agreed parameters.</summary>
    public static async Task<RunSummary> ReadRunAsync(DhtNode dht, string runId, CancellationToken cancellationToken)
    {
        var progress = await Matchmaker.ReadProgressAsync(dht, runId, cancellationToken).ConfigureAwait(false);
        if (progress.Count == 0)
        {
            return new RunSummary(runId, 0, 0, 0, null);
        }
        var newest = progress.Max(p => p.Rounds);
        var agreed = progress.Where(p => p.Rounds == newest && p.ParameterHash.Length > 0).GroupBy(p => p.ParameterHash)
            .OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal).FirstOrDefault()?.Key;
        return new RunSummary(runId, newest, progress.Sum(p => p.Tokens), progress.Count, agreed);
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _runLoop.ConfigureAwait(false);
        await _peers.DisposeAsync().ConfigureAwait(false);
        _stop.Dispose();
    }
}
