using System.Runtime.InteropServices;
using Google.Protobuf;
using Pollen.Swarm.Protos;

namespace Pollen.Swarm.Tensors;

/// <summary>
/// Converts between spans of elements and the wire <see cref="Tensor"/> message with one bulk copy
/// each way (<see cref="MemoryMarshal.AsBytes{T}(ReadOnlySpan{T})"/>, never per-element access), and
/// checks a received tensor before anyone trusts it: known dtype, non-negative shape, byte count equal
/// to elements × element size, under a cap.
/// </summary>
/// <remarks>
/// The wire format is little-endian; every platform .NET targets for Pollen is, and the codec refuses
/// to run elsewhere rather than byte-swap. TorchSharp glue (tensor ↔ span) lives in the model-side
/// projects so this assembly stays free of native dependencies.
/// </remarks>
public static class TensorCodec
{
    /// <summary>Size in bytes of one element of <paramref name="dtype"/>.</summary>
    /// <exception cref="TensorFormatException">The dtype is unspecified or unknown.</exception>
    public static int ElementSize(DType dtype) => dtype switch
    {
        DType.Float32 or DType.Int32 => 4,
        DType.Float16 or DType.Bfloat16 => 2,
        DType.Float64 or DType.Int64 => 8,
        DType.Int8 or DType.Uint8 or DType.Bool => 1,
        _ => throw new TensorFormatException($"unknown dtype {(int)dtype}"),
    };

    /// <summary>The dtype that carries elements of type <typeparamref name="T"/>.</summary>
    public static DType DTypeOf<T>()
        where T : unmanaged => typeof(T) switch
        {
            var t when t == typeof(float) => DType.Float32,
            var t when t == typeof(Half) => DType.Float16,
            var t when t == typeof(double) => DType.Float64,
            var t when t == typeof(long) => DType.Int64,
            var t when t == typeof(int) => DType.Int32,
            var t when t == typeof(sbyte) => DType.Int8,
            var t when t == typeof(byte) => DType.Uint8,
            var t when t == typeof(bool) => DType.Bool,
            _ => throw new NotSupportedException($"no wire dtype for {typeof(T).Name}"),
        };

    /// <summary>Encodes elements with the dtype implied by <typeparamref name="T"/>.</summary>
    public static Tensor Encode<T>(ReadOnlySpan<T> data, ReadOnlySpan<long> shape)
        where T : unmanaged => Encode(MemoryMarshal.AsBytes(data), shape, DTypeOf<T>());

    /// <summary>Encodes raw element bytes (e.g. bfloat16, which has no .NET type) with an explicit dtype.</summary>
    /// <exception cref="TensorFormatException">The byte count does not match the shape and dtype.</exception>
    public static Tensor Encode(ReadOnlySpan<byte> data, ReadOnlySpan<long> shape, DType dtype)
    {
        EnsureLittleEndian();
        var expected = checked(ElementCount(shape) * ElementSize(dtype));
        if (data.Length != expected)
        {
            throw new TensorFormatException($"shape [{string.Join(", ", shape.ToArray())}] of {dtype} needs {expected} bytes, got {data.Length}");
        }
        var tensor = new Tensor { Dtype = dtype, Bytes = ByteString.CopyFrom(data) };
        foreach (var d in shape)
        {
            tensor.Shape.Add(d);
        }
        return tensor;
    }

    /// <summary>Checks a received tensor; returns its element count.</summary>
    /// <param name="tensor">The message.</param>
    /// <param name="maxBytes">Largest acceptable payload.</param>
    /// <exception cref="TensorFormatException">What is wrong with it.</exception>
    public static long Validate(Tensor tensor, long maxBytes = int.MaxValue)
    {
        if (tensor.Compression != Compression.None)
        {
            throw new TensorFormatException($"compression {tensor.Compression} is not supported by this version");
        }
        var size = ElementSize(tensor.Dtype);
        long count;
        try
        {
            count = ElementCount(tensor.Shape.ToArray());
            if (checked(count * size) != tensor.Bytes.Length)
            {
                throw new TensorFormatException($"shape [{string.Join(", ", tensor.Shape)}] of {tensor.Dtype} needs {count * size} bytes, got {tensor.Bytes.Length}");
            }
        }
        catch (OverflowException)
        {
            throw new TensorFormatException($"shape [{string.Join(", ", tensor.Shape)}] is too large");
        }
        if (tensor.Bytes.Length > maxBytes)
        {
            throw new TensorFormatException($"tensor of {tensor.Bytes.Length} bytes exceeds the cap of {maxBytes}");
        }
        return count;
    }

    /// <summary>Decodes into a new array; <typeparamref name="T"/> must match the dtype.</summary>
    public static T[] Decode<T>(Tensor tensor)
        where T : unmanaged
    {
        var result = new T[Validate(tensor, DTypeOf<T>(), maxBytes: Array.MaxLength)];
        tensor.Bytes.Span.CopyTo(MemoryMarshal.AsBytes(result.AsSpan()));
        return result;
    }

    /// <summary>Decodes into <paramref name="destination"/>, which must hold exactly the tensor's elements.</summary>
    public static void DecodeInto<T>(Tensor tensor, Span<T> destination)
        where T : unmanaged
    {
        var count = Validate(tensor, DTypeOf<T>(), maxBytes: long.MaxValue);
        if (count != destination.Length)
        {
            throw new TensorFormatException($"tensor has {count} elements, destination holds {destination.Length}");
        }
        tensor.Bytes.Span.CopyTo(MemoryMarshal.AsBytes(destination));
    }

    /// <summary>Product of the dimensions; refuses negative ones and overflow.</summary>
    public static long ElementCount(ReadOnlySpan<long> shape)
    {
        long count = 1;
        foreach (var d in shape)
        {
            if (d < 0)
            {
                throw new TensorFormatException($"negative dimension {d} in shape [{string.Join(", ", shape.ToArray())}]");
            }
            count = checked(count * d);
        }
        return count;
    }

    private static long Validate(Tensor tensor, DType expected, long maxBytes)
    {
        EnsureLittleEndian();
        if (tensor.Dtype != expected)
        {
            throw new TensorFormatException($"tensor is {tensor.Dtype}, expected {expected}");
        }
        return Validate(tensor, maxBytes);
    }

    private static void EnsureLittleEndian()
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("the tensor wire format is little-endian and this machine is not");
        }
    }
}

/// <summary>A tensor message is malformed: the message says what does not add up.</summary>
public sealed class TensorFormatException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TensorFormatException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public TensorFormatException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public TensorFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
