using Pollen.Swarm.Identity;

namespace Pollen.Swarm.Records;

/// <summary>
/// Which subkeys belong to a peer: the subkey is the peer's id (52 characters of base32), or the id
/// followed by <c>/</c> and anything, e.g. <c>"&lt;peer id&gt;/blocks"</c>. Only that peer can write them.
/// </summary>
public static class RecordOwnership
{
    /// <summary>The subkey owned by <paramref name="peer"/>, optionally with a suffix after a <c>/</c>.</summary>
    public static string SubkeyFor(PeerId peer, string? suffix = null) =>
        string.IsNullOrEmpty(suffix) ? peer.ToString() : $"{peer}/{suffix}";

    /// <summary>True when <paramref name="subkey"/> names a peer, which is returned as <paramref name="owner"/>.</summary>
    public static bool TryGetOwner(string subkey, out PeerId owner)
    {
        owner = default;
        if (subkey.Length < PeerId.TextLength || (subkey.Length > PeerId.TextLength && subkey[PeerId.TextLength] != '/'))
        {
            return false;
        }
        return PeerId.TryParse(subkey.AsSpan(0, PeerId.TextLength), out owner);
    }
}
