namespace Pollen.Swarm.Records;

/// <summary>Caps on what a node accepts into its record store; records come from untrusted peers.</summary>
public sealed class RecordLimits
{
    /// <summary>Largest value in bytes. Default 64 KiB: announcements and manifests pointers, not data.</summary>
    public int MaxValueBytes { get; set; } = 64 * 1024;

    /// <summary>Longest subkey in UTF-8 bytes. Default 256.</summary>
    public int MaxSubkeyBytes { get; set; } = 256;

    /// <summary>How far ahead of the receiver's clock an expiration may be. Default 24 hours.</summary>
    public TimeSpan MaxExpirationAhead { get; set; } = TimeSpan.FromHours(24);

    /// <summary>Most subkeys one key may hold. Default 4096.</summary>
    public int MaxSubkeysPerKey { get; set; } = 4096;

    /// <summary>Most entries (all keys together) one node stores. Default 200 000.</summary>
    public int MaxEntries { get; set; } = 200_000;
}
