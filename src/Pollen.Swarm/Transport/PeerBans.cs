namespace Pollen.Swarm.Transport;

/// <summary>
/// Temporary bans for peers that fail calls: the n-th consecutive failure bans the address for
/// <c>base × 2^(n−1)</c>, capped; a success clears the record. Banned peers are skipped by lookups, so a
/// dead or overloaded peer costs one failed call per ban period instead of one per lookup.
/// </summary>
/// <remarks>
/// DHT calls are not retried against the same peer: a lookup has other peers to ask, and waiting out a
/// retry would slow every lookup that touches a dead node. The ban is the backoff. Keyed by address,
/// since that is what fails; a restarted peer on a new port is not affected by its old ban.
/// </remarks>
public sealed class PeerBans
{
    private readonly Dictionary<string, (int Failures, DateTimeOffset Until)> _failures = [];
    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private readonly TimeSpan _base;
    private readonly TimeSpan _max;

    /// <summary>Creates an empty ban list.</summary>
    public PeerBans(TimeProvider time, TimeSpan baseDuration, TimeSpan maxDuration)
    {
        _time = time;
        _base = baseDuration;
        _max = maxDuration;
    }

    /// <summary>True while <paramref name="address"/> is banned.</summary>
    public bool IsBanned(string address)
    {
        lock (_lock)
        {
            return _failures.TryGetValue(address, out var f) && f.Until > _time.GetUtcNow();
        }
    }

    /// <summary>Records a failed call and returns how long the address is now banned for.</summary>
    public TimeSpan RecordFailure(string address)
    {
        lock (_lock)
        {
            var failures = _failures.TryGetValue(address, out var f) ? f.Failures + 1 : 1;
            var ticks = _base.Ticks * Math.Pow(2, Math.Min(failures - 1, 30));
            var duration = ticks >= _max.Ticks ? _max : TimeSpan.FromTicks((long)ticks);
            _failures[address] = (failures, _time.GetUtcNow() + duration);
            return duration;
        }
    }

    /// <summary>Records a successful call: the address is no longer banned.</summary>
    public void RecordSuccess(string address)
    {
        lock (_lock)
        {
            _failures.Remove(address);
        }
    }

    /// <summary>Number of addresses currently banned.</summary>
    public int BannedCount
    {
        get
        {
            lock (_lock)
            {
                var now = _time.GetUtcNow();
                return _failures.Values.Count(f => f.Until > now);
            }
        }
    }
}
