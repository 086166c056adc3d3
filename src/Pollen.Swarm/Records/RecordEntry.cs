using Pollen.Swarm.Identity;

namespace Pollen.Swarm.Records;

/// <summary>
/// One subkey of a DHT record: <c>key → {subkey → (value, expiration, signature)}</c>, as in hivemind.
/// A subkey that names a peer (see <see cref="RecordOwnership"/>) carries that peer's public key and its
/// signature over (key, subkey, value, expiration); other subkeys are open to anyone.
/// </summary>
/// <param name="Subkey">Name of the entry within the record (UTF-8, non-empty).</param>
/// <param name="Value">Opaque payload; its size is capped by <see cref="RecordLimits.MaxValueBytes"/>.</param>
/// <param name="Expiration">When the entry stops existing. Compared and signed at millisecond precision.</param>
/// <param name="Signature">Ed25519 signature of <see cref="RecordSigning.SignedBytes"/>, for owned subkeys.</param>
/// <param name="SignerPublicKey">The raw Ed25519 public key of the signer, for owned subkeys.</param>
public sealed record RecordEntry(string Subkey, byte[] Value, DateTimeOffset Expiration, byte[]? Signature = null, byte[]? SignerPublicKey = null)
{
    /// <summary>Expiration as Unix milliseconds, the precision used on the wire and in signatures.</summary>
    public long ExpirationUnixMs => Expiration.ToUnixTimeMilliseconds();

    /// <summary>An entry for a subkey owned by <paramref name="identity"/>, signed by it.</summary>
    /// <param name="identity">The signer.</param>
    /// <param name="key">Id of the record key.</param>
    /// <param name="subkey">A subkey owned by the signer (see <see cref="RecordOwnership.SubkeyFor"/>).</param>
    /// <param name="value">The payload.</param>
    /// <param name="expiration">When it expires (truncated to milliseconds).</param>
    public static RecordEntry CreateSigned(NodeIdentity identity, DhtId key, string subkey, byte[] value, DateTimeOffset expiration)
    {
        var ms = DateTimeOffset.FromUnixTimeMilliseconds(expiration.ToUnixTimeMilliseconds());
        var signature = identity.Sign(RecordSigning.SignedBytes(key, subkey, value, ms.ToUnixTimeMilliseconds()));
        return new RecordEntry(subkey, value, ms, signature, identity.PublicKey);
    }

    /// <summary>True when both entries carry the same subkey, value, expiration and signature.</summary>
    public bool SameContent(RecordEntry other) =>
        Subkey == other.Subkey
        && ExpirationUnixMs == other.ExpirationUnixMs
        && Value.AsSpan().SequenceEqual(other.Value)
        && (Signature ?? []).AsSpan().SequenceEqual(other.Signature ?? []);
}
