using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Pollen.Model.Checkpoints;
using TorchSharp;

namespace Pollen.Tests.Model.Checkpoints;

public sealed class SafeTensorsRoundTripTests : IDisposable
{
    private readonly CheckpointTestFiles _files = new();

    public void Dispose() => _files.Dispose();

    [Fact]
    public void Float32_round_trip_is_bit_exact_including_nan_payloads_infinities_and_negative_zero()
    {
        var values = new[]
        {
            1.5f, -0.0f, 0.0f, float.PositiveInfinity, float.NegativeInfinity, float.NaN,
            BitConverter.Int32BitsToSingle(0x7fc0_1234), BitConverter.Int32BitsToSingle(unchecked((int)0xffa0_0001)),
            float.Epsilon, float.MaxValue, -3.25e-30f, 7f,
        };
        using var original = torch.tensor(values).reshape(3, 4);

        using var loaded = RoundTrip(original, torch.ScalarType.Float32);

        Assert.Equal(new long[] { 3, 4 }, loaded.shape);
    }

    [Fact]
    public void Float16_round_trip_is_bit_exact_including_special_values()
    {
        // 1.0, -0.0, +inf, -inf, quiet NaN with payload, signalling-pattern NaN, smallest subnormal, max.
        ushort[] bits = [0x3c00, 0x8000, 0x7c00, 0xfc00, 0x7e01, 0x7d55, 0x0001, 0x7bff];
        using var original = FromBits(bits, torch.ScalarType.Float16);

        RoundTrip(original, torch.ScalarType.Float16).Dispose();
    }

    [Fact]
    public void BFloat16_round_trip_is_bit_exact_including_special_values()
    {
        ushort[] bits = [0x3f80, 0x8000, 0x7f80, 0xff80, 0x7fc1, 0xffa5, 0x0001, 0x7f7f];
        using var original = FromBits(bits, torch.ScalarType.BFloat16);

        RoundTrip(original, torch.ScalarType.BFloat16).Dispose();
    }

    [Fact]
    public void Int64_round_trip_keeps_extreme_values()
    {
        using var original = torch.tensor(new[] { long.MinValue, -1L, 0L, 1L, long.MaxValue, 0x0102_0304_0506_0708L });

        using var loaded = RoundTrip(original, torch.ScalarType.Int64);

        Assert.Equal(long.MaxValue, loaded[4].item<long>());
        Assert.Equal(long.MinValue, loaded[0].item<long>());
    }

    [Fact]
    public void Every_supported_dtype_round_trips_with_its_shape()
    {
        using var scope = torch.NewDisposeScope();
        var tensors = new Dictionary<string, torch.Tensor>
        {
            ["f64"] = torch.tensor(new[] { Math.PI, -0.0, double.NaN }),
            ["i32"] = torch.tensor(new[] { int.MinValue, 5, int.MaxValue }),
            ["i16"] = torch.tensor(new short[] { short.MinValue, 7 }),
            ["i8"] = torch.tensor(new sbyte[] { -128, 127 }),
            ["u8"] = torch.tensor(new byte[] { 0, 200, 255 }),
            ["bool"] = torch.tensor(new[] { true, false, true }),
            ["scalar"] = torch.tensor(2.5f),
            ["empty"] = torch.empty(new long[] { 0, 3 }, torch.ScalarType.Float32),
        };
        var path = _files.PathOf("all.safetensors");

        SafeTensorsWriter.Write(path, tensors);

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(tensors.Keys.Order(), file.Tensors.Keys.Order());
        foreach (var (name, original) in tensors)
        {
            var loaded = file.Read(name);
            Assert.Equal(original.dtype, loaded.dtype);
            Assert.Equal(original.shape, loaded.shape);
            Assert.Equal(original.bytes.ToArray(), loaded.bytes.ToArray());
        }
    }

    [Fact]
    public void File_bytes_match_the_format_exactly()
    {
        using var a = torch.tensor(new[] { 1.0f, -2.0f });
        using var b = torch.tensor(new short[] { 0x0102 });
        var path = _files.PathOf("exact.safetensors");

        // Given in reverse order: the writer sorts by name.
        SafeTensorsWriter.Write(path, [new("b", b), new("a", a)]);

        var json = """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I16","shape":[1],"data_offsets":[8,10]}}""";
        var header = Encoding.UTF8.GetBytes(json.PadRight((json.Length + 7) / 8 * 8));
        var expected = new List<byte>();
        expected.AddRange(BitConverter.GetBytes((ulong)header.Length));
        expected.AddRange(header);
        expected.AddRange(BitConverter.GetBytes(1.0f));
        expected.AddRange(BitConverter.GetBytes(-2.0f));
        expected.AddRange(new byte[] { 0x02, 0x01 });
        Assert.Equal(expected.ToArray(), File.ReadAllBytes(path));
    }

    [Fact]
    public void Header_is_padded_with_spaces_so_data_starts_8_byte_aligned()
    {
        for (var nameLength = 1; nameLength <= 9; nameLength++)
        {
            using var t = torch.ones(3, torch.ScalarType.Float32);
            var path = _files.PathOf($"aligned{nameLength}.safetensors");
            SafeTensorsWriter.Write(path, [new(new string('x', nameLength), t)]);

            var bytes = File.ReadAllBytes(path);
            var headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
            Assert.Equal(0, headerLength % 8);
            var header = Encoding.UTF8.GetString(bytes, 8, (int)headerLength);
            var json = header.TrimEnd(' ');
            Assert.EndsWith("}", json, StringComparison.Ordinal);
            Assert.InRange(header.Length - json.Length, 0, 7);
            Assert.Equal(8 + headerLength + 12, bytes.Length);
        }
    }

    [Fact]
    public void Metadata_round_trips_and_is_written_first()
    {
        using var t = torch.zeros(2);
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode \"quoted\"", ["empty"] = "" };
        var path = _files.PathOf("meta.safetensors");

        SafeTensorsWriter.Write(path, [new("w", t)], metadata);

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(metadata.OrderBy(p => p.Key), file.Metadata.OrderBy(p => p.Key));
        var bytes = File.ReadAllBytes(path);
        var header = Encoding.UTF8.GetString(bytes, 8, (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes));
        Assert.StartsWith("{\"__metadata__\":", header, StringComparison.Ordinal);
        using var document = JsonDocument.Parse(header);
        Assert.Equal("pt", document.RootElement.GetProperty("__metadata__").GetProperty("format").GetString());
    }

    [Fact]
    public void File_without_metadata_has_empty_metadata()
    {
        using var t = torch.zeros(2);
        var path = _files.PathOf("nometa.safetensors");

        SafeTensorsWriter.Write(path, [new("w", t)]);

        using var file = SafeTensorsFile.Open(path);
        Assert.Empty(file.Metadata);
        Assert.DoesNotContain("__metadata__", File.ReadAllText(path), StringComparison.Ordinal);
    }

    [Fact]
    public void Non_contiguous_tensors_are_stored_in_row_major_order()
    {
        using var matrix = torch.arange(6, torch.ScalarType.Float32).reshape(2, 3);
        using var transposed = matrix.t();
        Assert.False(transposed.is_contiguous());
        var path = _files.PathOf("t.safetensors");

        SafeTensorsWriter.Write(path, [new("t", transposed)]);

        using var file = SafeTensorsFile.Open(path);
        using var loaded = file.Read("t");
        using var expected = transposed.contiguous();
        Assert.Equal(new long[] { 3, 2 }, loaded.shape);
        Assert.Equal(expected.bytes.ToArray(), loaded.bytes.ToArray());
        Assert.Equal(3f, loaded[0, 1].item<float>());
    }

    [Fact]
    public void Writer_does_not_dispose_the_callers_tensors()
    {
        using var t = torch.ones(4);
        var path = _files.PathOf("keep.safetensors");

        SafeTensorsWriter.Write(path, [new("t", t)]);

        Assert.False(t.IsInvalid);
        Assert.Equal(4f, t.sum().item<float>());
    }

    [Fact]
    public void Writer_rejects_duplicate_and_reserved_names_and_complex_tensors()
    {
        using var t = torch.ones(2);
        using var complex = torch.zeros(2, torch.ScalarType.ComplexFloat32);
        var path = _files.PathOf("bad.safetensors");

        Assert.Contains("twice", Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(path, [new("a", t), new("a", t)])).Message);
        Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(path, [new("__metadata__", t)]));
        Assert.Contains("ComplexFloat32", Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(path, [new("c", complex)])).Message);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void Chunked_copies_give_the_same_bytes_as_single_copies()
    {
        using var original = torch.arange(1000, torch.ScalarType.Int32);
        using var stream = new MemoryStream();

        // 7-byte chunks of a 4-byte dtype: one element per chunk.
        TensorBytes.Write(stream, original, maxChunkBytes: 7);
        Assert.Equal(original.bytes.ToArray(), stream.ToArray());

        stream.Position = 0;
        using var copy = torch.empty(1000, torch.ScalarType.Int32);
        TensorBytes.ReadExactly(stream, copy, maxChunkBytes: 64);
        Assert.Equal(original.bytes.ToArray(), copy.bytes.ToArray());
    }

    [Fact]
    public void Read_tensor_survives_the_file_being_closed()
    {
        using var t = torch.tensor(new[] { 4f, 5f });
        var path = _files.PathOf("own.safetensors");
        SafeTensorsWriter.Write(path, [new("t", t)]);

        var file = SafeTensorsFile.Open(path);
        using var loaded = file.Read("t");
        file.Dispose();

        Assert.Equal(9f, loaded.sum().item<float>());
        Assert.Throws<ObjectDisposedException>(() => file.Read("t"));
    }

    private torch.Tensor RoundTrip(torch.Tensor original, torch.ScalarType dtype)
    {
        var path = _files.PathOf($"{dtype}.safetensors");
        SafeTensorsWriter.Write(path, [new("x", original)]);
        using var file = SafeTensorsFile.Open(path);
        var loaded = file.Read("x");
        Assert.Equal(dtype, loaded.dtype);
        Assert.Equal(original.shape, loaded.shape);
        Assert.Equal(original.bytes.ToArray(), loaded.bytes.ToArray());
        var info = file.Tensors["x"];
        Assert.Equal(original.NumberOfElements * original.ElementSize, info.Length);
        return loaded;
    }

    private static torch.Tensor FromBits(ushort[] bits, torch.ScalarType dtype)
    {
        var tensor = torch.empty(bits.Length, dtype);
        var bytes = new byte[bits.Length * 2];
        for (var i = 0; i < bits.Length; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2 * i), bits[i]);
        }
        tensor.bytes = bytes;
        Assert.Equal(bytes, tensor.bytes.ToArray());
        return tensor;
    }
}
