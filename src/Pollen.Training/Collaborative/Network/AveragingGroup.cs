using System.Security.Cryptography;
using System.Text;
using Pollen.Swarm.Identity;

namespace Pollen.Training.Collaborative.Network;

/// <summary>A member of an averaging group: its peer id (base32) and the address of its swarm port.</summary>
public sealed record GroupMember(string PeerId, string Address);

/// <summary>
/// The peers averaging one round of one run, in an order every member derives the same way (sorted by
/// peer id). Member k reduces slice k of the flattened delta; <see cref="GroupId"/> binds run, round and
/// membership, so parts meant for another grouping are refused.
/// </summary>
public sealed class AveragingGroup
{
    /// <summary>Creates the group of <paramref name="members"/> (sorted here; duplicates refused).</summary>
    public AveragingGroup(string runId, long round, IEnumerable<GroupMember> members)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(round);
        RunId = runId;
        Round = round;
        Members = [.. members.OrderBy(m => m.PeerId, StringComparer.Ordinal)];
        if (Members.Count == 0 || Members.Select(m => m.PeerId).Distinct(StringComparer.Ordinal).Count() != Members.Count)
        {
            throw new ArgumentException("a group needs at least one member and each peer at most once", nameof(members));
        }
        var text = $"pollen/averaging\n{runId}\n{round}\n{string.Join('\n', Members.Select(m => m.PeerId))}";
        GroupId = SHA256.HashData(Encoding.UTF8.GetBytes(text));
    }

    /// <summary>The run.</summary>
    public string RunId { get; }

    /// <summary>The round.</summary>
    public long Round { get; }

    /// <summary>Members in slice order.</summary>
    public IReadOnlyList<GroupMember> Members { get; }

    /// <summary>SHA-256 over run id, round and member ids.</summary>
    public byte[] GroupId { get; }

    /// <summary>Index of <paramref name="peer"/>, or -1.</summary>
    public int IndexOf(PeerId peer)
    {
        var text = peer.ToString();
        for (var i = 0; i < Members.Count; i++)
        {
            if (Members[i].PeerId == text)
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>Slice <paramref name="k"/> of a vector of <paramref name="length"/> values: as equal as possible, contiguous.</summary>
    public (long Start, long Length) Slice(int k, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(k, Members.Count);
        var start = length * k / Members.Count;
        return (start, (length * (k + 1) / Members.Count) - start);
    }
}
