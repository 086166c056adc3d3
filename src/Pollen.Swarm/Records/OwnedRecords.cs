using System.Text.Json;
using System.Text.RegularExpressions;
using Pollen.Swarm.Dht;
using Pollen.Swarm.Identity;

namespace Pollen.Swarm.Records;

/// <summary>
/// The pattern every typed directory in the DHT follows (peers, model servers, training rounds and
/// progress): one key, each peer writing a JSON value into its own bare subkey, readers keeping only
/// entries that parse and that name the peer that signed them.
/// </summary>
public static partial class OwnedRecords
{
    private static readonly JsonSerializerOptions DefaultJson = new();

    /// <summary>Stores <paramref name="value"/> as JSON in this node's own subkey of <paramref name="key"/>, valid for <paramref name="ttl"/>.</summary>
    public static Task<StoreSummary> PutAsync<T>(DhtNode node, string key, T value, TimeSpan ttl, TimeProvider time, CancellationToken cancellationToken,
        JsonSerializerOptions? json = null) =>
        node.PutOwnAsync(key, JsonSerializer.SerializeToUtf8Bytes(value, json ?? DefaultJson), time.GetUtcNow() + ttl, cancellationToken);

    /// <summary>
    /// The values of a lookup held in bare peer subkeys that parse as <typeparamref name="T"/>, name their
    /// signer (<paramref name="peerOf"/>) and pass <paramref name="valid"/>; each with its entry.
    /// </summary>
    public static List<(T Value, RecordEntry Entry)> Read<T>(LookupResult result, Func<T, string> peerOf, Func<T, bool>? valid = null, JsonSerializerOptions? json = null)
    {
        var values = new List<(T, RecordEntry)>();
        foreach (var entry in result.Entries)
        {
            if (!RecordOwnership.TryGetOwner(entry.Subkey, out var owner) || entry.Subkey.Length != PeerId.TextLength)
            {
                continue; // only a peer's own bare subkey holds its value
            }
            try
            {
                if (JsonSerializer.Deserialize<T>(entry.Value, json ?? DefaultJson) is { } value && peerOf(value) == owner.ToString() && (valid is null || valid(value)))
                {
                    values.Add((value, entry));
                }
            }
            catch (JsonException)
            {
            }
        }
        return values;
    }

    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="name"/> (a model or run id inside a key) is 1–128 letters, digits, '.', '_' or '-'.</summary>
    public static string CheckName(string name, string what) =>
        NamePattern().IsMatch(name) ? name : throw new ArgumentException($"{what} '{name}' must be 1-128 letters, digits, '.', '_' or '-'");

    [GeneratedRegex("^[A-Za-z0-9._-]{1,128}$")]
    private static partial Regex NamePattern();
}
