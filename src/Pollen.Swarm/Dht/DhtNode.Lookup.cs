using Google.Protobuf;
using Pollen.Swarm.Identity;
using Pollen.Swarm.Protos;
using Pollen.Swarm.Records;
using RecordEntry = Pollen.Swarm.Records.RecordEntry;

namespace Pollen.Swarm.Dht;

/// <summary>The result of an iterative lookup.</summary>
/// <param name="Closest">Up to k peers that answered, closest to the target first.</param>
/// <param name="Entries">For a value lookup: the merged entries found (latest expiration per subkey).</param>
/// <param name="Hops">Rounds of parallel requests the lookup took.</param>
/// <param name="Messages">Requests sent.</param>
public sealed record LookupResult(IReadOnlyList<Contact> Closest, IReadOnlyList<RecordEntry> Entries, int Hops, int Messages);

public sealed partial class DhtNode
{
    /// <summary>Value lookups stop after the round in which this many peers returned entries.</summary>
    private const int ValueQuorum = 3;

    /// <summary>The k peers closest to <paramref name="target"/> that answer.</summary>
    public Task<LookupResult> FindNodeAsync(DhtId target, CancellationToken cancellationToken) =>
        LookupAsync(target, findValue: false, cancellationToken);

    /// <summary>
    /// Kademlia's iterative lookup. Each round asks the α closest not-yet-asked peers of the shortlist in
    /// parallel and merges what they return; when a round brings nobody closer, the next round asks all
    /// remaining peers among the k closest at once, and the lookup ends when the k closest have all been
    /// asked. The round count is the hop count: O(log N) with high probability.
    /// </summary>
    /// <remarks>
    /// A value lookup also stops after the round in which <see cref="ValueQuorum"/> peers have returned
    /// entries, merging them per subkey (latest expiration wins). Stopping at the first holder would be
    /// faster but could miss subkeys written by different peers through different replica sets; asking
    /// all k would be thorough but cost k messages per read.
    /// </remarks>
    private async Task<LookupResult> LookupAsync(DhtId target, bool findValue, CancellationToken cancellationToken)
    {
        Routing.MarkLookup(target, _time.GetUtcNow());
        var shortlist = new Dictionary<PeerId, Contact>();
        foreach (var c in Routing.Closest(target, K, c => !Bans.IsBanned(c.Address)))
        {
            shortlist[c.PeerId] = c;
        }
        var asked = new HashSet<PeerId>();
        var answered = new HashSet<PeerId>();
        var entries = new Dictionary<string, RecordEntry>();
        var holders = 0;
        var hops = 0;
        var messages = 0;
        var sweep = false;
        DhtId? best = null;

        while (!cancellationToken.IsCancellationRequested)
        {
            var topK = shortlist.Values.Where(c => !asked.Contains(c.PeerId) || answered.Contains(c.PeerId))
                .OrderBy(c => c.Id.Xor(target)).Take(K).ToList();
            var pending = topK.Where(c => !asked.Contains(c.PeerId)).ToList();
            if (pending.Count == 0)
            {
                break;
            }
            var batch = sweep ? pending : pending.Take(_options.Alpha).ToList();
            hops++;
            messages += batch.Count;
            foreach (var c in batch)
            {
                asked.Add(c.PeerId);
            }
            var replies = await Task.WhenAll(batch.Select(c => QueryAsync(c, target, findValue, cancellationToken))).ConfigureAwait(false);
            for (var i = 0; i < batch.Count; i++)
            {
                var (ok, closest, found) = replies[i];
                if (!ok)
                {
                    shortlist.Remove(batch[i].PeerId);
                    continue;
                }
                answered.Add(batch[i].PeerId);
                foreach (var info in closest)
                {
                    var contact = ToContact(info);
                    if (contact is not null && contact.PeerId != PeerId && !Bans.IsBanned(contact.Address))
                    {
                        shortlist.TryAdd(contact.PeerId, contact);
                    }
                }
                if (found.Count > 0)
                {
                    holders++;
                    Merge(entries, found);
                }
            }
            if (findValue && holders >= ValueQuorum)
            {
                break;
            }
            var closestNow = shortlist.Values.Where(c => !asked.Contains(c.PeerId) || answered.Contains(c.PeerId))
                .Select(c => (DhtId?)c.Id.Xor(target)).Min();
            if (closestNow is not null && (best is null || closestNow < best))
            {
                best = closestNow;
                sweep = false;
            }
            else
            {
                sweep = true;
            }
        }
        cancellationToken.ThrowIfCancellationRequested();
        var result = shortlist.Values.Where(c => answered.Contains(c.PeerId)).OrderBy(c => c.Id.Xor(target)).Take(K).ToList();
        return new LookupResult(result, [.. entries.Values], hops, messages);
    }

    private async Task<(bool Ok, IReadOnlyList<PeerInfo> Closest, IReadOnlyList<RecordEntry> Entries)> QueryAsync(
        Contact contact, DhtId target, bool findValue, CancellationToken cancellationToken)
    {
        var targetBytes = ByteString.CopyFrom(target.ToByteArray());
        if (!findValue)
        {
            var nodes = await CallAsync(contact.Address, contact, "FindNode",
                (client, options) => client.FindNodeAsync(new FindNodeRequest { Sender = _selfInfo, Target = targetBytes }, options),
                r => r.Responder, cancellationToken).ConfigureAwait(false);
            return nodes is null ? (false, [], []) : (true, nodes.Closest, []);
        }
        var value = await CallAsync(contact.Address, contact, "FindValue",
            (client, options) => client.FindValueAsync(new FindValueRequest { Sender = _selfInfo, Key = targetBytes }, options),
            r => r.Responder, cancellationToken).ConfigureAwait(false);
        if (value is null)
        {
            return (false, [], []);
        }
        // entries from a peer are untrusted: keep only those that validate here and now
        var now = _time.GetUtcNow();
        var valid = value.Entries.Select(FromProto)
            .Where(e => e is not null && RecordValidator.Validate(target, e, now, Records.Limits).IsAccepted)
            .Select(e => e!)
            .ToList();
        return (true, value.Closest, valid);
    }

    private static void Merge(Dictionary<string, RecordEntry> into, IEnumerable<RecordEntry> entries)
    {
        foreach (var e in entries)
        {
            if (!into.TryGetValue(e.Subkey, out var existing) || existing.ExpirationUnixMs < e.ExpirationUnixMs)
            {
                into[e.Subkey] = e;
            }
        }
    }

    internal static RecordEntry? FromProto(Protos.RecordEntry entry)
    {
        DateTimeOffset expiration;
        try
        {
            expiration = DateTimeOffset.FromUnixTimeMilliseconds(entry.ExpirationUnixMs);
        }
        catch (ArgumentOutOfRangeException)
        {
            return null;
        }
        return new RecordEntry(
            entry.Subkey,
            entry.Value.ToByteArray(),
            expiration,
            entry.Signature.IsEmpty ? null : entry.Signature.ToByteArray(),
            entry.SignerPublicKey.IsEmpty ? null : entry.SignerPublicKey.ToByteArray());
    }

    internal static Protos.RecordEntry ToProto(RecordEntry entry) => new()
    {
        Subkey = entry.Subkey,
        Value = ByteString.CopyFrom(entry.Value),
        ExpirationUnixMs = entry.ExpirationUnixMs,
        Signature = entry.Signature is null ? ByteString.Empty : ByteString.CopyFrom(entry.Signature),
        SignerPublicKey = entry.SignerPublicKey is null ? ByteString.Empty : ByteString.CopyFrom(entry.SignerPublicKey),
    };
}
