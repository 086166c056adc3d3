using System.Text.Json;
using System.Text.RegularExpressions;
using Pollen.Swarm.Dht;
using Pollen.Swarm.Identity;
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
public static partial class ModelServers
{
    private static readonly JsonSerializerOptions Json = new();

    /// <summary>The DHT key of <paramref name="modelId"/>'s servers.</summary>
    public static string Key(string modelId) => $"pollen/model/{CheckModelId(modelId)}/servers";

    /// <summary>Throws <see cref="ArgumentException"/> unless the id is 1–128 characters of letters, digits, '.', '_' and '-'.</summary>
    public static string CheckModelId(string modelId) =>
        ModelIdPattern().IsMatch(modelId) ? modelId : throw new ArgumentException($"model id '{modelId}' must be 1-128 letters, digits, '.', '_' or '-'", nameof(modelId));

    /// <summary>Publishes this server's announcement, valid for <paramref name="ttl"/>.</summary>
    public static Task<StoreSummary> AnnounceAsync(DhtNode node, ServerAnnouncement announcement, TimeSpan ttl, TimeProvider time, CancellationToken cancellationToken)
    {
        if (announcement.PeerId != node.PeerId.ToString())
        {
            throw new ArgumentException("a server announcement can only be published by the server it describes", nameof(announcement));
        }
        return node.PutOwnAsync(Key(announcement.ModelId), JsonSerializer.SerializeToUtf8Bytes(announcement, Json), time.GetUtcNow() + ttl, cancellationToken);
    }

    /// <summary>
    /// The live servers of <paramref name="modelId"/>, sorted by start block then peer id. Entries that do
    /// not parse, name another peer than the signer or another model, or describe an impossible span
    /// (negative, empty, beyond <paramref name="blockCount"/> when given) are skipped.
    /// </summary>
    public static async Task<IReadOnlyList<ServerAnnouncement>> ListAsync(DhtNode node, string modelId, int? blockCount, CancellationToken cancellationToken)
    {
        var result = await node.GetAsync(Key(modelId), cancellationToken).ConfigureAwait(false);
        var servers = new List<ServerAnnouncement>();
        foreach (var entry in result.Entries)
        {
            if (!RecordOwnership.TryGetOwner(entry.Subkey, out var owner) || entry.Subkey.Length != PeerId.TextLength)
            {
                continue;
            }
            ServerAnnouncement? server;
            try
            {
                server = JsonSerializer.Deserialize<ServerAnnouncement>(entry.Value, Json);
            }
            catch (JsonException)
            {
                continue;
            }
            if (server is not null && server.PeerId == owner.ToString() && server.ModelId == modelId && PeerAddress.IsValid(server.Address)
                && server.StartBlock >= 0 && server.EndBlock > server.StartBlock && (blockCount is null || server.EndBlock <= blockCount)
                && double.IsFinite(server.Throughput) && server.Throughput >= 0 && server.FreeCacheTokens >= 0)
            {
                servers.Add(server with { Expiration = entry.Expiration });
            }
        }
        return [.. servers.OrderBy(s => s.StartBlock).ThenBy(s => s.PeerId, StringComparer.Ordinal)];
    }

    [GeneratedRegex("^[A-Za-z0-9._-]{1,128}$")]
    private static partial Regex ModelIdPattern();
}
