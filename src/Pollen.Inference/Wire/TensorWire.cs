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
}
