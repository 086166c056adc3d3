using Grpc.Core;
using Pollen.Inference.Protos;
using Pollen.Inference.Wire;
using Pollen.Swarm.Tensors;
using static TorchSharp.torch;
using DType = Pollen.Swarm.Protos.DType;
using Tensor = TorchSharp.torch.Tensor;
using WireTensor = Pollen.Swarm.Protos.Tensor;

namespace Pollen.Inference.Server;

/// <summary>Checks of requests against the model, before any block runs.</summary>
public sealed partial class BlockServer
{
    internal static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));

    private (int Start, int End) CheckRange(BlockRange? range)
    {
        if (range is null)
        {
            return (StartBlock, EndBlock);
        }
        if (range.StartBlock < StartBlock || range.EndBlock > EndBlock || range.StartBlock >= range.EndBlock)
        {
            throw new RpcException(new Status(StatusCode.OutOfRange,
                $"blocks {range.StartBlock}..{range.EndBlock - 1} are not within the blocks this server hosts ({StartBlock}..{EndBlock - 1})"));
        }
        return (range.StartBlock, range.EndBlock);
    }

    /// <summary>Checks format, dtype and shape (batch, tokens, hidden_size) of an activation; returns batch and tokens.</summary>
    private (int Batch, int Tokens) CheckHidden(WireTensor? tensor, string name, (int Batch, int? Tokens)? expected)
    {
        if (tensor is null)
        {
            throw Invalid($"{name} is missing");
        }
        try
        {
            TensorCodec.Validate(tensor, _options.MaxMessageBytes);
        }
        catch (TensorFormatException e)
        {
            throw Invalid($"{name}: {e.Message}");
        }
        if (!TensorWire.IsActivationDtype(tensor.Dtype))
        {
            throw Invalid($"{name} is {tensor.Dtype}; send FLOAT32, FLOAT16 or BFLOAT16");
        }
        var shape = tensor.Shape;
        if (shape.Count != 3 || shape[2] != Config.HiddenSize || shape[0] < 1 || shape[1] < 1)
        {
            throw Invalid($"{name} has shape [{string.Join(", ", shape)}]; expected (batch, tokens, {Config.HiddenSize}) with batch and tokens at least 1");
        }
        if (shape[1] > Config.MaxPositionEmbeddings)
        {
            throw new RpcException(new Status(StatusCode.OutOfRange, $"{name} has {shape[1]} tokens, more than the model's context of {Config.MaxPositionEmbeddings}"));
        }
        if (expected is { } e2 && (shape[0] != e2.Batch || (e2.Tokens is { } t && shape[1] != t)))
        {
            throw Invalid($"{name} has shape [{string.Join(", ", shape)}]; expected ({e2.Batch}, {e2.Tokens?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "tokens"}, {Config.HiddenSize})");
        }
        return ((int)shape[0], (int)shape[1]);
    }

    private void CheckPositionsShape(WireTensor? positions, int batch, int tokens)
    {
        if (positions is null)
        {
            return;
        }
        try
        {
            TensorCodec.Validate(positions, _options.MaxMessageBytes);
        }
        catch (TensorFormatException e)
        {
            throw Invalid($"positions: {e.Message}");
        }
        if (positions.Dtype != DType.Int64 || positions.Shape.Count != 2 || positions.Shape[0] != batch || positions.Shape[1] != tokens)
        {
            throw Invalid($"positions are {positions.Dtype} [{string.Join(", ", positions.Shape)}]; expected INT64 ({batch}, {tokens})");
        }
    }

    /// <summary>Decodes inputs checked in full (<see cref="CheckValues"/> included). Compute thread only.</summary>
    private (Tensor Hidden, Tensor Positions) DecodeInputs(WireTensor hiddenMessage, WireTensor? positionsMessage, int batch, int tokens)
    {
        var hidden = TensorWire.Decode(hiddenMessage, _options.MaxMessageBytes);
        var positions = positionsMessage is null
            ? arange(0, tokens, dtype: ScalarType.Int64).unsqueeze(0).expand(batch, tokens)
            : TensorWire.Decode(positionsMessage, _options.MaxMessageBytes);
        // computation in the weights' dtype; the reply goes back in the request's dtype
        return (hidden.to_type(Dtype), positions);
    }

    /// <summary>Refuses non-finite activations and positions outside [0, limit), on the messages' bytes (no tensor is made).</summary>
    private static void CheckValues(WireTensor hiddenMessage, WireTensor? positionsMessage, int limit)
    {
        CheckFinite(hiddenMessage, "hidden");
        if (positionsMessage is not null && positionsMessage.Shape.Count > 0 && positionsMessage.Bytes.Length > 0)
        {
            var (min, max) = TensorWire.Int64Range(positionsMessage);
            if (min < 0 || max >= limit)
            {
                throw new RpcException(new Status(StatusCode.OutOfRange, $"positions span {min}..{max}; they must lie in 0..{limit - 1}"));
            }
        }
    }

    private static void CheckFinite(WireTensor tensor, string name)
    {
        if (!TensorWire.AllFinite(tensor))
        {
            throw Invalid($"{name} contains NaN or infinite values");
        }
    }
}
