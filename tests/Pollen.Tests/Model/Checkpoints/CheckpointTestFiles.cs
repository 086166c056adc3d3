using System.Buffers.Binary;
using System.Text;

namespace Pollen.Tests.Model.Checkpoints;

/// <summary>A temporary directory deleted on dispose, and helpers that build raw (possibly invalid) safetensors files.</summary>
internal sealed class CheckpointTestFiles : IDisposable
{
    public CheckpointTestFiles()
    {
        Directory = Path.Combine(Path.GetTempPath(), "pollen-checkpoint-tests-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(Directory);
    }

    public string Directory { get; }

    public string PathOf(string fileName) => Path.Combine(Directory, fileName);

    /// <summary>Writes u64 header length, the header (padded with spaces to 8 bytes), then <paramref name="data"/>.</summary>
    public string WriteRaw(string fileName, string headerJson, byte[] data)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        var padded = (header.Length + 7) / 8 * 8;
        var bytes = new byte[8 + padded + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)padded);
        header.CopyTo(bytes, 8);
        bytes.AsSpan(8 + header.Length, padded - header.Length).Fill((byte)' ');
        data.CopyTo(bytes, 8 + padded);
        var path = PathOf(fileName);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>The leftover temporary files of atomic writes.</summary>
    public string[] TempFiles() => System.IO.Directory.GetFiles(Directory, "*.pollen-tmp");

    public void Dispose() => System.IO.Directory.Delete(Directory, recursive: true);
}
