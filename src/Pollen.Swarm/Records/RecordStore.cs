using Pollen.Swarm.Identity;

namespace Pollen.Swarm.Records;

/// <summary>
/// The records this node holds, as <c>key id → {subkey → entry}</c>. Every write is validated
/// (<see cref="RecordValidator"/>); for a subkey, the entry with the later expiration wins, so replays
/// of older entries are harmless and republishing is idempotent. Expired entries are invisible at once
/// and are dropped by <see cref="RemoveExpired"/> or on the next touch of their key.
/// </summary>
/// <remarks>
/// One lock over a dictionary: the store is touched a few times per RPC and the work under the lock is
/// small, so a finer scheme would buy nothing measurable. Time comes only from the injected
/// <see cref="TimeProvider"/>, so expiry is tested without waiting.
/// </remarks>
public sealed class RecordStore
{
    private readonly Dictionary<DhtId, Dictionary<string, RecordEntry>> _records = [];
    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private int _count;

    /// <summary>Creates an empty store.</summary>
    public RecordStore(TimeProvider time, RecordLimits limits)
    {
        _time = time;
        Limits = limits;
    }

    /// <summary>The limits every write is checked against.</summary>
    public RecordLimits Limits { get; }

    /// <summary>Number of entries held, expired ones included until they are removed.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _count;
            }
        }
    }

    /// <summary>Validates and stores one entry.</summary>
    public StoreOutcome Store(DhtId key, RecordEntry entry)
    {
        var now = _time.GetUtcNow();
        var outcome = RecordValidator.Validate(key, entry, now, Limits);
        if (!outcome.IsAccepted)
        {
            return outcome;
        }
        if (!RecordOwnership.TryGetOwner(entry.Subkey, out _) && (entry.Signature is not null || entry.SignerPublicKey is not null))
        {
            // a signature on an open subkey proves nothing; do not keep or forward it
            entry = entry with { Signature = null, SignerPublicKey = null };
        }
        lock (_lock)
        {
            if (!_records.TryGetValue(key, out var subkeys))
            {
                subkeys = [];
                _records[key] = subkeys;
            }
            PurgeExpired(subkeys, now);
            if (subkeys.TryGetValue(entry.Subkey, out var existing))
            {
                if (existing.SameContent(entry))
                {
                    return StoreOutcome.Accepted;
                }
                if (existing.ExpirationUnixMs >= entry.ExpirationUnixMs)
                {
                    return new(RecordError.Outdated, $"subkey '{entry.Subkey}' already holds an entry expiring at {existing.Expiration:O}, not earlier than this one");
                }
                subkeys[entry.Subkey] = entry;
                return StoreOutcome.Accepted;
            }
            if (subkeys.Count >= Limits.MaxSubkeysPerKey)
            {
                return new(RecordError.StoreFull, $"this key already has {subkeys.Count} subkeys, the most a node keeps");
            }
            if (_count >= Limits.MaxEntries && RemoveExpiredLocked(now) == 0)
            {
                return new(RecordError.StoreFull, $"this node already stores {_count} entries, its cap");
            }
            subkeys[entry.Subkey] = entry;
            _count++;
            return StoreOutcome.Accepted;
        }
    }

    /// <summary>Every unexpired entry of <paramref name="key"/> (empty when none).</summary>
    public IReadOnlyList<RecordEntry> Get(DhtId key)
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            if (!_records.TryGetValue(key, out var subkeys))
            {
                return [];
            }
            PurgeExpired(subkeys, now);
            if (subkeys.Count == 0)
            {
                _records.Remove(key);
                return [];
            }
            return [.. subkeys.Values];
        }
    }

    /// <summary>Every unexpired record, for republishing.</summary>
    public IReadOnlyList<(DhtId Key, IReadOnlyList<RecordEntry> Entries)> Snapshot()
    {
        RemoveExpired();
        lock (_lock)
        {
            return [.. _records.Select(r => (r.Key, (IReadOnlyList<RecordEntry>)[.. r.Value.Values]))];
        }
    }

    /// <summary>Drops every expired entry; returns how many.</summary>
    public int RemoveExpired()
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            return RemoveExpiredLocked(now);
        }
    }

    private int RemoveExpiredLocked(DateTimeOffset now)
    {
        var removed = 0;
        foreach (var (key, subkeys) in _records)
        {
            removed += PurgeExpired(subkeys, now);
            if (subkeys.Count == 0)
            {
                _records.Remove(key);
            }
        }
        return removed;
    }

    private int PurgeExpired(Dictionary<string, RecordEntry> subkeys, DateTimeOffset now)
    {
        var removed = 0;
        foreach (var (subkey, entry) in subkeys)
        {
            if (entry.Expiration <= now)
            {
                subkeys.Remove(subkey);
                removed++;
            }
        }
        _count -= removed;
        return removed;
    }
}
