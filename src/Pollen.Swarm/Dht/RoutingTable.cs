using Pollen.Swarm.Identity;

namespace Pollen.Swarm.Dht;

/// <summary>What <see cref="RoutingTable.Touch"/> did with a contact.</summary>
public enum TouchResult
{
    /// <summary>The contact is ourselves; nothing changed.</summary>
    Self,

    /// <summary>The contact was new and its bucket had room.</summary>
    Added,

    /// <summary>The contact was known; it moved to the most-recently-seen end.</summary>
    Updated,

    /// <summary>The bucket is full; the contact waits in the replacement cache and the least recently
    /// seen contact of the bucket should be pinged (and removed if it does not answer).</summary>
    BucketFull,

    /// <summary>The peer is known at another address. The known address keeps its place until a ping
    /// to it fails: a restarted peer moves after one failed ping, while someone merely claiming the
    /// peer's id from elsewhere cannot redirect it.</summary>
    AddressConflict,
}

/// <summary>
/// Kademlia's routing table: 256 k-buckets, bucket <c>i</c> holding peers whose id shares exactly
/// <c>i</c> leading bits with ours, each ordered from least to most recently seen.
/// </summary>
/// <remarks>
/// A full bucket never drops a live old contact for a new one: old contacts that have stayed up are the
/// likeliest to stay up, and preferring them makes the table resistant to floods of fresh ids. The
/// newcomer goes to a per-bucket replacement cache (at most k, newest kept) and is promoted when a
/// contact is removed after failing a call or a ping. A flat array of buckets rather than a split tree
/// keeps the code small; buckets far from our id simply stay empty.
/// </remarks>
public sealed class RoutingTable
{
    private readonly List<Contact>[] _buckets = new List<Contact>[DhtId.Bits];
    private readonly List<Contact>[] _replacements = new List<Contact>[DhtId.Bits];
    private readonly DateTimeOffset[] _lastLookup = new DateTimeOffset[DhtId.Bits];
    private readonly Lock _lock = new();

    /// <summary>Creates an empty table for the node with id <paramref name="self"/>.</summary>
    public RoutingTable(DhtId self, int bucketSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bucketSize, 1);
        Self = self;
        BucketSize = bucketSize;
        for (var i = 0; i < DhtId.Bits; i++)
        {
            _buckets[i] = [];
            _replacements[i] = [];
        }
    }

    /// <summary>Our own id.</summary>
    public DhtId Self { get; }

    /// <summary>k: contacts per bucket.</summary>
    public int BucketSize { get; }

    /// <summary>Number of contacts in all buckets.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _buckets.Sum(b => b.Count);
            }
        }
    }

    /// <summary>Index of the bucket <paramref name="id"/> belongs in (its common prefix length with us).</summary>
    public int BucketIndex(DhtId id) => Math.Min(Self.CommonPrefixLength(id), DhtId.Bits - 1);

    /// <summary>Records that <paramref name="contact"/> was seen alive just now.</summary>
    /// <param name="contact">The peer.</param>
    /// <param name="leastRecentlySeen">When the bucket is full: the contact to ping before evicting.</param>
    public TouchResult Touch(Contact contact, out Contact? leastRecentlySeen)
    {
        leastRecentlySeen = null;
        if (contact.Id == Self)
        {
            return TouchResult.Self;
        }
        var index = BucketIndex(contact.Id);
        lock (_lock)
        {
            var bucket = _buckets[index];
            var at = bucket.FindIndex(c => c.PeerId == contact.PeerId);
            if (at >= 0)
            {
                var known = bucket[at];
                if (known.Address != contact.Address)
                {
                    leastRecentlySeen = known;
                    return TouchResult.AddressConflict;
                }
                bucket.RemoveAt(at);
                bucket.Add(contact);
                return TouchResult.Updated;
            }
            if (bucket.Count < BucketSize)
            {
                bucket.Add(contact);
                return TouchResult.Added;
            }
            var replacements = _replacements[index];
            replacements.RemoveAll(c => c.PeerId == contact.PeerId);
            replacements.Add(contact);
            if (replacements.Count > BucketSize)
            {
                replacements.RemoveAt(0);
            }
            leastRecentlySeen = bucket[0];
            return TouchResult.BucketFull;
        }
    }

    /// <summary>Removes a peer that failed to answer and promotes the newest replacement, if any.</summary>
    /// <returns>True when the peer was in the table.</returns>
    public bool Remove(PeerId peer)
    {
        var index = BucketIndex(peer.Id);
        lock (_lock)
        {
            _replacements[index].RemoveAll(c => c.PeerId == peer);
            var bucket = _buckets[index];
            var at = bucket.FindIndex(c => c.PeerId == peer);
            if (at < 0)
            {
                return false;
            }
            bucket.RemoveAt(at);
            var replacements = _replacements[index];
            if (replacements.Count > 0)
            {
                bucket.Add(replacements[^1]);
                replacements.RemoveAt(replacements.Count - 1);
            }
            return true;
        }
    }

    /// <summary>True when the peer is in a bucket.</summary>
    public bool Contains(PeerId peer)
    {
        var index = BucketIndex(peer.Id);
        lock (_lock)
        {
            return _buckets[index].Exists(c => c.PeerId == peer);
        }
    }

    /// <summary>Up to <paramref name="count"/> contacts closest to <paramref name="target"/>, closest first.</summary>
    public IReadOnlyList<Contact> Closest(DhtId target, int count, Func<Contact, bool>? include = null)
    {
        List<Contact> all;
        lock (_lock)
        {
            all = [.. _buckets.SelectMany(b => b)];
        }
        return [.. all.Where(c => include is null || include(c)).OrderBy(c => c.Id.Xor(target)).Take(count)];
    }

    /// <summary>Every contact in the table.</summary>
    public IReadOnlyList<Contact> All()
    {
        lock (_lock)
        {
            return [.. _buckets.SelectMany(b => b)];
        }
    }

    /// <summary>Notes that a lookup went through bucket <paramref name="index"/>, which makes it fresh.</summary>
    public void MarkLookup(DhtId target, DateTimeOffset now)
    {
        lock (_lock)
        {
            _lastLookup[BucketIndex(target)] = now;
        }
    }

    /// <summary>
    /// Buckets that need a refresh lookup: every index up to the deepest non-empty bucket (past it, no
    /// peer can exist that we would not also find by looking up our own id) with no lookup since
    /// <paramref name="staleBefore"/>.
    /// </summary>
    public IReadOnlyList<int> StaleBuckets(DateTimeOffset staleBefore)
    {
        lock (_lock)
        {
            var deepest = Array.FindLastIndex(_buckets, b => b.Count > 0);
            return [.. Enumerable.Range(0, deepest + 1).Where(i => _lastLookup[i] < staleBefore)];
        }
    }
}
