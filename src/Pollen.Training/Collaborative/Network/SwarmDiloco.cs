using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pollen.Swarm;
using Pollen.Swarm.Identity;
using Pollen.Swarm.Transport;
using static TorchSharp.torch;

namespace Pollen.Training.Collaborative.Network;

/// <summary>Settings of DiLoCo over the swarm.</summary>
public sealed record SwarmDilocoOptions
{
    /// <summary>The run all peers train together (letters, digits, '.', '_', '-').</summary>
    public required string RunId { get; init; }

    /// <summary>How long matchmaking waits for the live peers of a round. Default 30 s.</summary>
    public TimeSpan MatchmakingWindow { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Encoding, aggregation and deadline of the all-reduce.</summary>
    public AllReduceOptions AllReduce { get; init; } = new();

    /// <summary>How long a progress entry stays valid without a new round. Default 10 minutes.</summary>
    public TimeSpan ProgressTtl { get; init; } = TimeSpan.FromMinutes(10);
}

/// <summary>What one round did.</summary>
public sealed record SwarmRoundReport(long Round, int GroupSize, IReadOnlyList<int> ContributorsPerSlice, IReadOnlyList<string> Unreachable,
    long BytesSent, long BytesReceived, string ParameterHash, TimeSpan InnerTime, TimeSpan AveragingTime, double? Loss = null);

/// <summary>
/// One peer of a DiLoCo run over the swarm: each round runs the inner steps, finds the round's group in
/// the DHT, all-reduces Δ with it (<see cref="ButterflyAllReduce"/>), applies the outer step and
/// publishes its progress. The peer's node must serve <see cref="AveragingServing.Services"/> for
/// <paramref name="hub"/>; the peer's state is offered there to peers that catch up.
/// </summary>
public sealed class SwarmDiloco : IDisposable
{
    private readonly DilocoPeer _peer;
    private readonly SwarmNode _node;
    private readonly NodeIdentity _identity;
    private readonly AveragingHub _hub;
    private readonly SwarmDilocoOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly PeerChannelPool _channels = new(AveragingServing.DefaultMaxMessageBytes + (64 << 10), TimeSpan.FromSeconds(5), 128);
    private long _partsSent;

    /// <summary>Runs <paramref name="peer"/> in the run of <paramref name="options"/> through <paramref name="node"/>.</summary>
    public SwarmDiloco(DilocoPeer peer, SwarmNode node, NodeIdentity identity, AveragingHub hub, SwarmDilocoOptions options, TimeProvider? time = null, ILogger? logger = null)
    {
        _peer = peer;
        _node = node;
        _identity = identity;
        _hub = hub;
        _options = options;
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
        hub.OfferState(options.RunId, peer.SnapshotState);
    }

    /// <summary>The local side of DiLoCo.</summary>
    public DilocoPeer Peer => _peer;

    /// <summary>Fault injection for tests: replaces this peer's Δ before it is sent (a peer sending bad updates).</summary>
    internal Func<Tensor, Tensor>? TamperDelta { get; set; }

    /// <summary>Bytes this peer sent so far: its parts, plus the reduced slices and state it served.</summary>
    public long BytesSent => _partsSent + _hub.BytesServed;

    /// <summary>Bytes of results received so far.</summary>
    public long BytesReceived { get; private set; }

    /// <summary>
    /// Withdraws this peer's progress when it leaves: an entry readers skip (no rounds) that outlives the last
    /// one, so the others stop expecting it at their next matchmaking instead of waiting out its TTL.
    /// </summary>
    public Task WithdrawProgressAsync(CancellationToken cancellationToken) =>
        Matchmaker.PublishProgressAsync(_node.Dht, _options.RunId, new ProgressEntry
        {
            PeerId = _node.PeerId.ToString(),
            Address = _node.Address,
            Rounds = -1,
        }, _options.ProgressTtl + TimeSpan.FromSeconds(5), _time, cancellationToken);

    /// <summary>Publishes this peer's progress (call once before the first round so others expect it).</summary>
    public Task PublishProgressAsync(CancellationToken cancellationToken, double? loss = null) =>
        Matchmaker.PublishProgressAsync(_node.Dht, _options.RunId, new ProgressEntry
        {
            PeerId = _node.PeerId.ToString(),
            Address = _node.Address,
            Rounds = _peer.Round,
            Tokens = _peer.InnerStep * _peer.TokensPerStep,
            ParameterHash = _peer.ParameterHash,
            Loss = loss,
        }, _options.ProgressTtl, _time, cancellationToken);

    /// <summary>
    /// Catches up when needed: if the run's progress shows peers ahead of this one (it started late or
    /// missed rounds), or more peers at the same round agreeing on other parameters than on this one's (as
    /// many: the group with the smaller hash wins), downloads the state the most peers of the newest round
    /// agree on from one of them (checked against their signed progress) and takes it over. Returns true
    /// when it did.
    /// </summary>
    /// <remarks>
    /// A peer that finishes a round between the progress read and the download offers a newer state than
    /// its entry names, which the check refuses; the progress is then read again (a few times, backing off)
    /// so a run that moves on quickly still lets a late peer in.
    /// </remarks>
    /// <exception cref="Swarm.SwarmUnavailableException">This peer is behind (an older round) and no peer of the newest round gave a valid state.</exception>
    public async Task<bool> SyncAsync(CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var (done, newest) = await TrySyncAsync(await ReadOthersAsync(cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
            if (done is { } result)
            {
                return result;
            }
            if (attempt == SyncAttempts && newest == _peer.Round)
            {
                // not behind, only split from a group that cannot hand its state over (its peers are gone, and
                // their progress has not expired yet): this peer's parameters are as new, so it goes on with them
                // rather than stall until that progress expires
                Log.KeptSplitState(_logger, newest);
                return false;
            }
            if (attempt == SyncAttempts)
            {
                throw new Swarm.SwarmUnavailableException(
                    $"this peer is behind (round {_peer.Round}, the run is at {newest}) and no peer of round {newest} gave a valid state in {SyncAttempts} attempts");
            }
            await Task.Delay(TimeSpan.FromMilliseconds(250 << attempt), _time, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>How many times <see cref="SyncAsync"/> reads the progress and tries its peers before it gives up.</summary>
    public const int SyncAttempts = 4;

    /// <summary>The other peers' progress entries that name parameters.</summary>
    private async Task<List<ProgressEntry>> ReadOthersAsync(CancellationToken cancellationToken)
    {
        var me = _node.PeerId.ToString();
        return [.. (await Matchmaker.ReadProgressAsync(_node.Dht, _options.RunId, cancellationToken).ConfigureAwait(false))
            .Where(p => p.PeerId != me && p.ParameterHash.Length == 64)];
    }

    /// <summary>One pass of <see cref="SyncAsync"/> on progress just read: true synced, false nothing to do, null every source failed.</summary>
    private async Task<(bool? Done, long Newest)> TrySyncAsync(List<ProgressEntry> others, CancellationToken cancellationToken)
    {
        if (others.Count == 0)
        {
            return (false, _peer.Round);
        }
        var newest = others.Max(p => p.Rounds);
        var current = others.Where(p => p.Rounds == newest).GroupBy(p => p.ParameterHash).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal).First();
        var mine = _peer.ParameterHash;
        var agreeing = others.Count(p => p.Rounds == _peer.Round && p.ParameterHash == mine) + 1;
        // at the same round the larger group wins, and between equal groups the smaller hash, so peers that
        // split (a round some of them averaged without the others) converge again instead of staying apart
        var keepMine = current.Key == mine || agreeing > current.Count()
            || (agreeing == current.Count() && string.CompareOrdinal(mine, current.Key) < 0);
        if (newest < _peer.Round || (newest == _peer.Round && keepMine))
        {
            return (false, newest);
        }
        foreach (var source in current.OrderBy(_ => Random.Shared.Next()))
        {
            try
            {
                using var state = await StateTransfer.DownloadAsync(_channels.Get(source.Address), _options.RunId, _peer.LayoutHash, _peer.Length, current.Key,
                    TimeSpan.FromMinutes(5), cancellationToken).ConfigureAwait(false);
                _peer.LoadState(state);
                Log.Synced(_logger, state.Round, source.PeerId, current.Key[..12]);
                await PublishProgressAsync(cancellationToken).ConfigureAwait(false);
                return (true, newest);
            }
            catch (Exception e) when (e is Grpc.Core.RpcException or InvalidDataException or IOException && !cancellationToken.IsCancellationRequested)
            {
                Log.SyncFailed(_logger, source.PeerId, e.Message);
            }
        }
        return (null, newest);
    }

    /// <summary>
    /// Ends a run of <paramref name="rounds"/> rounds so its peers finish with the same parameters: waits (up
    /// to <paramref name="wait"/>) for the live peers still in the last round, takes over the state the
    /// winning group holds when the last round split the peers (as <see cref="SyncAsync"/> decides), and keeps
    /// offering its own state until the others hold it too. Peers two or more rounds behind are not waited for.
    /// </summary>
    /// <returns>True when every live peer of the last round ended with this peer's parameters.</returns>
    public async Task<bool> FinishAsync(long rounds, TimeSpan wait, CancellationToken cancellationToken, TimeSpan? poll = null)
    {
        var started = _time.GetTimestamp();
        while (true)
        {
            var all = await ReadOthersAsync(cancellationToken).ConfigureAwait(false);
            var others = all.Where(p => p.Rounds >= rounds - 1).ToList();
            var finishing = others.Count(p => p.Rounds < rounds);
            if (finishing == 0)
            {
                if (others.All(p => p.ParameterHash == _peer.ParameterHash))
                {
                    Log.Finished(_logger, others.Count + 1, _peer.ParameterHash[..12]);
                    return true;
                }
                // takes the winners' state, or nothing if this peer is one; a failed download is retried at the next poll
                await TrySyncAsync(all, cancellationToken).ConfigureAwait(false);
            }
            if (_time.GetElapsedTime(started) >= wait)
            {
                Log.FinishedApart(_logger, finishing, others.Count(p => p.Rounds >= rounds && p.ParameterHash != _peer.ParameterHash), wait.TotalSeconds);
                return false;
            }
            await Task.Delay(poll ?? TimeSpan.FromMilliseconds(200), _time, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Runs one round: inner steps, matchmaking, all-reduce, outer step, progress.</summary>
    /// <param name="cancellationToken">Stops the round; the parameters stay at the last finished one.</param>
    /// <param name="evaluate">Measure the validation loss after the outer step and publish it with the progress.</param>
    public async Task<SwarmRoundReport> RunRoundAsync(CancellationToken cancellationToken, bool evaluate = false)
    {
        var round = _peer.Round;
        var clock = _time.GetTimestamp();
        // the inner steps are CPU work: off the caller's thread so several in-process peers (and gRPC) keep running
        using var honest = await Task.Run(() => _peer.InnerRound(cancellationToken), cancellationToken).ConfigureAwait(false);
        using var delta = TamperDelta is { } tamper ? tamper(honest) : honest.alias();
        var inner = _time.GetElapsedTime(clock);
        clock = _time.GetTimestamp();
        var servedBefore = _hub.BytesServed;
        var group = await Matchmaker.MatchAsync(_node.Dht, _options.RunId, round, _peer.LayoutHash, _options.MatchmakingWindow, _time, cancellationToken).ConfigureAwait(false);
        var result = await ButterflyAllReduce.RunAsync(_hub, _identity, group, delta, _options.AllReduce, _channels, cancellationToken).ConfigureAwait(false);
        using (result.Combined)
        {
            _peer.ApplyOuter(result.Combined);
        }
        // slices served to members that fetch after this returns count towards the next round's figure (the total is exact)
        var sent = result.BytesSent + (_hub.BytesServed - servedBefore);
        _partsSent += result.BytesSent;
        BytesReceived += result.BytesReceived;
        var loss = evaluate ? _peer.Evaluate() : (double?)null;
        await PublishProgressAsync(cancellationToken, loss).ConfigureAwait(false);
        var report = new SwarmRoundReport(round, group.Members.Count, result.ContributorsPerSlice, result.Unreachable, sent, result.BytesReceived,
            _peer.ParameterHash, inner, _time.GetElapsedTime(clock), loss);
        Log.RoundDone(_logger, round, group.Members.Count, result.Unreachable.Count, sent, report.ParameterHash[..12]);
        return report;
    }

    /// <inheritdoc/>
    public void Dispose() => _channels.Dispose();
}

internal static partial class Log
{
    [LoggerMessage(EventId = 500, Level = LogLevel.Information, Message = "Round {Round} averaged with {Members} peer(s) ({Unreachable} unreachable), {Bytes} bytes sent, parameters {Hash}")]
    internal static partial void RoundDone(ILogger logger, long round, int members, int unreachable, long bytes, string hash);

    [LoggerMessage(EventId = 501, Level = LogLevel.Information, Message = "Caught up: took over round {Round} state from {Peer} (parameters {Hash})")]
    internal static partial void Synced(ILogger logger, long round, string peer, string hash);

    [LoggerMessage(EventId = 503, Level = LogLevel.Information, Message = "Run finished: {Peers} peer(s) hold parameters {Hash}")]
    internal static partial void Finished(ILogger logger, int peers, string hash);

    [LoggerMessage(EventId = 504, Level = LogLevel.Warning, Message = "Run finished apart after {Seconds} s: {Finishing} peer(s) still in the last round, {Differing} with other parameters")]
    internal static partial void FinishedApart(ILogger logger, int finishing, int differing, double seconds);

    [LoggerMessage(EventId = 502, Level = LogLevel.Warning, Message = "State download from {Peer} failed: {Reason}")]
    internal static partial void SyncFailed(ILogger logger, string peer, string reason);

    [LoggerMessage(EventId = 505, Level = LogLevel.Warning, Message = "Round {Round}: the peers whose parameters would win could not hand them over; going on with this peer's own")]
    internal static partial void KeptSplitState(ILogger logger, long round);
}
