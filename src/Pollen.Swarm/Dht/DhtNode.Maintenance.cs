using Google.Protobuf;
using Pollen.Swarm.Protos;

namespace Pollen.Swarm.Dht;

public sealed partial class DhtNode
{
    private Task? _maintenance;

    /// <summary>
    /// Joins through <paramref name="initialPeers"/> ("host:port"): pings each, then looks up our own id,
    /// which fills the buckets near us and tells our neighbours about us. With no initial peers the node
    /// founds a new swarm.
    /// </summary>
    /// <exception cref="SwarmUnavailableException">Peers were given but none answered.</exception>
    public async Task JoinAsync(IReadOnlyCollection<string> initialPeers, CancellationToken cancellationToken)
    {
        if (initialPeers.Count == 0)
        {
            Log.Founding(_logger);
            return;
        }
        var answers = await Task.WhenAll(initialPeers.Select(a => PingAsync(a, cancellationToken))).ConfigureAwait(false);
        var answered = answers.Count(a => a is not null);
        if (answered == 0)
        {
            var reasons = initialPeers.Select(a => LastFailure(a) is { } why ? $"{a}: {why}" : a);
            throw new SwarmUnavailableException($"none of the initial peers answered ({string.Join("; ", reasons)}); check the addresses, or start without --initial-peers to found a new swarm");
        }
        await LookupAsync(PeerId.Id, findValue: false, cancellationToken).ConfigureAwait(false);
        Log.Joined(_logger, answered, initialPeers.Count, Routing.Count);
    }

    /// <summary>Starts the background loop: expiry, bucket refresh and republishing, on the injected clock.</summary>
    public void StartMaintenance() => _maintenance ??= MaintainAsync(_stopping.Token);

    private async Task MaintainAsync(CancellationToken cancellationToken)
    {
        var period = Min(_options.RefreshInterval, _options.RepublishInterval);
        var lastRefresh = _time.GetUtcNow();
        var lastRepublish = _time.GetUtcNow();
        while (!cancellationToken.IsCancellationRequested)
        {
            await Task.Delay(period, _time, cancellationToken).ConfigureAwait(false);
            try
            {
                var now = _time.GetUtcNow();
                Records.RemoveExpired();
                var buckets = 0;
                var records = 0;
                if (now - lastRefresh >= _options.RefreshInterval)
                {
                    lastRefresh = now;
                    buckets = await RefreshBucketsAsync(cancellationToken).ConfigureAwait(false);
                }
                if (now - lastRepublish >= _options.RepublishInterval)
                {
                    lastRepublish = now;
                    records = await RepublishAsync(cancellationToken).ConfigureAwait(false);
                }
                Log.Maintenance(_logger, records, buckets);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Log.LoopFailed(_logger, "maintenance", e);
            }
        }
    }

    /// <summary>Looks up a random id in every bucket that has seen no lookup for a refresh interval.</summary>
    public async Task<int> RefreshBucketsAsync(CancellationToken cancellationToken)
    {
        var stale = Routing.StaleBuckets(_time.GetUtcNow() - _options.RefreshInterval);
        foreach (var index in stale)
        {
            await LookupAsync(PeerId.Id.RandomWithCommonPrefix(index), findValue: false, cancellationToken).ConfigureAwait(false);
        }
        return stale.Count;
    }

    /// <summary>
    /// Re-stores every record this node holds on the k peers now closest to its key, so records survive
    /// replicas leaving and reach peers that joined near the key. Entries keep their expiration and
    /// signature (a replica cannot extend what it did not sign); the publisher refreshes by writing anew.
    /// </summary>
    /// <remarks>Every replica republishes every record, costing k² stores per record per interval in the
    /// worst case; the store ignores identical entries, and the interval is long. Kademlia's "skip if
    /// someone republished recently" optimisation can come later if this shows up in traffic.</remarks>
    public async Task<int> RepublishAsync(CancellationToken cancellationToken)
    {
        var snapshot = Records.Snapshot();
        foreach (var (key, entries) in snapshot)
        {
            var lookup = await LookupAsync(key, findValue: false, cancellationToken).ConfigureAwait(false);
            foreach (var chunk in entries.Chunk(MaxEntriesPerStore))
            {
                var request = new StoreRequest { Sender = _selfInfo, Key = ByteString.CopyFrom(key.ToByteArray()) };
                request.Entries.AddRange(chunk.Select(ToProto));
                await Task.WhenAll(lookup.Closest.Select(c => CallAsync(c.Address, c, "Store",
                    (client, options) => client.StoreAsync(request, options), r => r.Responder, cancellationToken))).ConfigureAwait(false);
            }
        }
        return snapshot.Count;
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;
}
