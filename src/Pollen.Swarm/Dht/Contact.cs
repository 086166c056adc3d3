using Pollen.Swarm.Identity;

namespace Pollen.Swarm.Dht;

/// <summary>A peer as the routing table knows it: who (id and key) and where to dial it.</summary>
/// <param name="PeerId">SHA-256 of <paramref name="PublicKey"/>.</param>
/// <param name="PublicKey">Raw Ed25519 public key.</param>
/// <param name="Address">"host:port" of its swarm port, as the peer announced it.</param>
public sealed record Contact(PeerId PeerId, byte[] PublicKey, string Address)
{
    /// <summary>The peer's node id.</summary>
    public DhtId Id => PeerId.Id;

    /// <inheritdoc/>
    public override string ToString() => $"{PeerId.ShortString}@{Address}";
}
