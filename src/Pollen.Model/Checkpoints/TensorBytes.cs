using TorchSharp;

namespace Pollen.Model.Checkpoints;

/// <summary>
/// Bulk copies between a stream and the memory of a contiguous CPU tensor, without per-element work.
/// <c>Tensor.bytes</c> is limited to 2 GiB, so bigger tensors are copied through 1-D views in chunks.
/// </summary>
public static class TensorBytes
{
    /// <summary>Default largest single copy: 1 GiB (must stay below 2 GiB, the span limit).</summary>
    public const int DefaultChunkBytes = 1 << 30;

    private delegate void ChunkAction(Span<byte> chunk);

    /// <summary>Size of the tensor's data in bytes (element count × element size).</summary>
    public static long ByteLength(torch.Tensor tensor) => tensor.NumberOfElements * tensor.ElementSize;

    /// <summary>
    /// Fills <paramref name="destination"/> with exactly its byte length read from <paramref name="source"/>'s
    /// current position.
    /// </summary>
    /// <param name="source">The stream to read from.</param>
    /// <param name="destination">A contiguous CPU tensor.</param>
    /// <param name="maxChunkBytes">Largest single read, in bytes; default 1 GiB.</param>
    /// <exception cref="EndOfStreamException">The stream ended first.</exception>
    public static void ReadExactly(Stream source, torch.Tensor destination, int maxChunkBytes = DefaultChunkBytes)
    {
        ArgumentNullException.ThrowIfNull(source);
        ForEachChunk(destination, maxChunkBytes, source.ReadExactly);
    }

    /// <summary>Writes the bytes of <paramref name="source"/> to <paramref name="destination"/>.</summary>
    /// <param name="destination">The stream to write to.</param>
    /// <param name="source">A contiguous CPU tensor.</param>
    /// <param name="maxChunkBytes">Largest single write, in bytes; default 1 GiB.</param>
    public static void Write(Stream destination, torch.Tensor source, int maxChunkBytes = DefaultChunkBytes)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ForEachChunk(source, maxChunkBytes, chunk => destination.Write(chunk));
    }

    /// <summary>True when any byte of the tensor is neither 0 nor 1 (an invalid value for a bool tensor).</summary>
    internal static bool HasNonBooleanByte(torch.Tensor tensor)
    {
        var found = false;
        ForEachChunk(tensor, DefaultChunkBytes, chunk => found |= chunk.IndexOfAnyExcept((byte)0, (byte)1) >= 0);
        return found;
    }

    private static void ForEachChunk(torch.Tensor tensor, int maxChunkBytes, ChunkAction action)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxChunkBytes, 1);
        if (tensor.device_type != DeviceType.CPU)
        {
            throw new ArgumentException($"the tensor is on {tensor.device}; move it to the CPU first", nameof(tensor));
        }
        if (!tensor.is_contiguous())
        {
            throw new ArgumentException("the tensor is not contiguous; call contiguous() first", nameof(tensor));
        }
        var total = ByteLength(tensor);
        if (total == 0)
        {
            return;
        }
        if (total <= maxChunkBytes)
        {
            action(tensor.bytes);
            return;
        }
        // 1-D slices of a contiguous tensor are contiguous views into the same memory.
        var elementSize = tensor.ElementSize;
        var chunkElements = Math.Max(1, maxChunkBytes / elementSize);
        var count = tensor.NumberOfElements;
        using var flat = tensor.view(-1);
        for (long start = 0; start < count; start += chunkElements)
        {
            using var chunk = flat.narrow(0, start, Math.Min(chunkElements, count - start));
            action(chunk.bytes);
        }
    }
}
