namespace Pollen.Inference.Server;

/// <summary>Options of a block server.</summary>
public sealed class BlockServerOptions
{
    /// <summary>Name of the model the blocks belong to, reported by <c>Info</c>. Default "model".</summary>
    public string ModelId { get; set; } = "model";

    /// <summary>
    /// Cache budget in tokens: the sum over open sessions of batch size × maximum length may not exceed it.
    /// Default 8192.
    /// </summary>
    public long CacheTokens { get; set; } = 8192;

    /// <summary>A session with no step for this long is closed and its cache freed. Default 5 minutes.</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Longest wait of the compute queue for one-token steps of other sessions before running a batch. It
    /// waits only for sessions expected to join (those that ran in the same batch last time) and never
    /// longer than the last forward took, so a lone session never waits. Default 10 ms; zero batches only
    /// steps already queued.
    /// </summary>
    public TimeSpan BatchingWindow { get; set; } = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// Longest wait to connect to the next server of a route and write a pushed step to it; past it the
    /// step's reply says the push failed and the client carries the step itself. Default 5 s.
    /// </summary>
    public TimeSpan PushTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Most sessions stepped together in one batched forward. Default 32.</summary>
    public int MaxBatchSessions { get; set; } = 32;

    /// <summary>Largest tensor payload accepted, in bytes. Default 64 MiB.</summary>
    public int MaxMessageBytes { get; set; } = 64 << 20;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(ModelId))
        {
            throw new ArgumentException("the model id is empty", nameof(ModelId));
        }
        if (CacheTokens < 1)
        {
            throw new ArgumentException($"--cache-tokens must be at least 1, got {CacheTokens}", nameof(CacheTokens));
        }
        if (IdleTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException($"the idle timeout must be positive, got {IdleTimeout}", nameof(IdleTimeout));
        }
        if (BatchingWindow < TimeSpan.Zero)
        {
            throw new ArgumentException($"the batching window may not be negative, got {BatchingWindow}", nameof(BatchingWindow));
        }
        if (MaxBatchSessions < 1)
        {
            throw new ArgumentException($"at least one session per batch, got {MaxBatchSessions}", nameof(MaxBatchSessions));
        }
        if (MaxMessageBytes < 1024)
        {
            throw new ArgumentException($"messages of at least 1024 bytes, got {MaxMessageBytes}", nameof(MaxMessageBytes));
        }
    }
}
