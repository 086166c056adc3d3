using Pollen.Swarm.Dht;
using Pollen.Swarm.Records;
using Pollen.Swarm.Transport;

namespace Pollen.Inference.Routing;

/// <summary>
/// Where the servers of a model are written down: one DHT key per model, one subkey per server (its own,
/// so only it can write it). A client lists every server of the model with a single lookup and routes over
/// them; a server lists them to choose the blocks served by the fewest peers.
/// </summary>
/// <remarks>
/// One key per model rather than one per block (as Petals keys by block uid) keeps route finding to one
/// lookup; a server's span fits in its entry. The key's replicas hold every server of the model, which is
/// fine up to the few thousand entries a key allows.
/// </remarks>
public static class ModelServers
{
    /// <summary>The DHT key of <paramref name="modelId"/>'s servers.</summary>
    public static string Key(string modelId) => $"pollen/model/{CheckModelId(modelId)}/servers";

    /// <summary>Throws <see cref="ArgumentException"/> unless the id is 1–128 characters of letters, digits, '.', '_' and '-'.</summary>
    public static string CheckModelId(string modelId) => OwnedRecords.CheckName(modelId, "model id");

    /// <summary>Publishes this server's announcement, valid for <paramref name="ttl"/>.</summary>
    public static Task<StoreSummary> AnnounceAsync(DhtNode node, ServerAnnouncement announcement, TimeSpan ttl, TimeProvider time, CancellationToken cancellationToken)
    {
        if (announcement.PeerId != node.PeerId.ToString())
        {
            throw new ArgumentException("a server announcement can only be published by the server it describes", nameof(announcement));
        }
        return OwnedRecords.PutAsync(node, Key(announcement.ModelId), announcement, ttl, time, cancellationToken);
    }

    /// <summary>
    /// The live servers of <paramref name="modelId"/>, sorted by start block then peer id. Entries that do
    /// not parse, name another peer than the signer or another model, or describe an impossible span
    /// (negative, empty, beyond <paramref name="blockCount"/> when given) are skipped.
    /// </summary>
    public static async Task<IReadOnlyList<ServerAnnouncement>> ListAsync(DhtNode node, string modelId, int? blockCount, CancellationToken cancellationToken)
    {
        var result = await node.GetAsync(Key(modelId), cancellationToken).ConfigureAwait(false);
        var servers = OwnedRecords.Read<ServerAnnouncement>(result, s => s.PeerId, s => s.ModelId == modelId && PeerAddress.IsValid(s.Address)
            && s.StartBlock >= 0 && s.EndBlock > s.StartBlock && (blockCount is null || s.EndBlock <= blockCount)
            && double.IsFinite(s.Throughput) && s.Throughput >= 0 && s.FreeCacheTokens >= 0);
        return [.. servers.Select(s => s.Value with { Expiration = s.Entry.Expiration }).OrderBy(s => s.StartBlock).ThenBy(s => s.PeerId, StringComparer.Ordinal)];
    }
}
