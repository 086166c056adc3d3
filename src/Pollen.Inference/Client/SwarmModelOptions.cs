using static TorchSharp.torch;

namespace Pollen.Inference.Client;

/// <summary>Options of a <see cref="SwarmModel"/>.</summary>
public sealed class SwarmModelOptions
{
    /// <summary>Dtype hidden states travel as: Float32, Float16 or BFloat16. Default Float32 (exact).</summary>
    public ScalarType WireDtype { get; set; } = ScalarType.Float32;

    /// <summary>Deadline of one step (or open) on one server. Default 30 s.</summary>
    public TimeSpan StepTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Deadline of a whole inference stream. Default 1 hour.</summary>
    public TimeSpan SessionDeadline { get; set; } = TimeSpan.FromHours(1);

    /// <summary>First ban of a failed server; doubles with each further failure. Default 30 s.</summary>
    public TimeSpan BanDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Longest ban. Default 10 minutes.</summary>
    public TimeSpan MaxBanDuration { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Failed hops tolerated within one step before it fails. Default 8.</summary>
    public int MaxFailuresPerStep { get; set; } = 8;

    /// <summary>
    /// How long route finding waits for a server to host blocks nobody serves (a server may be joining)
    /// before it fails naming them. Default 60 s; zero fails at once.
    /// </summary>
    public TimeSpan MissingBlocksTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How often the server list is fetched again while waiting for missing blocks. Default 1 s.</summary>
    public TimeSpan RetryInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>A server's round trip and span are checked again after this long. Default 5 minutes.</summary>
    public TimeSpan ProbeInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Deadline of the check (an <c>Info</c> call) of one server. Default 3 s.</summary>
    public TimeSpan ProbeTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Whether servers pass a step's hidden states straight to the next server of the route, only the last
    /// answering the client (each keeps its outputs, for replay after a failure), instead of the client
    /// carrying them hop by hop: hops + 1 messages per token instead of two per hop. Default true.
    /// </summary>
    public bool PushBetweenServers { get; set; } = true;

    /// <summary>Largest message, in bytes. Default 64 MiB.</summary>
    public int MaxMessageBytes { get; set; } = 64 << 20;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (WireDtype is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16))
        {
            throw new ArgumentException($"--wire-dtype must be float32, float16 or bfloat16, got {WireDtype}", nameof(WireDtype));
        }
        if (StepTimeout <= TimeSpan.Zero || SessionDeadline <= TimeSpan.Zero || BanDuration <= TimeSpan.Zero || MaxBanDuration < BanDuration)
        {
            throw new ArgumentException("timeouts and bans must be positive, and the longest ban at least the first");
        }
        if (MissingBlocksTimeout < TimeSpan.Zero || RetryInterval <= TimeSpan.Zero || ProbeInterval <= TimeSpan.Zero || ProbeTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("--wait-for-blocks may not be negative, and the retry and probe intervals must be positive");
        }
        if (MaxFailuresPerStep < 1)
        {
            throw new ArgumentException($"at least one failure per step must be tolerated, got {MaxFailuresPerStep}", nameof(MaxFailuresPerStep));
        }
    }
}
