using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;

namespace Pollen.Swarm.Identity;

/// <summary>
/// Who a peer is: SHA-256 of its Ed25519 public key, which is also its node id in the DHT. Written as
/// 52 characters of lowercase base32 (RFC 4648 alphabet, no padding), e.g. in a record subkey that only
/// this peer may write; <see cref="ShortString"/> is the first 10 characters for logs and tables.
/// </summary>
/// <remarks>Hashing the key, rather than using the key itself, gives ids that are uniform in the key
/// space whatever the key format, so a peer cannot pick where it lands without grinding keys.</remarks>
public readonly record struct PeerId(DhtId Id)
{
    /// <summary>Length of <see cref="ToString"/>.</summary>
    public const int TextLength = 52;

    /// <summary>The peer id that owns <paramref name="publicKey"/> (raw 32-byte Ed25519 key).</summary>
    public static PeerId FromPublicKey(ReadOnlySpan<byte> publicKey) => new(DhtId.FromBytes(SHA256.HashData(publicKey)));

    /// <summary>Parses the 52-character base32 form.</summary>
    /// <exception cref="FormatException">The text is not a peer id.</exception>
    public static PeerId Parse(string text) =>
        TryParse(text, out var id) ? id : throw new FormatException($"'{text}' is not a peer id (52 characters of base32)");

    /// <summary>Parses the 52-character base32 form (case-insensitive).</summary>
    public static bool TryParse([NotNullWhen(true)] string? text, out PeerId peerId) => TryParse(text.AsSpan(), out peerId);

    /// <summary>Parses the 52-character base32 form (case-insensitive).</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out PeerId peerId)
    {
        peerId = default;
        Span<byte> bytes = stackalloc byte[DhtId.Size];
        if (text.Length != TextLength || !Base32.TryDecode(text, bytes))
        {
            return false;
        }
        peerId = new PeerId(DhtId.FromBytes(bytes));
        return true;
    }

    /// <summary>The first 10 characters of the base32 form: enough to tell peers apart by eye.</summary>
    public string ShortString => ToString()[..10];

    /// <summary>The 32 bytes of the id.</summary>
    public byte[] ToByteArray() => Id.ToByteArray();

    /// <summary>The 52-character lowercase base32 form.</summary>
    public override string ToString()
    {
        Span<byte> bytes = stackalloc byte[DhtId.Size];
        Id.WriteTo(bytes);
        return Base32.Encode(bytes);
    }
}
