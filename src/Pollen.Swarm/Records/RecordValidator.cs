using System.Text;
using Pollen.Swarm.Identity;

namespace Pollen.Swarm.Records;

/// <summary>The outcome of validating or storing one entry: <see cref="RecordError.None"/> or why not, with a readable message.</summary>
/// <param name="Error">What was wrong, or <see cref="RecordError.None"/>.</param>
/// <param name="Message">A sentence naming the problem and the limit; empty when accepted.</param>
public readonly record struct StoreOutcome(RecordError Error, string Message)
{
    /// <summary>The entry was accepted.</summary>
    public static StoreOutcome Accepted { get; } = new(RecordError.None, "");

    /// <summary>True when the entry was accepted.</summary>
    public bool IsAccepted => Error == RecordError.None;

    /// <summary>Throws <see cref="RecordValidationException"/> unless accepted.</summary>
    public void ThrowIfRefused()
    {
        if (!IsAccepted)
        {
            throw new RecordValidationException(Error, Message);
        }
    }
}

/// <summary>
/// Checks an entry against the limits, the clock and, for a subkey that names a peer, that peer's
/// signature. Run on every entry a peer sends before it reaches the store, and on our own entries
/// before they are sent, so a local mistake fails fast with the same message a peer would give.
/// </summary>
public static class RecordValidator
{
    /// <summary>Validates <paramref name="entry"/> for key <paramref name="key"/> at time <paramref name="now"/>.</summary>
    public static StoreOutcome Validate(DhtId key, RecordEntry entry, DateTimeOffset now, RecordLimits limits)
    {
        var subkeyBytes = Encoding.UTF8.GetByteCount(entry.Subkey);
        if (subkeyBytes == 0 || subkeyBytes > limits.MaxSubkeyBytes)
        {
            return new(RecordError.InvalidSubkey, $"subkey must be 1..{limits.MaxSubkeyBytes} UTF-8 bytes, got {subkeyBytes}");
        }
        if (entry.Value.Length > limits.MaxValueBytes)
        {
            return new(RecordError.ValueTooLarge, $"value of subkey '{entry.Subkey}' is {entry.Value.Length} bytes; the cap is {limits.MaxValueBytes}");
        }
        if (entry.Expiration <= now)
        {
            return new(RecordError.Expired, $"subkey '{entry.Subkey}' expired at {entry.Expiration:O} (now {now:O})");
        }
        if (entry.Expiration > now + limits.MaxExpirationAhead)
        {
            return new(RecordError.ExpirationTooFar, $"expiration {entry.Expiration:O} of subkey '{entry.Subkey}' is more than {limits.MaxExpirationAhead.TotalHours:0.#} h ahead; republish instead");
        }
        if (!RecordOwnership.TryGetOwner(entry.Subkey, out var owner))
        {
            return StoreOutcome.Accepted;
        }
        if (entry.Signature is null || entry.SignerPublicKey is null || entry.Signature.Length == 0 || entry.SignerPublicKey.Length == 0)
        {
            return new(RecordError.MissingSignature, $"subkey '{entry.Subkey}' belongs to peer {owner.ShortString}; writing it needs that peer's signature");
        }
        if (PeerId.FromPublicKey(entry.SignerPublicKey) != owner)
        {
            return new(RecordError.WrongSigner, $"subkey '{entry.Subkey}' belongs to peer {owner.ShortString}, but the entry is signed by another key");
        }
        var signed = RecordSigning.SignedBytes(key, entry.Subkey, entry.Value, entry.ExpirationUnixMs);
        return NodeIdentity.Verify(entry.SignerPublicKey, signed, entry.Signature)
            ? StoreOutcome.Accepted
            : new(RecordError.BadSignature, $"signature on subkey '{entry.Subkey}' does not verify for this key, value and expiration");
    }
}
