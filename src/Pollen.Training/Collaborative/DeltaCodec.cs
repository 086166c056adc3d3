using Pollen.Model.Runtime;
using static TorchSharp.torch;

namespace Pollen.Training.Collaborative;

/// <summary>How a pseudo-gradient travels between peers (<c>--compression</c>).</summary>
public enum DeltaCompression
{
    /// <summary>4 bytes per element, exact.</summary>
    F32,

    /// <summary>2 bytes per element (IEEE half; values beyond ±65504 are clamped).</summary>
    F16,

    /// <summary>
    /// ~1 byte per element: blocks of <see cref="DeltaCodec.Int8BlockSize"/> values share one float32
    /// scale (block absmax / 127) and each value is rounded to an int8 multiple of it, so the error of an
    /// element is at most half its block's scale.
    /// </summary>
    Int8,
}

/// <summary>
/// Encodes flat float32 pseudo-gradients for the wire and decodes what peers send. Decoding treats the
/// bytes as untrusted: the length must match the expected element count exactly and every decoded
/// value must be finite, else <see cref="InvalidDataException"/>. All copies are bulk.
/// </summary>
public static class DeltaCodec
{
    /// <summary>Elements per int8 scale.</summary>
    public const int Int8BlockSize = 256;

    /// <summary>Bytes <see cref="Encode"/> produces for <paramref name="elements"/> values.</summary>
    public static long EncodedSize(long elements, DeltaCompression compression) => compression switch
    {
        DeltaCompression.F32 => elements * 4,
        DeltaCompression.F16 => elements * 2,
        DeltaCompression.Int8 => (Blocks(elements) * 4) + elements,
        _ => throw new ArgumentOutOfRangeException(nameof(compression)),
    };

    /// <summary>Encodes a 1-D float32 tensor.</summary>
    public static byte[] Encode(Tensor values, DeltaCompression compression)
    {
        if (values.dim() != 1)
        {
            throw new ArgumentException("expected a flat (1-D) tensor", nameof(values));
        }
        using var scope = NewDisposeScope();
        var x = values.to(float32).contiguous();
        switch (compression)
        {
            case DeltaCompression.F32:
                return x.bytes.ToArray();
            case DeltaCompression.F16:
                return x.clamp(TensorMath.Constant(-65504), TensorMath.Constant(65504)).to(float16).bytes.ToArray();
            case DeltaCompression.Int8:
                var n = x.numel();
                var blocks = Blocks(n);
                var padded = n == blocks * Int8BlockSize ? x : nn.functional.pad(x, [0, (blocks * Int8BlockSize) - n]);
                var rows = padded.view(blocks, Int8BlockSize);
                var scale = rows.abs().amax([1], keepdim: true).div(TensorMath.Constant(127)); // (blocks, 1)
                var safe = where(scale.gt(TensorMath.Constant(0)), scale, ones_like(scale));
                var q = (rows / safe).round().clamp(TensorMath.Constant(-127), TensorMath.Constant(127)).to(int8).reshape(-1).narrow(0, 0, n);
                var result = new byte[EncodedSize(n, compression)];
                scale.contiguous().bytes.CopyTo(result);
                q.contiguous().bytes.CopyTo(result.AsSpan((int)(blocks * 4)));
                return result;
            default:
                throw new ArgumentOutOfRangeException(nameof(compression));
        }
    }

    /// <summary>Decodes bytes from a peer into a float32 vector of <paramref name="elements"/> values.</summary>
    public static Tensor Decode(ReadOnlySpan<byte> bytes, DeltaCompression compression, long elements)
    {
        var expected = EncodedSize(elements, compression);
        if (bytes.Length != expected)
        {
            throw new InvalidDataException($"a {compression} part of {elements} values must be {expected} bytes, got {bytes.Length}");
        }
        using var scope = NewDisposeScope();
        Tensor result;
        switch (compression)
        {
            case DeltaCompression.F32:
                result = empty(elements, float32);
                bytes.CopyTo(result.bytes);
                break;
            case DeltaCompression.F16:
                var half = empty(elements, float16);
                bytes.CopyTo(half.bytes);
                result = half.to(float32);
                break;
            case DeltaCompression.Int8:
                var blocks = Blocks(elements);
                var scales = empty(blocks, float32);
                bytes[..(int)(blocks * 4)].CopyTo(scales.bytes);
                if (!scales.isfinite().all().item<bool>() || scales.lt(TensorMath.Constant(0)).any().item<bool>())
                {
                    throw new InvalidDataException("an int8 part carries a negative or non-finite scale");
                }
                var q = empty(elements, int8);
                bytes[(int)(blocks * 4)..].CopyTo(q.bytes);
                var padded = nn.functional.pad(q.to(float32), [0, (blocks * Int8BlockSize) - elements]).view(blocks, Int8BlockSize);
                result = (padded * scales.unsqueeze(1)).reshape(-1).narrow(0, 0, elements).contiguous();
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(compression));
        }
        if (!result.isfinite().all().item<bool>())
        {
            throw new InvalidDataException("the part holds NaN or infinite values");
        }
        return result.MoveToOuterDisposeScope();
    }

    private static long Blocks(long elements) => (elements + Int8BlockSize - 1) / Int8BlockSize;
}
