using System.Numerics;
using System.Runtime.InteropServices;
using Pollen.Swarm.Tensors;
using static TorchSharp.torch;
using DType = Pollen.Swarm.Protos.DType;
using Tensor = TorchSharp.torch.Tensor;
using WireTensor = Pollen.Swarm.Protos.Tensor;

namespace Pollen.Inference.Wire;

/// <summary>
/// TorchSharp glue for the swarm's tensor message: one bulk byte copy each way (never per-element
/// access). Decoding checks the message with <see cref="TensorCodec.Validate"/> first, so a tensor built
/// here always has exactly the bytes its shape needs.
/// </summary>
public static class TensorWire
{
    /// <summary>The wire dtype of a torch dtype, for the dtypes activations and positions travel as.</summary>
    public static DType ToWire(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => DType.Float32,
        ScalarType.Float16 => DType.Float16,
        ScalarType.BFloat16 => DType.Bfloat16,
        ScalarType.Int64 => DType.Int64,
        _ => throw new NotSupportedException($"{dtype} does not travel on the wire"),
    };

    /// <summary>The torch dtype of a wire dtype.</summary>
    /// <exception cref="TensorFormatException">The dtype is not one activations or positions travel as.</exception>
    public static ScalarType FromWire(DType dtype) => dtype switch
    {
        DType.Float32 => ScalarType.Float32,
        DType.Float16 => ScalarType.Float16,
        DType.Bfloat16 => ScalarType.BFloat16,
        DType.Int64 => ScalarType.Int64,
        _ => throw new TensorFormatException($"dtype {dtype} is not supported here"),
    };

    /// <summary>True for the dtypes hidden states may travel as.</summary>
    public static bool IsActivationDtype(DType dtype) => dtype is DType.Float32 or DType.Float16 or DType.Bfloat16;

    /// <summary>Encodes a tensor, converted to <paramref name="wireDtype"/> first when given.</summary>
    public static WireTensor Encode(Tensor tensor, ScalarType? wireDtype = null)
    {
        using var scope = NewDisposeScope();
        var t = tensor.detach();
        if (wireDtype is { } dtype && t.dtype != dtype)
        {
            t = t.to_type(dtype);
        }
        t = t.contiguous();
        return TensorCodec.Encode(t.bytes, t.shape, ToWire(t.dtype));
    }

    /// <summary>
    /// True when every element of an activation message (float32, float16 or bfloat16) is finite. Runs on
    /// the message's bytes, so a request is checked without creating a tensor (a few torch calls per step
    /// cost more than scanning a hidden state).
    /// </summary>
    /// <exception cref="TensorFormatException">The dtype is not an activation dtype.</exception>
    public static bool AllFinite(WireTensor message)
    {
        var bytes = message.Bytes.Span;
        return message.Dtype switch
        {
            // float32: exponent bits all ones is infinite or NaN
            DType.Float32 => NoneAllOnes(MemoryMarshal.Cast<byte, uint>(bytes), 0x7F80_0000u),
            DType.Float16 => NoneAllOnes(MemoryMarshal.Cast<byte, ushort>(bytes), (ushort)0x7C00),
            // bfloat16 is the upper half of a float32
            DType.Bfloat16 => NoneAllOnes(MemoryMarshal.Cast<byte, ushort>(bytes), (ushort)0x7F80),
            _ => throw new TensorFormatException($"dtype {message.Dtype} is not an activation dtype"),
        };
    }

    /// <summary>Smallest and largest element of a validated INT64 message with at least one element.</summary>
    public static (long Min, long Max) Int64Range(WireTensor message)
    {
        if (message.Dtype != DType.Int64)
        {
            throw new TensorFormatException($"tensor is {message.Dtype}, expected {DType.Int64}");
        }
        var values = MemoryMarshal.Cast<byte, long>(message.Bytes.Span);
        if (values.IsEmpty)
        {
            throw new TensorFormatException("the tensor has no elements");
        }
        long min = long.MaxValue, max = long.MinValue;
        foreach (var v in values)
        {
            min = Math.Min(min, v);
            max = Math.Max(max, v);
        }
        return (min, max);
    }

    /// <summary>Decodes a validated message into a new CPU tensor owned by the current dispose scope.</summary>
    /// <exception cref="TensorFormatException">The message is malformed or larger than <paramref name="maxBytes"/>.</exception>
    public static Tensor Decode(WireTensor message, long maxBytes = int.MaxValue)
    {
        TensorCodec.Validate(message, maxBytes);
        var dtype = FromWire(message.Dtype);
        var result = empty([.. message.Shape], dtype);
        message.Bytes.Span.CopyTo(result.bytes);
        return result;
    }

    private static bool NoneAllOnes<T>(ReadOnlySpan<T> values, T exponent)
        where T : unmanaged, IBinaryInteger<T>
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated && values.Length >= Vector<T>.Count)
        {
            var mask = new Vector<T>(exponent);
            var vectors = MemoryMarshal.Cast<T, Vector<T>>(values);
            foreach (var v in vectors)
            {
                if (Vector.EqualsAny(v & mask, mask))
                {
                    return false;
                }
            }
            i = vectors.Length * Vector<T>.Count;
        }
        for (; i < values.Length; i++)
        {
            if ((values[i] & exponent) == exponent)
            {
                return false;
            }
        }
        return true;
    }
}
