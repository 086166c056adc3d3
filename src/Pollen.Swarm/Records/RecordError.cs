namespace Pollen.Swarm.Records;

/// <summary>Why a record entry was not stored. Mirrored by <c>StoreError</c> in <c>dht.proto</c>.</summary>
public enum RecordError
{
    /// <summary>Stored.</summary>
    None = 0,

    /// <summary>The subkey is empty or longer than <see cref="RecordLimits.MaxSubkeyBytes"/>.</summary>
    InvalidSubkey = 1,

    /// <summary>The value is larger than <see cref="RecordLimits.MaxValueBytes"/>.</summary>
    ValueTooLarge = 2,

    /// <summary>The expiration is further ahead than <see cref="RecordLimits.MaxExpirationAhead"/>.</summary>
    ExpirationTooFar = 3,

    /// <summary>The entry has already expired.</summary>
    Expired = 4,

    /// <summary>The subkey names a peer but the entry carries no signature or public key.</summary>
    MissingSignature = 5,

    /// <summary>The public key that signed is not the key of the peer the subkey names.</summary>
    WrongSigner = 6,

    /// <summary>The signature does not verify for this key, subkey, value and expiration.</summary>
    BadSignature = 7,

    /// <summary>The store already holds this subkey with a later expiration.</summary>
    Outdated = 8,

    /// <summary>The node's record store is full.</summary>
    StoreFull = 9,
}
