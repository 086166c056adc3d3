using Pollen.Inference.Client;
using Pollen.Swarm.Dht;

namespace Pollen.Inference.Routing;

/// <summary>
/// The servers of one model as announced in the DHT (<see cref="ModelServers"/>), cached for a short
/// while so that opening many sessions does not cost a lookup each. Servers announcing another
/// architecture than the client's (a different <see cref="ServerAnnouncement.ConfigFingerprint"/>) are
/// left out.
/// </summary>
public sealed class DhtServerDirectory : IServerDirectory, IDisposable
{
    private readonly DhtNode _node;
    private readonly string _modelId;
    private readonly string _fingerprint;
    private readonly int _blockCount;
    private readonly TimeSpan _cacheFor;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private IReadOnlyList<ServerSpan> _cached = [];
    private DateTimeOffset _fetched = DateTimeOffset.MinValue;

    /// <summary>A directory of <paramref name="modelId"/>'s servers whose config fingerprint is <paramref name="fingerprint"/>.</summary>
    public DhtServerDirectory(DhtNode node, string modelId, string fingerprint, int blockCount, TimeSpan? cacheFor = null, TimeProvider? time = null)
    {
        _node = node;
        _modelId = ModelServers.CheckModelId(modelId);
        _fingerprint = fingerprint;
        _blockCount = blockCount;
        _cacheFor = cacheFor ?? TimeSpan.FromSeconds(10);
        _time = time ?? TimeProvider.System;
    }

    /// <inheritdoc/>
    public string Description => $"the DHT ({ModelServers.Key(_modelId)})";

    /// <inheritdoc/>
    public async Task<IReadOnlyList<ServerSpan>> GetServersAsync(bool refresh, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var now = _time.GetUtcNow();
            if (!refresh && now - _fetched < _cacheFor)
            {
                return _cached;
            }
            var announced = await ModelServers.ListAsync(_node, _modelId, _blockCount, cancellationToken).ConfigureAwait(false);
            _cached = [.. announced.Where(a => a.ConfigFingerprint == _fingerprint).Select(a => new ServerSpan(a.Address, a.StartBlock, a.EndBlock)
            {
                PeerId = a.PeerId,
                Throughput = a.Throughput,
                FreeCacheTokens = a.FreeCacheTokens,
            })];
            _fetched = now;
            return _cached;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _gate.Dispose();
}
