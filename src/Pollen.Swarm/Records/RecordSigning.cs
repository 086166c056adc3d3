using System.Buffers.Binary;
using System.Text;
using Pollen.Swarm.Identity;

namespace Pollen.Swarm.Records;

/// <summary>
/// The exact bytes a record signature covers: a domain tag, the key id, the subkey, the value and the
/// expiration, each length-prefixed so no two different records share an encoding. Covering the
/// expiration means an old signed value cannot be replayed with a later expiration.
/// </summary>
public static class RecordSigning
{
    private static readonly byte[] Domain = Encoding.ASCII.GetBytes("pollen/dht-record/v1\0");

    /// <summary>The bytes signed for (key, subkey, value, expiration in Unix milliseconds).</summary>
    public static byte[] SignedBytes(DhtId key, string subkey, ReadOnlySpan<byte> value, long expirationUnixMs)
    {
        var subkeyBytes = Encoding.UTF8.GetBytes(subkey);
        var buffer = new byte[Domain.Length + DhtId.Size + 4 + subkeyBytes.Length + 4 + value.Length + 8];
        var span = buffer.AsSpan();
        Domain.CopyTo(span);
        span = span[Domain.Length..];
        key.WriteTo(span);
        span = span[DhtId.Size..];
        BinaryPrimitives.WriteInt32BigEndian(span, subkeyBytes.Length);
        subkeyBytes.CopyTo(span[4..]);
        span = span[(4 + subkeyBytes.Length)..];
        BinaryPrimitives.WriteInt32BigEndian(span, value.Length);
        value.CopyTo(span[4..]);
        span = span[(4 + value.Length)..];
        BinaryPrimitives.WriteInt64BigEndian(span, expirationUnixMs);
        return buffer;
    }
}
