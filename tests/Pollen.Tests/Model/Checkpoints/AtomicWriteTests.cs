using Pollen.Model.Checkpoints;
using TorchSharp;

namespace Pollen.Tests.Model.Checkpoints;

public sealed class AtomicWriteTests : IDisposable
{
    private readonly CheckpointTestFiles _files = new();

    public void Dispose() => _files.Dispose();

    [Fact]
    public void WriteAllText_creates_and_replaces_files_without_leftovers()
    {
        var path = _files.PathOf("config.json");

        AtomicFile.WriteAllText(path, "{\"a\": 1}");
        AtomicFile.WriteAllText(path, "{\"b\": \"ü\"}");

        // UTF-8 without a byte order mark.
        Assert.Equal("{\"b\": \"ü\"}"u8.ToArray(), File.ReadAllBytes(path));
        Assert.Empty(_files.TempFiles());
    }

    [Fact]
    public void Failure_mid_write_keeps_the_old_file_and_removes_the_temp_file()
    {
        var path = _files.PathOf("config.json");
        AtomicFile.WriteAllText(path, "old");
        string[] tempDuringWrite = [];

        var e = Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, stream =>
        {
            stream.Write("new content, half written"u8);
            stream.Flush();
            tempDuringWrite = _files.TempFiles();
            throw new InvalidOperationException("disk on fire");
        }));

        Assert.Equal("disk on fire", e.Message);
        Assert.Single(tempDuringWrite);
        Assert.Equal("old", File.ReadAllText(path));
        Assert.Empty(_files.TempFiles());
    }

    [Fact]
    public void Writer_failing_in_the_tensor_enumeration_keeps_the_old_checkpoint()
    {
        using var old = torch.tensor(new[] { 1f, 2f });
        var path = _files.PathOf("model.safetensors");
        SafeTensorsWriter.Write(path, [new("old", old)]);
        var before = File.ReadAllBytes(path);

        Assert.Throws<InvalidOperationException>(() => SafeTensorsWriter.Write(path, ThrowAfterFirst()));

        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Empty(_files.TempFiles());
    }

    [Fact]
    public void Writer_failing_after_part_of_the_data_is_written_keeps_the_old_checkpoint()
    {
        using var old = torch.tensor(new[] { 1f, 2f });
        var path = _files.PathOf("model.safetensors");
        SafeTensorsWriter.Write(path, [new("old", old)]);
        var before = File.ReadAllBytes(path);
        using var good = torch.ones(1024);
        // A meta tensor has a shape and dtype (so the header is written) but no data: copying it fails.
        using var dataless = torch.empty(new long[] { 1024 }, torch.ScalarType.Float32, device: torch.META);

        Assert.ThrowsAny<Exception>(() => SafeTensorsWriter.Write(path, [new("a", good), new("b", dataless)]));

        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Empty(_files.TempFiles());
        using var file = SafeTensorsFile.Open(path);
        using var loaded = file.Read("old");
        Assert.Equal(3f, loaded.sum().item<float>());
    }

    private static IEnumerable<KeyValuePair<string, torch.Tensor>> ThrowAfterFirst()
    {
        yield return new("a", torch.ones(3));
        throw new InvalidOperationException("enumeration failed");
    }
}
