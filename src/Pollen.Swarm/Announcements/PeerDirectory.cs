using System.Text.Json;
using Pollen.Swarm.Dht;
using Pollen.Swarm.Identity;
using Pollen.Swarm.Records;

namespace Pollen.Swarm.Announcements;

/// <summary>
/// The typed view of who is in the swarm: each node writes a <see cref="PeerAnnouncement"/> into its own
/// subkey of one well-known key, and anyone lists the live ones with a single DHT get.
/// </summary>
/// <remarks>
/// One key for all peers, as hivemind does for its experts, makes "list everyone" one lookup; the cost is
/// that the k replicas of that key carry every announcement, which is fine up to the few thousand peers
/// <see cref="RecordLimits.MaxSubkeysPerKey"/> allows. Per-block keys for block servers can come on top.
/// A node that leaves stops refreshing and drops out when its entry expires.
/// </remarks>
public static class PeerDirectory
{
    /// <summary>The DHT key holding every announcement.</summary>
    public const string Key = "pollen/peers";

    /// <summary>Version of this software, for announcements.</summary>
    public static string SoftwareVersion { get; } =
        typeof(PeerDirectory).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";

    private static readonly JsonSerializerOptions Json = new() { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull };

    /// <summary>Publishes <paramref name="announcement"/> for this node, valid for <paramref name="ttl"/>.</summary>
    public static Task<StoreSummary> AnnounceAsync(DhtNode node, PeerAnnouncement announcement, TimeSpan ttl, TimeProvider time, CancellationToken cancellationToken)
    {
        if (announcement.PeerId != node.PeerId.ToString())
        {
            throw new ArgumentException("an announcement can only be published by the peer it describes", nameof(announcement));
        }
        return OwnedRecords.PutAsync(node, Key, announcement, ttl, time, cancellationToken, Json);
    }

    /// <summary>Every live peer's announcement, sorted by peer id. Entries that do not parse, or whose
    /// content names another peer than the signer, are skipped.</summary>
    public static async Task<IReadOnlyList<PeerAnnouncement>> ListAsync(DhtNode node, CancellationToken cancellationToken)
    {
        var result = await node.GetAsync(Key, cancellationToken).ConfigureAwait(false);
        var peers = OwnedRecords.Read<PeerAnnouncement>(result, p => p.PeerId, json: Json).Select(p => p.Value with { Expiration = p.Entry.Expiration });
        return [.. peers.OrderBy(p => p.PeerId, StringComparer.Ordinal)];
    }
}
