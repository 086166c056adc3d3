namespace Pollen.Inference.Server;

/// <summary>How a block server stores its linear weights in memory (values and results are the same).</summary>
public enum WeightLayout
{
    /// <summary>Column-major when tensor math runs on one thread and the weights are float32, else row-major.</summary>
    Auto,

    /// <summary>As loaded: each (out, in) weight contiguous by rows.</summary>
    RowMajor,

    /// <summary>Each (out, in) weight stored as its contiguous (in, out) transpose.</summary>
    ColumnMajor,
}

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

    /// <summary>
    /// How the linear weights are stored. With one thread for tensor math, MKL multiplies several rows by a
    /// column-major weight about twice as fast as by a row-major one (768 × 2048, 8 rows: 0.25 against
    /// 0.48 ms) and one row as fast, so batched steps of concurrent sessions gain; with more threads its
    /// parallel path favours row-major. Default <see cref="WeightLayout.Auto"/>, which picks by that rule.
    /// </summary>
    public WeightLayout WeightLayout { get; set; } = WeightLayout.Auto;

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
