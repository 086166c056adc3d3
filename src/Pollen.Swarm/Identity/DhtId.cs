using System.Buffers.Binary;
using System.Numerics;
using System.Security.Cryptography;
using System.Text;

namespace Pollen.Swarm.Identity;

/// <summary>
/// A 256-bit identifier in the DHT's key space: node ids (a <see cref="PeerId"/>) and record keys
/// (SHA-256 of the key's name) share it, and Kademlia's distance between two ids is their XOR read
/// as a big-endian unsigned integer.
/// </summary>
/// <remarks>Stored as four big-endian 64-bit words so that XOR, comparison and prefix length are a
/// handful of integer operations rather than a loop over 32 bytes.</remarks>
public readonly struct DhtId : IEquatable<DhtId>, IComparable<DhtId>
{
    /// <summary>Size of an id in bytes.</summary>
    public const int Size = 32;

    /// <summary>Number of bits in an id.</summary>
    public const int Bits = 256;

    private readonly ulong _w0;
    private readonly ulong _w1;
    private readonly ulong _w2;
    private readonly ulong _w3;

    private DhtId(ulong w0, ulong w1, ulong w2, ulong w3)
    {
        _w0 = w0;
        _w1 = w1;
        _w2 = w2;
        _w3 = w3;
    }

    /// <summary>Reads an id from exactly <see cref="Size"/> bytes.</summary>
    /// <exception cref="ArgumentException">The span is not 32 bytes long.</exception>
    public static DhtId FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size)
        {
            throw new ArgumentException($"a DHT id is {Size} bytes, got {bytes.Length}", nameof(bytes));
        }
        return new DhtId(
            BinaryPrimitives.ReadUInt64BigEndian(bytes),
            BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]),
            BinaryPrimitives.ReadUInt64BigEndian(bytes[16..]),
            BinaryPrimitives.ReadUInt64BigEndian(bytes[24..]));
    }

    /// <summary>Reads an id if the span is exactly <see cref="Size"/> bytes.</summary>
    public static bool TryFromBytes(ReadOnlySpan<byte> bytes, out DhtId id)
    {
        if (bytes.Length != Size)
        {
            id = default;
            return false;
        }
        id = FromBytes(bytes);
        return true;
    }

    /// <summary>The id of a record key: SHA-256 of its UTF-8 name.</summary>
    public static DhtId ForKey(string key) => FromBytes(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    /// <summary>A uniformly random id.</summary>
    public static DhtId Random()
    {
        Span<byte> bytes = stackalloc byte[Size];
        RandomNumberGenerator.Fill(bytes);
        return FromBytes(bytes);
    }

    /// <summary>
    /// A random id that shares exactly <paramref name="prefixLength"/> leading bits with this one (so it
    /// falls in the k-bucket of that index); used to refresh a bucket.
    /// </summary>
    public DhtId RandomWithCommonPrefix(int prefixLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(prefixLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(prefixLength, Bits);
        Span<byte> mine = stackalloc byte[Size];
        Span<byte> random = stackalloc byte[Size];
        WriteTo(mine);
        RandomNumberGenerator.Fill(random);
        for (var bit = 0; bit <= prefixLength; bit++)
        {
            var mask = (byte)(0x80 >> (bit % 8));
            var same = (mine[bit / 8] & mask) != 0;
            // bits before the prefix length agree, the bit at it differs
            var set = bit < prefixLength ? same : !same;
            random[bit / 8] = set ? (byte)(random[bit / 8] | mask) : (byte)(random[bit / 8] & ~mask);
        }
        return FromBytes(random);
    }

    /// <summary>Kademlia distance: the bitwise XOR of the two ids.</summary>
    public DhtId Xor(DhtId other) => new(_w0 ^ other._w0, _w1 ^ other._w1, _w2 ^ other._w2, _w3 ^ other._w3);

    /// <summary>Number of leading bits this id shares with <paramref name="other"/> (256 when equal).</summary>
    public int CommonPrefixLength(DhtId other) => Xor(other).LeadingZeroCount();

    /// <summary>Number of leading zero bits (256 for the zero id).</summary>
    public int LeadingZeroCount()
    {
        if (_w0 != 0)
        {
            return BitOperations.LeadingZeroCount(_w0);
        }
        if (_w1 != 0)
        {
            return 64 + BitOperations.LeadingZeroCount(_w1);
        }
        if (_w2 != 0)
        {
            return 128 + BitOperations.LeadingZeroCount(_w2);
        }
        return _w3 != 0 ? 192 + BitOperations.LeadingZeroCount(_w3) : 256;
    }

    /// <summary>Writes the 32 big-endian bytes of this id.</summary>
    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, _w0);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], _w1);
        BinaryPrimitives.WriteUInt64BigEndian(destination[16..], _w2);
        BinaryPrimitives.WriteUInt64BigEndian(destination[24..], _w3);
    }

    /// <summary>The 32 big-endian bytes of this id.</summary>
    public byte[] ToByteArray()
    {
        var bytes = new byte[Size];
        WriteTo(bytes);
        return bytes;
    }

    /// <summary>Compares as 256-bit unsigned integers (so distances order correctly).</summary>
    public int CompareTo(DhtId other)
    {
        var c = _w0.CompareTo(other._w0);
        if (c != 0)
        {
            return c;
        }
        c = _w1.CompareTo(other._w1);
        if (c != 0)
        {
            return c;
        }
        c = _w2.CompareTo(other._w2);
        return c != 0 ? c : _w3.CompareTo(other._w3);
    }

    /// <inheritdoc/>
    public bool Equals(DhtId other) => _w0 == other._w0 && _w1 == other._w1 && _w2 == other._w2 && _w3 == other._w3;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is DhtId other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(_w0, _w1, _w2, _w3);

    /// <summary>Lowercase hex of the 32 bytes.</summary>
    public override string ToString() => Convert.ToHexStringLower(ToByteArray());

    /// <summary>Equality.</summary>
    public static bool operator ==(DhtId left, DhtId right) => left.Equals(right);

    /// <summary>Inequality.</summary>
    public static bool operator !=(DhtId left, DhtId right) => !left.Equals(right);

    /// <summary>Ordering as unsigned integers.</summary>
    public static bool operator <(DhtId left, DhtId right) => left.CompareTo(right) < 0;

    /// <summary>Ordering as unsigned integers.</summary>
    public static bool operator >(DhtId left, DhtId right) => left.CompareTo(right) > 0;

    /// <summary>Ordering as unsigned integers.</summary>
    public static bool operator <=(DhtId left, DhtId right) => left.CompareTo(right) <= 0;

    /// <summary>Ordering as unsigned integers.</summary>
    public static bool operator >=(DhtId left, DhtId right) => left.CompareTo(right) >= 0;
}
