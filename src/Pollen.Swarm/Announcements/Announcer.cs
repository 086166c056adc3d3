using Microsoft.Extensions.Logging;
using Pollen.Swarm.Dht;

namespace Pollen.Swarm.Announcements;

/// <summary>
/// Keeps a node's announcement alive: publishes at once, then every <c>ttl / 3</c> on the injected clock,
/// each time with the current content (throughput and free memory change). Two missed refreshes still
/// leave the entry valid; a node that dies drops out within one TTL.
/// </summary>
public sealed class Announcer : IAsyncDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _firstAttempt = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly SemaphoreSlim _poke = new(0, 1);
    private readonly Task _loop;

    private Announcer(Func<CancellationToken, Task> publish, TimeSpan ttl, TimeProvider time, ILogger logger)
    {
        Ttl = ttl;
        _loop = RunAsync(publish, time, logger, _stopping.Token);
    }

    /// <summary>How long each published announcement stays valid.</summary>
    public TimeSpan Ttl { get; }

    /// <summary>Completes once the first publication has been attempted (whether or not it succeeded).</summary>
    public Task FirstAttempt => _firstAttempt.Task;

    /// <summary>Publishes again now rather than at the next refresh (the content changed).</summary>
    public void Poke()
    {
        try
        {
            if (_poke.CurrentCount == 0)
            {
                _poke.Release();
            }
        }
        catch (SemaphoreFullException)
        {
            // already poked
        }
    }

    /// <summary>Number of announcements published so far.</summary>
    public int Published => Volatile.Read(ref _published);

    private int _published;

    /// <summary>Starts announcing; <paramref name="current"/> is called before every publication.</summary>
    public static Announcer Start(DhtNode node, Func<PeerAnnouncement> current, TimeSpan ttl, TimeProvider time, ILogger logger) =>
        Start(ct => PeerDirectory.AnnounceAsync(node, current(), ttl, time, ct), ttl, time, logger);

    /// <summary>
    /// Starts calling <paramref name="publish"/> at once and then every <c>ttl / 3</c>; it should store
    /// records valid for <paramref name="ttl"/> (for subsystems announcing more than the peer directory entry).
    /// </summary>
    public static Announcer Start(Func<CancellationToken, Task> publish, TimeSpan ttl, TimeProvider time, ILogger logger)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ttl, TimeSpan.FromSeconds(3));
        return new Announcer(publish, ttl, time, logger);
    }

    private async Task RunAsync(Func<CancellationToken, Task> publish, TimeProvider time, ILogger logger, CancellationToken cancellationToken)
    {
        await Task.Yield();
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await publish(cancellationToken).ConfigureAwait(false);
                Interlocked.Increment(ref _published);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Log.LoopFailed(logger, "announce", e);
            }
            _firstAttempt.TrySetResult();
            using var wake = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var poked = _poke.WaitAsync(wake.Token);
            await Task.WhenAny(Task.Delay(Ttl / 3, time, wake.Token), poked).ConfigureAwait(false);
            await wake.CancelAsync().ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    /// <summary>Stops refreshing; the last announcement expires on its own.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        _firstAttempt.TrySetResult();
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        _stopping.Dispose();
        _poke.Dispose();
    }
}
