using System.Buffers;
using System.Buffers.Binary;
using System.Text.Encodings.Web;
using System.Text.Json;
using TorchSharp;

namespace Pollen.Model.Checkpoints;

/// <summary>
/// Writes safetensors files. Tensors are stored in ordinal name order, back to back; the header is padded with
/// spaces to a multiple of 8 bytes so the data region starts 8-byte aligned. Equal inputs give byte-identical
/// files, so a file's SHA-256 identifies its content. The file is replaced atomically (see <see cref="AtomicFile"/>).
/// </summary>
public static class SafeTensorsWriter
{
    private sealed record Entry(string Name, torch.Tensor Tensor, SafeTensorsDType DType, long[] Shape, long Length);

    /// <summary>Writes <paramref name="tensors"/> (any device, any layout) to <paramref name="path"/>.</summary>
    /// <param name="path">Target file; its directory must exist. An existing file is replaced only once the new one is complete.</param>
    /// <param name="tensors">Name and tensor pairs, e.g. a module's <c>state_dict()</c>. Names must be unique and not <c>__metadata__</c>.</param>
    /// <param name="metadata">Optional string map stored as <c>__metadata__</c> (Hugging Face writes <c>format: pt</c>).</param>
    /// <exception cref="ArgumentException">A duplicate or reserved name, or a dtype safetensors cannot store (complex, quantized).</exception>
    public static void Write(
        string path,
        IEnumerable<KeyValuePair<string, torch.Tensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        var entries = Collect(tensors);
        var header = BuildHeader(entries, metadata);
        AtomicFile.Write(path, stream =>
        {
            Span<byte> prefix = stackalloc byte[sizeof(ulong)];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
            stream.Write(prefix);
            stream.Write(header);
            foreach (var entry in entries)
            {
                WriteData(stream, entry.Tensor);
            }
        });
    }

    private static List<Entry> Collect(IEnumerable<KeyValuePair<string, torch.Tensor>> tensors)
    {
        var entries = new List<Entry>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, tensor) in tensors)
        {
            if (string.IsNullOrEmpty(name) || name == SafeTensorsHeader.MetadataKey)
            {
                throw new ArgumentException($"'{name}' cannot be a tensor name", nameof(tensors));
            }
            ArgumentNullException.ThrowIfNull(tensor, $"{nameof(tensors)}['{name}']");
            if (!names.Add(name))
            {
                throw new ArgumentException($"tensor name '{name}' appears twice", nameof(tensors));
            }
            var dtype = SafeTensorsDTypes.FromScalarType(tensor.dtype) ?? throw new ArgumentException(
                $"tensor '{name}' has dtype {tensor.dtype}, which safetensors cannot store", nameof(tensors));
            var shape = tensor.shape;
            entries.Add(new Entry(name, tensor, dtype, shape, tensor.NumberOfElements * dtype.ElementSize()));
        }
        entries.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return entries;
    }

    private static byte[] BuildHeader(List<Entry> entries, IReadOnlyDictionary<string, string>? metadata)
    {
        var buffer = new ArrayBufferWriter<byte>();
        // Relaxed escaping keeps non-ASCII names readable; the header is never embedded in HTML.
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject(SafeTensorsHeader.MetadataKey);
                foreach (var (key, value) in metadata.OrderBy(pair => pair.Key, StringComparer.Ordinal))
                {
                    json.WriteString(key, value);
                }
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var entry in entries)
            {
                json.WriteStartObject(entry.Name);
                json.WriteString("dtype", entry.DType.ToHeaderString());
                json.WriteStartArray("shape");
                foreach (var dim in entry.Shape)
                {
                    json.WriteNumberValue(dim);
                }
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + entry.Length);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += entry.Length;
            }
            json.WriteEndObject();
        }
        // Pad with spaces (valid JSON whitespace) so 8 + header length is a multiple of 8.
        var length = buffer.WrittenCount;
        var padded = (length + 7) / 8 * 8;
        var header = new byte[padded];
        buffer.WrittenSpan.CopyTo(header);
        header.AsSpan(length).Fill((byte)' ');
        return header;
    }

    private static void WriteData(Stream stream, torch.Tensor tensor)
    {
        // Temporary CPU/contiguous copies are disposed with the scope; the caller's tensor is not.
        using var scope = torch.NewDisposeScope();
        var source = tensor.device_type == DeviceType.CPU ? tensor : tensor.cpu();
        source = source.contiguous();
        TensorBytes.Write(stream, source);
    }
}
