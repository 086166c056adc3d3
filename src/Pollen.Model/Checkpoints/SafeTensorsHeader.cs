using System.Buffers.Binary;
using System.Text.Json;

namespace Pollen.Model.Checkpoints;

/// <summary>
/// Reads and validates a safetensors header: <c>u64 N</c> (little-endian), N bytes of JSON, then the data region.
/// Files are untrusted input, so every entry is checked against the file before any tensor is allocated:
/// known dtype, non-negative shape, offsets inside the data region, byte length equal to element count ×
/// element size, and no two tensors sharing bytes. Gaps between tensors are allowed.
/// </summary>
internal sealed class SafeTensorsHeader
{
    /// <summary>Largest accepted header: 100 MB (the limit of the reference implementation).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>The key of the optional string-to-string metadata map.</summary>
    public const string MetadataKey = "__metadata__";

    private SafeTensorsHeader(Dictionary<string, TensorInfo> tensors, Dictionary<string, string> metadata)
    {
        Tensors = tensors;
        Metadata = metadata;
    }

    public Dictionary<string, TensorInfo> Tensors { get; }

    public Dictionary<string, string> Metadata { get; }

    /// <summary>Reads the header from the start of <paramref name="stream"/> (a file of length <c>stream.Length</c>).</summary>
    public static SafeTensorsHeader Read(Stream stream, string path)
    {
        var fileLength = stream.Length;
        if (fileLength < sizeof(ulong))
        {
            throw Corrupt(path, null, $"the file is {fileLength} bytes, too short for the 8-byte header length");
        }
        Span<byte> prefix = stackalloc byte[sizeof(ulong)];
        stream.Position = 0;
        stream.ReadExactly(prefix);
        var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength > MaxHeaderBytes)
        {
            throw Corrupt(path, null, $"the header length is {headerLength} bytes, more than the {MaxHeaderBytes}-byte limit");
        }
        if ((long)headerLength > fileLength - sizeof(ulong))
        {
            throw Corrupt(path, null,
                $"the header length is {headerLength} bytes but only {fileLength - sizeof(ulong)} bytes follow the length prefix");
        }
        var json = new byte[headerLength];
        stream.ReadExactly(json);
        var dataStart = sizeof(ulong) + (long)headerLength;
        return Parse(json, path, dataStart, fileLength - dataStart);
    }

    private static SafeTensorsHeader Parse(byte[] json, string path, long dataStart, long dataLength)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new CheckpointException(path, null, $"the header is not valid JSON ({e.Message})", CheckpointException.CorruptRemedy, e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Corrupt(path, null, $"the header is a JSON {root.ValueKind}, not an object");
            }
            var tensors = new Dictionary<string, TensorInfo>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seenMetadata = false;
            foreach (var property in root.EnumerateObject())
            {
                if (property.Name == MetadataKey)
                {
                    if (seenMetadata)
                    {
                        throw Corrupt(path, null, $"the header has '{MetadataKey}' twice");
                    }
                    seenMetadata = true;
                    ReadMetadata(property.Value, path, metadata);
                    continue;
                }
                var info = ReadEntry(property.Name, property.Value, path, dataStart, dataLength);
                if (!tensors.TryAdd(info.Name, info))
                {
                    throw Corrupt(path, info.Name, "the header lists this tensor twice");
                }
            }
            CheckNoOverlap(tensors.Values, path, dataStart);
            return new SafeTensorsHeader(tensors, metadata);
        }
    }

    private static void ReadMetadata(JsonElement element, string path, Dictionary<string, string> metadata)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw Corrupt(path, null, $"'{MetadataKey}' is a JSON {element.ValueKind}, not an object of strings");
        }
        foreach (var item in element.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
            {
                throw Corrupt(path, null, $"metadata value '{item.Name}' is a JSON {item.Value.ValueKind}, not a string");
            }
            if (!metadata.TryAdd(item.Name, item.Value.GetString()!))
            {
                throw Corrupt(path, null, $"metadata key '{item.Name}' appears twice");
            }
        }
    }

    private static TensorInfo ReadEntry(string name, JsonElement entry, string path, long dataStart, long dataLength)
    {
        if (entry.ValueKind != JsonValueKind.Object)
        {
            throw Corrupt(path, name, $"the entry is a JSON {entry.ValueKind}, not an object with dtype, shape and data_offsets");
        }
        if (!entry.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
        {
            throw Corrupt(path, name, "the entry has no string 'dtype'");
        }
        var dtypeText = dtypeElement.GetString()!;
        if (!SafeTensorsDTypes.TryParse(dtypeText, out var dtype))
        {
            throw new CheckpointException(path, name, $"dtype '{dtypeText}' is not a known safetensors dtype",
                "Known dtypes are BOOL, U8, I8, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64, F8_E4M3, F8_E5M2; "
                + "convert the checkpoint to one of them (F32, F16 or BF16 for weights).");
        }
        var shape = ReadNonNegativeIntegers(entry, "shape", name, path, expectedCount: null);
        var offsets = ReadNonNegativeIntegers(entry, "data_offsets", name, path, expectedCount: 2);
        var (begin, end) = (offsets[0], offsets[1]);
        if (end < begin)
        {
            throw Corrupt(path, name, $"data_offsets [{begin}, {end}] end before they begin");
        }
        if (end > dataLength)
        {
            throw Corrupt(path, name,
                $"data_offsets [{begin}, {end}] run past the end of the data region ({dataLength} bytes)");
        }
        long expected;
        try
        {
            expected = checked(shape.Aggregate(1L, (product, dim) => product * dim) * dtype.ElementSize());
        }
        catch (OverflowException)
        {
            throw Corrupt(path, name, $"shape [{string.Join(", ", shape)}] has more bytes than a 64-bit size can count");
        }
        if (end - begin != expected)
        {
            throw Corrupt(path, name,
                $"data_offsets [{begin}, {end}] span {end - begin} bytes but {dtypeText} with shape "
                + $"[{string.Join(", ", shape)}] needs {expected} bytes");
        }
        return new TensorInfo(name, dtype, shape, dataStart + begin, end - begin);
    }

    private static long[] ReadNonNegativeIntegers(JsonElement entry, string key, string name, string path, int? expectedCount)
    {
        if (!entry.TryGetProperty(key, out var array) || array.ValueKind != JsonValueKind.Array)
        {
            throw Corrupt(path, name, $"the entry has no array '{key}'");
        }
        var count = array.GetArrayLength();
        if (expectedCount is { } n && count != n)
        {
            throw Corrupt(path, name, $"'{key}' has {count} values instead of {n}");
        }
        var values = new long[count];
        var i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out var value) || value < 0)
            {
                throw Corrupt(path, name, $"'{key}' holds {item.GetRawText()}, not a non-negative 64-bit integer");
            }
            values[i++] = value;
        }
        return values;
    }

    private static void CheckNoOverlap(IEnumerable<TensorInfo> tensors, string path, long dataStart)
    {
        TensorInfo? previous = null;
        foreach (var info in tensors.Where(t => t.Length > 0).OrderBy(t => t.Offset))
        {
            if (previous is not null && info.Offset < previous.Offset + previous.Length)
            {
                throw Corrupt(path, info.Name,
                    $"its bytes [{info.Offset - dataStart}, {info.Offset - dataStart + info.Length}) overlap those of "
                    + $"'{previous.Name}' [{previous.Offset - dataStart}, {previous.Offset - dataStart + previous.Length})");
            }
            previous = info;
        }
    }

    private static CheckpointException Corrupt(string path, string? name, string problem) =>
        new(path, name, problem, CheckpointException.CorruptRemedy);
}
