using TorchSharp;

namespace Pollen.Model.Checkpoints;

/// <summary>
/// An open safetensors file. <see cref="Open"/> reads and validates the whole header, so later reads cannot run
/// outside the file or overlap; <see cref="Read"/> copies one tensor's bytes straight from the file into a new
/// CPU tensor. Keeps the file open until disposed. Not thread-safe: reads share one file position.
/// </summary>
public sealed class SafeTensorsFile : IDisposable
{
    private readonly FileStream _stream;

    private SafeTensorsFile(string path, FileStream stream, SafeTensorsHeader header)
    {
        Path = path;
        _stream = stream;
        Tensors = header.Tensors;
        Metadata = header.Metadata;
    }

    /// <summary>Full path of the file.</summary>
    public string Path { get; }

    /// <summary>The tensors in the file by name.</summary>
    public IReadOnlyDictionary<string, TensorInfo> Tensors { get; }

    /// <summary>The header's <c>__metadata__</c> map (empty when absent), e.g. <c>format: pt</c>.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Opens <paramref name="path"/> and validates its header.</summary>
    /// <exception cref="CheckpointException">The file is missing, unreadable or not a valid safetensors file.</exception>
    public static SafeTensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var fullPath = System.IO.Path.GetFullPath(path);
        if (Directory.Exists(fullPath))
        {
            throw new CheckpointException(fullPath, null, "this is a directory, not a safetensors file",
                "Pass the .safetensors file inside it, or open the directory with ShardedSafeTensors.Open.");
        }
        FileStream stream;
        try
        {
            stream = new FileStream(fullPath, new FileStreamOptions
            {
                Mode = FileMode.Open,
                Access = FileAccess.Read,
                // Delete: an atomic writer may replace the file while it is open; we keep reading the old one.
                Share = FileShare.Read | FileShare.Delete,
                BufferSize = 0,
                Options = FileOptions.RandomAccess,
            });
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new CheckpointException(fullPath, null, "the file does not exist", "Check the path.", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new CheckpointException(fullPath, null, "the file cannot be opened for reading", "Check its permissions.", e);
        }
        try
        {
            return new SafeTensorsFile(fullPath, stream, SafeTensorsHeader.Read(stream, fullPath));
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>True when the file holds a tensor called <paramref name="name"/>.</summary>
    public bool Contains(string name) => Tensors.ContainsKey(name);

    /// <summary>The header entry of <paramref name="name"/>.</summary>
    /// <exception cref="CheckpointException">No such tensor; the message lists similar names.</exception>
    public TensorInfo GetInfo(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return Tensors.TryGetValue(name, out var info) ? info : throw UnknownTensor(Path, name, Tensors.Keys);
    }

    /// <summary>
    /// Reads <paramref name="name"/> into a new contiguous CPU tensor of the stored dtype and shape.
    /// The caller owns (and disposes) the result; it joins the current dispose scope like any new tensor.
    /// </summary>
    /// <exception cref="CheckpointException">
    /// No such tensor, a dtype TorchSharp lacks (U16, U32, U64, F8), invalid bool bytes, or the file shrank since it was opened.
    /// </exception>
    public torch.Tensor Read(string name)
    {
        ObjectDisposedException.ThrowIf(!_stream.CanRead, this);
        var info = GetInfo(name);
        var scalarType = info.DType.ToScalarType() ?? throw new CheckpointException(Path, name,
            $"dtype {info.DType.ToHeaderString()} has no TorchSharp equivalent",
            "Convert the checkpoint to a supported dtype (F32, F16, BF16, F64, I64, I32, I16, I8, U8 or BOOL).");
        var tensor = torch.empty(info.Shape, scalarType);
        try
        {
            _stream.Position = info.Offset;
            TensorBytes.ReadExactly(_stream, tensor);
            if (info.DType == SafeTensorsDType.Bool && TensorBytes.HasNonBooleanByte(tensor))
            {
                throw new CheckpointException(Path, name, "a BOOL element holds a byte other than 0 or 1",
                    CheckpointException.CorruptRemedy);
            }
            return tensor;
        }
        catch (EndOfStreamException e)
        {
            tensor.Dispose();
            throw new CheckpointException(Path, name, "the file ended before the tensor's data",
                "The file was truncated after it was opened; re-download it or save the checkpoint again.", e);
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }

    /// <summary>Closes the file.</summary>
    public void Dispose() => _stream.Dispose();

    /// <summary>An error for a missing tensor that lists up to five present names most similar to it.</summary>
    internal static CheckpointException UnknownTensor(string path, string name, IEnumerable<string> available)
    {
        var names = available.ToList();
        var similar = names
            .OrderByDescending(candidate => CommonPrefixLength(candidate, name))
            .ThenBy(candidate => candidate, StringComparer.Ordinal)
            .Take(5)
            .Select(candidate => $"'{candidate}'");
        var listing = names.Count == 0
            ? "it holds no tensors"
            : $"it holds {names.Count} tensors, e.g. {string.Join(", ", similar)}";
        return new CheckpointException(path, name, $"no such tensor; {listing}",
            "Check the tensor name, or that the checkpoint matches the model architecture.");
    }

    private static int CommonPrefixLength(string a, string b) => a.AsSpan().CommonPrefixLength(b);
}
