using Google.Protobuf;
using Pollen.Swarm.Identity;
using Pollen.Swarm.Protos;
using Pollen.Swarm.Records;
using RecordEntry = Pollen.Swarm.Records.RecordEntry;

namespace Pollen.Swarm.Dht;

/// <summary>The outcome of a store through the DHT.</summary>
/// <param name="Replicas">Peers (this node included) that hold the entry now.</param>
/// <param name="Refusals">Why the other asked peers refused it (e.g. a later entry already held).</param>
/// <param name="Hops">Rounds of the lookup that found the k closest peers.</param>
public sealed record StoreSummary(int Replicas, IReadOnlyList<StoreOutcome> Refusals, int Hops);

public sealed partial class DhtNode
{
    /// <summary>Stores an open (unsigned) entry under <paramref name="key"/>.</summary>
    public Task<StoreSummary> PutAsync(string key, string subkey, byte[] value, DateTimeOffset expiration, CancellationToken cancellationToken) =>
        StoreAsync(DhtId.ForKey(key), new RecordEntry(subkey, value, expiration), cancellationToken);

    /// <summary>Stores an entry under the subkey this node owns (its peer id, plus <paramref name="suffix"/>), signed.</summary>
    public Task<StoreSummary> PutOwnAsync(string key, byte[] value, DateTimeOffset expiration, CancellationToken cancellationToken, string? suffix = null)
    {
        var id = DhtId.ForKey(key);
        var entry = RecordEntry.CreateSigned(Identity, id, RecordOwnership.SubkeyFor(PeerId, suffix), value, expiration);
        return StoreAsync(id, entry, cancellationToken);
    }

    /// <summary>Every unexpired entry of <paramref name="key"/> the swarm holds (empty when none).</summary>
    public async Task<LookupResult> GetAsync(string key, CancellationToken cancellationToken) =>
        await GetAsync(DhtId.ForKey(key), cancellationToken).ConfigureAwait(false);

    /// <summary>Every unexpired entry of key id <paramref name="key"/> the swarm holds, merged from up to a few replicas and this node.</summary>
    public async Task<LookupResult> GetAsync(DhtId key, CancellationToken cancellationToken)
    {
        var result = await LookupAsync(key, findValue: true, cancellationToken).ConfigureAwait(false);
        var merged = new Dictionary<string, RecordEntry>();
        Merge(merged, result.Entries);
        Merge(merged, Records.Get(key));
        return result with { Entries = [.. merged.Values.OrderBy(e => e.Subkey, StringComparer.Ordinal)] };
    }

    /// <summary>
    /// Stores <paramref name="entry"/> on the k peers closest to <paramref name="key"/> (this node
    /// included when it is among them). The entry is validated here first, so a local mistake fails with
    /// the message a peer would give.
    /// </summary>
    /// <exception cref="RecordValidationException">The entry is invalid, or every asked peer refused it.</exception>
    /// <exception cref="SwarmUnavailableException">No peer could be reached and this node is not a replica.</exception>
    public async Task<StoreSummary> StoreAsync(DhtId key, RecordEntry entry, CancellationToken cancellationToken)
    {
        RecordValidator.Validate(key, entry, _time.GetUtcNow(), Records.Limits).ThrowIfRefused();
        var lookup = await LookupAsync(key, findValue: false, cancellationToken).ConfigureAwait(false);
        var replicas = 0;
        var refusals = new List<StoreOutcome>();
        // the k closest peers, this node included when it is one of them
        var selfDistance = PeerId.Id.Xor(key);
        var selfIsReplica = lookup.Closest.Count < K || selfDistance < lookup.Closest[^1].Id.Xor(key);
        var targets = selfIsReplica ? lookup.Closest.Take(K - 1).ToList() : lookup.Closest;
        if (selfIsReplica)
        {
            var local = Records.Store(key, entry);
            if (local.IsAccepted)
            {
                replicas++;
            }
            else
            {
                refusals.Add(local);
            }
        }
        var request = new StoreRequest { Sender = _selfInfo, Key = ByteString.CopyFrom(key.ToByteArray()) };
        request.Entries.Add(ToProto(entry));
        var responses = await Task.WhenAll(targets.Select(c => CallAsync(c.Address, c, "Store",
            (client, options) => client.StoreAsync(request, options), r => r.Responder, cancellationToken))).ConfigureAwait(false);
        foreach (var response in responses)
        {
            var result = response?.Results.FirstOrDefault();
            if (result is null)
            {
                continue;
            }
            if (result.Error == StoreError.None)
            {
                replicas++;
            }
            else
            {
                refusals.Add(new StoreOutcome((RecordError)(int)result.Error, result.Message));
            }
        }
        if (replicas == 0)
        {
            if (refusals.Count > 0)
            {
                refusals[0].ThrowIfRefused();
            }
            throw new SwarmUnavailableException($"no peer stored key {key.ToString()[..12]}…: none of the {targets.Count} closest peers answered; check the connection or --initial-peers");
        }
        return new StoreSummary(replicas, refusals, lookup.Hops);
    }
}
