using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pollen.Inference.Routing;

namespace Pollen.Node.Status;

/// <summary>
/// The status of a node that uses the swarm without serving or training (<c>pollen api</c>): the model and
/// the peers its server directory lists, refreshed in the background so that <see cref="Snapshot"/> never
/// waits on the network. A peer's <c>last_seen</c> is the last refresh that listed it.
/// </summary>
public sealed class DirectoryStatusSource : INodeStatusSource, IAsyncDisposable
{
    private readonly NodeSummary _node;
    private readonly ModelSummary _model;
    private readonly IServerDirectory _directory;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly Dictionary<string, DateTimeOffset> _lastSeen = [];
    private IReadOnlyList<PeerSummary> _peers = [];

    /// <summary>Starts refreshing the peer list every <paramref name="refresh"/> (default 5 s).</summary>
    public DirectoryStatusSource(NodeSummary node, ModelSummary model, IServerDirectory directory, TimeSpan? refresh = null,
        TimeProvider? time = null, ILogger? logger = null)
    {
        _node = node;
        _model = model;
        _directory = directory;
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
        Refresh = refresh ?? TimeSpan.FromSeconds(5);
        _loop = BackgroundRefresh.RunAsync(RefreshAsync, Refresh, _time,
            e => _logger.LogWarning("could not list the swarm's servers for the status page: {Error}", e.Message), _stop.Token);
    }

    /// <summary>How often the peer list is refreshed.</summary>
    public TimeSpan Refresh { get; }

    /// <inheritdoc/>
    public NodeStatus Snapshot() => new()
    {
        Time = _time.GetUtcNow(),
        Node = _node,
        Model = _model,
        Peers = Volatile.Read(ref _peers),
    };

    /// <summary>Refreshes the peer list now.</summary>
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        var servers = await _directory.GetServersAsync(refresh: true, cancellationToken).ConfigureAwait(false);
        var now = _time.GetUtcNow();
        lock (_lastSeen)
        {
            foreach (var s in servers)
            {
                _lastSeen[s.Address] = now;
            }
            Volatile.Write(ref _peers, [.. servers.OrderBy(s => s.Start).ThenBy(s => s.Address, StringComparer.Ordinal)
                .Select(s => new PeerSummary(s.PeerId ?? "", s.Address, s.Start, s.End, s.Throughput ?? 0, _lastSeen[s.Address], false))]);
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
    }
}
