using System.Buffers.Binary;
using Pollen.Model.Checkpoints;
using TorchSharp;

namespace Pollen.Tests.Model.Checkpoints;

public sealed class SafeTensorsValidationTests : IDisposable
{
    private readonly CheckpointTestFiles _files = new();

    public void Dispose() => _files.Dispose();

    [Fact]
    public void A_valid_hand_built_file_opens()
    {
        var path = _files.WriteRaw("ok.safetensors",
            """{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"format":"pt"}}""",
            [.. BitConverter.GetBytes(3f), .. BitConverter.GetBytes(4f)]);

        using var file = SafeTensorsFile.Open(path);
        var info = file.Tensors["w"];

        Assert.Equal(SafeTensorsDType.F32, info.DType);
        Assert.Equal(new long[] { 2 }, info.Shape);
        Assert.Equal(8, info.Length);
        Assert.Equal(new FileInfo(path).Length - 8, info.Offset);
        Assert.Equal("pt", file.Metadata["format"]);
        using var w = file.Read("w");
        Assert.Equal(7f, w.sum().item<float>());
    }

    [Fact]
    public void Truncated_file_reports_data_running_past_the_end()
    {
        using var t = torch.ones(16);
        var path = _files.PathOf("trunc.safetensors");
        SafeTensorsWriter.Write(path, [new("weight", t)]);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^10]);

        var e = AssertFails(path, "weight", "run past the end of the data region");

        Assert.Contains("re-download", e.Message);
    }

    [Fact]
    public void File_shorter_than_the_length_prefix_is_rejected()
    {
        var path = _files.PathOf("tiny.safetensors");
        File.WriteAllBytes(path, [1, 2, 3, 4, 5]);

        AssertFails(path, null, "too short for the 8-byte header length");
    }

    [Fact]
    public void Header_length_beyond_the_file_is_rejected()
    {
        var path = _files.PathOf("long.safetensors");
        var bytes = new byte[64];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 1000);
        File.WriteAllBytes(path, bytes);

        AssertFails(path, null, "header length is 1000 bytes but only 56 bytes follow");
    }

    [Fact]
    public void Header_length_above_100_MB_is_rejected()
    {
        var path = _files.PathOf("huge.safetensors");
        var bytes = new byte[64];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, ulong.MaxValue);
        File.WriteAllBytes(path, bytes);

        AssertFails(path, null, "100000000-byte limit");
    }

    [Fact]
    public void Bad_json_is_rejected()
    {
        var path = _files.WriteRaw("json.safetensors", """{"w": {"dtype": "F32", """, []);

        AssertFails(path, null, "not valid JSON");
    }

    [Fact]
    public void Header_that_is_not_an_object_is_rejected()
    {
        var path = _files.WriteRaw("array.safetensors", "[1, 2]", []);

        AssertFails(path, null, "not an object");
    }

    [Fact]
    public void Unknown_dtype_is_rejected_with_the_known_list()
    {
        var path = _files.WriteRaw("dtype.safetensors", """{"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}""", new byte[4]);

        var e = AssertFails(path, "w", "dtype 'F33' is not a known safetensors dtype");

        Assert.Contains("BF16", e.Message);
    }

    [Fact]
    public void Offsets_out_of_range_are_rejected()
    {
        var path = _files.WriteRaw("range.safetensors", """{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", new byte[8]);

        AssertFails(path, "w", "data_offsets [0, 16] run past the end of the data region (8 bytes)");
    }

    [Fact]
    public void Offsets_that_end_before_they_begin_are_rejected()
    {
        var path = _files.WriteRaw("order.safetensors", """{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}""", new byte[8]);

        AssertFails(path, "w", "end before they begin");
    }

    [Fact]
    public void Byte_length_that_does_not_match_shape_and_dtype_is_rejected()
    {
        var path = _files.WriteRaw("len.safetensors", """{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", new byte[12]);

        AssertFails(path, "w", "span 8 bytes but F32 with shape [3] needs 12 bytes");
    }

    [Fact]
    public void Overlapping_ranges_are_rejected()
    {
        var path = _files.WriteRaw("overlap.safetensors",
            """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""",
            new byte[12]);

        AssertFails(path, "b", "overlap those of 'a'");
    }

    [Fact]
    public void Adjacent_ranges_and_empty_tensors_do_not_count_as_overlap()
    {
        var path = _files.WriteRaw("adjacent.safetensors",
            """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"b":{"dtype":"I16","shape":[2],"data_offsets":[8,12]}}""",
            new byte[12]);

        using var file = SafeTensorsFile.Open(path);

        Assert.Equal(3, file.Tensors.Count);
        using var e = file.Read("e");
        Assert.Equal(0, e.NumberOfElements);
    }

    [Fact]
    public void Negative_or_fractional_shape_is_rejected()
    {
        var negative = _files.WriteRaw("neg.safetensors", """{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}""", []);
        var fraction = _files.WriteRaw("frac.safetensors", """{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,6]}}""", new byte[6]);

        AssertFails(negative, "w", "'shape' holds -1, not a non-negative 64-bit integer");
        AssertFails(fraction, "w", "'shape' holds 1.5");
    }

    [Fact]
    public void Shape_whose_size_overflows_is_rejected()
    {
        var path = _files.WriteRaw("overflow.safetensors",
            """{"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}""", new byte[8]);

        AssertFails(path, "w", "more bytes than a 64-bit size can count");
    }

    [Fact]
    public void Missing_entry_fields_are_rejected()
    {
        var noDtype = _files.WriteRaw("nodtype.safetensors", """{"w":{"shape":[1],"data_offsets":[0,4]}}""", new byte[4]);
        var noOffsets = _files.WriteRaw("nooffsets.safetensors", """{"w":{"dtype":"F32","shape":[1]}}""", new byte[4]);
        var threeOffsets = _files.WriteRaw("three.safetensors", """{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}""", new byte[8]);

        AssertFails(noDtype, "w", "no string 'dtype'");
        AssertFails(noOffsets, "w", "no array 'data_offsets'");
        AssertFails(threeOffsets, "w", "'data_offsets' has 3 values instead of 2");
    }

    [Fact]
    public void Duplicate_tensor_names_are_rejected()
    {
        var path = _files.WriteRaw("dup.safetensors",
            """{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}""", new byte[2]);

        AssertFails(path, "w", "lists this tensor twice");
    }

    [Fact]
    public void Non_string_metadata_is_rejected()
    {
        var path = _files.WriteRaw("meta.safetensors", """{"__metadata__":{"total_size":12}}""", []);

        AssertFails(path, null, "metadata value 'total_size' is a JSON Number, not a string");
    }

    [Fact]
    public void Missing_file_gives_a_checkpoint_error()
    {
        AssertFails(_files.PathOf("absent.safetensors"), null, "does not exist");
    }

    [Fact]
    public void Directory_instead_of_a_file_points_to_the_sharded_reader()
    {
        AssertFails(_files.Directory, null, "this is a directory, not a safetensors file");
    }

    [Fact]
    public void Unknown_tensor_name_lists_the_most_similar_names()
    {
        using var scope = torch.NewDisposeScope();
        var tensors = Enumerable.Range(0, 12).Select(i => new KeyValuePair<string, torch.Tensor>($"layers.{i}.weight", torch.zeros(1)));
        var path = _files.PathOf("names.safetensors");
        SafeTensorsWriter.Write(path, [.. tensors, new("embed.weight", torch.zeros(1))]);
        using var file = SafeTensorsFile.Open(path);

        var e = Assert.Throws<CheckpointException>(() => file.Read("layers.1.bias"));

        Assert.Equal("layers.1.bias", e.TensorName);
        Assert.Contains(path, e.Message);
        Assert.Contains("13 tensors", e.Message);
        Assert.Contains("'layers.1.weight'", e.Message);
        Assert.DoesNotContain("embed.weight", e.Message);
        Assert.False(file.Contains("layers.1.bias"));
    }

    [Fact]
    public void Dtype_without_a_torch_equivalent_opens_but_cannot_be_read()
    {
        var path = _files.WriteRaw("u16.safetensors",
            """{"u":{"dtype":"U16","shape":[2],"data_offsets":[0,4]},"f":{"dtype":"U8","shape":[1],"data_offsets":[4,5]}}""", new byte[5]);
        using var file = SafeTensorsFile.Open(path);

        var e = Assert.Throws<CheckpointException>(() => file.Read("u"));

        Assert.Contains("dtype U16 has no TorchSharp equivalent", e.Message);
        using var f = file.Read("f");
        Assert.Equal(torch.ScalarType.Byte, f.dtype);
    }

    [Fact]
    public void Bool_bytes_other_than_0_or_1_are_rejected_on_read()
    {
        var path = _files.WriteRaw("bool.safetensors", """{"b":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}}""", [1, 0, 2]);
        using var file = SafeTensorsFile.Open(path);

        var e = Assert.Throws<CheckpointException>(() => file.Read("b"));

        Assert.Contains("byte other than 0 or 1", e.Message);
    }

    [Fact]
    public void Error_message_names_file_and_tensor_and_ends_with_a_remedy_sentence()
    {
        var e = new CheckpointException("/ckpt/model.safetensors", "w", "it is broken", "save it again");

        Assert.Equal("/ckpt/model.safetensors: tensor 'w': it is broken. Save it again.", e.Message);
        Assert.Equal("/ckpt/model.safetensors", e.FilePath);
    }

    private static CheckpointException AssertFails(string path, string? tensorName, string expected)
    {
        var e = Assert.Throws<CheckpointException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.Contains(Path.GetFullPath(path), e.Message);
        Assert.Contains(expected, e.Message);
        Assert.Equal(tensorName, e.TensorName);
        if (tensorName is not null)
        {
            Assert.Contains($"tensor '{tensorName}'", e.Message);
        }
        return e;
    }
}
