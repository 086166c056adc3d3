using Pollen.Model.Layers;

namespace Pollen.Inference.Server;

/// <summary>
/// One inference session on a block server: its sub-span, its reservation of the cache budget and its
/// <see cref="KvCache"/>. The cache is touched only on the compute thread; the stream handler tracks the
/// tokens it has accepted (<see cref="AcceptedTokens"/>) so it can refuse a step that would overflow
/// before queueing any work.
/// </summary>
internal sealed class BlockSession
{
    private readonly CancellationTokenSource _expired;

    internal BlockSession(long id, int start, int end, int maxLength, int batchSize, CancellationTokenSource expired, DateTimeOffset now)
    {
        Id = id;
        Start = start;
        End = end;
        MaxLength = maxLength;
        BatchSize = batchSize;
        _expired = expired;
        LastUsed = now;
        Cache = new KvCache(maxLength);
    }

    internal long Id { get; }

    internal int Start { get; }

    internal int End { get; }

    internal int MaxLength { get; }

    internal int BatchSize { get; }

    /// <summary>Tokens reserved in the server's budget.</summary>
    internal long ReservedTokens => (long)MaxLength * BatchSize;

    /// <summary>Tokens of steps accepted so far (queued or done); only the stream handler changes it.</summary>
    internal int AcceptedTokens { get; set; }

    /// <summary>
    /// When the last step arrived, in <see cref="Environment.TickCount64"/> milliseconds (the batching window
    /// is a latency matter on the system clock, not a timeout); read and written under the server's lock.
    /// </summary>
    internal long LastStepTicks { get; set; } = long.MinValue / 2;

    /// <summary>
    /// The batched forward its last one-token step ran in (a batch of one included), or 0 after any other
    /// step: sessions that ran together last time are expected together next time. Read and written
    /// under the server's lock.
    /// </summary>
    internal long Cohort { get; set; }

    /// <summary>How many sessions ran in <see cref="Cohort"/>; under the server's lock.</summary>
    internal int CohortSize { get; set; }

    /// <summary>Time of the last step or open; read and written under the server's lock.</summary>
    internal DateTimeOffset LastUsed { get; set; }

    /// <summary>Set once the session is closed or expired; read and written under the server's lock.</summary>
    internal bool Closed { get; set; }

    /// <summary>True when the session ended because it was idle too long.</summary>
    internal bool Expired { get; private set; }

    /// <summary>The session's cache; used and disposed on the compute thread only.</summary>
    internal KvCache Cache { get; }

    internal void Expire()
    {
        Expired = true;
        _expired.Cancel();
    }
}
