using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;
using Pollen.Swarm.Dht;
using Pollen.Swarm.Records;
using Pollen.Swarm.Transport;

namespace Pollen.Training.Collaborative.Network;

/// <summary>A peer's entry for one round: "I have my Δ and am ready to average".</summary>
public sealed record ReadyEntry
{
    /// <summary>Peer id (base32); must equal the signer.</summary>
    [JsonPropertyName("peer_id")]
    public required string PeerId { get; init; }

    /// <summary>"host:port" of its swarm port.</summary>
    [JsonPropertyName("address")]
    public required string Address { get; init; }

    /// <summary><see cref="ParameterVector.LayoutHash"/>: only peers with the same parameter layout average together.</summary>
    [JsonPropertyName("layout")]
    public required string Layout { get; init; }
}

/// <summary>A peer's training progress, kept under the run's progress key.</summary>
public sealed record ProgressEntry
{
    /// <summary>Peer id (base32); must equal the signer.</summary>
    [JsonPropertyName("peer_id")]
    public required string PeerId { get; init; }

    /// <summary>"host:port" of its swarm port (where its state can be downloaded).</summary>
    [JsonPropertyName("address")]
    public required string Address { get; init; }

    /// <summary>Rounds completed (the next round it averages is this number).</summary>
    [JsonPropertyName("rounds")]
    public required long Rounds { get; init; }

    /// <summary>Tokens this peer has trained on.</summary>
    [JsonPropertyName("tokens")]
    public long Tokens { get; init; }

    /// <summary><see cref="ParameterVector.ContentHash"/> after its last round.</summary>
    [JsonPropertyName("parameters")]
    public string ParameterHash { get; init; } = "";

    /// <summary>Validation loss after its last round, when measured.</summary>
    [JsonPropertyName("loss")]
    public double? Loss { get; init; }
}

/// <summary>
/// Finding the peers of a round through the DHT: each ready peer writes its <see cref="ReadyEntry"/> into
/// its own subkey of <c>pollen/train/RUN/round/R</c>, then reads the key until every peer the run's
/// progress says is live has arrived, or the matchmaking window has passed; the group is whoever is
/// there then, in peer id order. Progress (<c>pollen/train/RUN/progress</c>) holds each peer's completed
/// rounds, tokens and parameter hash; the run's global round is the largest completed round.
/// </summary>
/// <remarks>
/// Peers that read the key at slightly different moments can see different groups; the group id binds
/// the membership, so their parts are refused by each other and each finishes with the members it agrees
/// with. Their parameters then differ, which the progress hashes show, and the minority downloads state.
/// </remarks>
public static class Matchmaker
{
    /// <summary>The key of a round's ready entries.</summary>
    public static string RoundKey(string runId, long round) => $"pollen/train/{OwnedRecords.CheckName(runId, "run id")}/round/{round}";

    /// <summary>The key of the run's progress entries.</summary>
    public static string ProgressKey(string runId) => $"pollen/train/{OwnedRecords.CheckName(runId, "run id")}/progress";

    /// <summary>Publishes this peer's progress, valid for <paramref name="ttl"/>.</summary>
    public static Task PublishProgressAsync(DhtNode node, string runId, ProgressEntry progress, TimeSpan ttl, TimeProvider time, CancellationToken cancellationToken) =>
        OwnedRecords.PutAsync(node, ProgressKey(runId), progress, ttl, time, cancellationToken);

    /// <summary>Every live peer's progress (entries that do not parse or name another peer are skipped).</summary>
    public static async Task<IReadOnlyList<ProgressEntry>> ReadProgressAsync(DhtNode node, string runId, CancellationToken cancellationToken) =>
        [.. OwnedRecords.Read<ProgressEntry>(await node.GetAsync(ProgressKey(runId), cancellationToken).ConfigureAwait(false), p => p.PeerId,
            p => PeerAddress.IsValid(p.Address) && p.Rounds >= 0).Select(p => p.Value)];

    /// <summary>
    /// Announces readiness for <paramref name="round"/> and returns the group, waiting up to
    /// <paramref name="window"/> for the peers that progress says are live (completed ≥ round − 1).
    /// </summary>
    public static async Task<AveragingGroup> MatchAsync(DhtNode node, string runId, long round, string layout, TimeSpan window, TimeProvider time,
        CancellationToken cancellationToken, TimeSpan? poll = null)
    {
        var me = new ReadyEntry { PeerId = node.PeerId.ToString(), Address = node.Address, Layout = layout };
        await OwnedRecords.PutAsync(node, RoundKey(runId, round), me, window + TimeSpan.FromMinutes(10), time, cancellationToken).ConfigureAwait(false);
        var interval = poll ?? TimeSpan.FromMilliseconds(200);
        var started = time.GetTimestamp();
        IReadOnlyList<ReadyEntry> ready;
        while (true)
        {
            ready = await ReadReadyAsync(node, runId, round, layout, cancellationToken).ConfigureAwait(false);
            var progress = await ReadProgressAsync(node, runId, cancellationToken).ConfigureAwait(false);
            var expected = progress.Where(p => p.Rounds >= round - 1).Select(p => p.PeerId).Append(me.PeerId).ToHashSet(StringComparer.Ordinal);
            if (expected.IsSubsetOf(ready.Select(r => r.PeerId)) || time.GetElapsedTime(started) >= window)
            {
                break;
            }
            await Task.Delay(interval, time, cancellationToken).ConfigureAwait(false);
        }
        // one more read after a pause lets entries stored at the last moment reach every member's view
        await Task.Delay(interval, time, cancellationToken).ConfigureAwait(false);
        ready = await ReadReadyAsync(node, runId, round, layout, cancellationToken).ConfigureAwait(false);
        var members = ready.Select(r => new GroupMember(r.PeerId, r.Address)).ToList();
        if (!members.Any(m => m.PeerId == me.PeerId))
        {
            members.Add(new GroupMember(me.PeerId, me.Address)); // our own store may not be readable yet
        }
        return new AveragingGroup(runId, round, members);
    }

    private static async Task<IReadOnlyList<ReadyEntry>> ReadReadyAsync(DhtNode node, string runId, long round, string layout, CancellationToken cancellationToken) =>
        [.. OwnedRecords.Read<ReadyEntry>(await node.GetAsync(RoundKey(runId, round), cancellationToken).ConfigureAwait(false), r => r.PeerId,
            r => PeerAddress.IsValid(r.Address) && r.Layout == layout).Select(r => r.Value)];
}
