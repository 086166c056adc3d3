using TorchSharp;

namespace Pollen.Model.Checkpoints;

/// <summary>
/// One view over a checkpoint directory holding either <c>model.safetensors</c> or a sharded checkpoint
/// (<c>model.safetensors.index.json</c> plus its shard files); the single file wins when both exist, as in
/// Hugging Face Transformers. <see cref="Open"/> checks that every shard named by the index exists. Shards are
/// opened (and their headers validated, including that each tensor the index maps to them is there) only when
/// first needed, so reading a few layers touches only their shards; <see cref="Tensors"/> opens them all.
/// Not thread-safe.
/// </summary>
public sealed class ShardedSafeTensors : IDisposable
{
    /// <summary>The conventional name of a single-file checkpoint.</summary>
    public const string SingleFileName = "model.safetensors";

    private readonly IReadOnlyDictionary<string, string> _weightMap;
    private readonly Dictionary<string, SafeTensorsFile> _openShards = new(StringComparer.Ordinal);
    private Dictionary<string, TensorInfo>? _tensors;
    private bool _disposed;

    private ShardedSafeTensors(string directory, string sourcePath, IReadOnlyDictionary<string, string> weightMap,
        IReadOnlyDictionary<string, string> metadata)
    {
        Directory = directory;
        SourcePath = sourcePath;
        _weightMap = weightMap;
        Metadata = metadata;
    }

    /// <summary>Full path of the checkpoint directory.</summary>
    public string Directory { get; }

    /// <summary>The file the view was built from: <c>model.safetensors</c> or the index.</summary>
    public string SourcePath { get; }

    /// <summary>The index's metadata, or the single file's <c>__metadata__</c>.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>All tensor names, known without opening any shard.</summary>
    public IEnumerable<string> Names => _weightMap.Keys;

    /// <summary>Number of tensors.</summary>
    public int Count => _weightMap.Count;

    /// <summary>Every tensor's header entry. Opens and validates all shards on first use.</summary>
    public IReadOnlyDictionary<string, TensorInfo> Tensors
    {
        get
        {
            if (_tensors is null)
            {
                var tensors = new Dictionary<string, TensorInfo>(StringComparer.Ordinal);
                foreach (var (name, file) in _weightMap)
                {
                    tensors[name] = Shard(file).Tensors[name];
                }
                _tensors = tensors;
            }
            return _tensors;
        }
    }

    /// <summary>Opens the checkpoint in <paramref name="directory"/>.</summary>
    /// <exception cref="CheckpointException">
    /// Neither file exists, the index is invalid or names a missing shard, or the single file is invalid.
    /// </exception>
    public static ShardedSafeTensors Open(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var fullDirectory = Path.GetFullPath(directory);
        var singlePath = Path.Combine(fullDirectory, SingleFileName);
        if (File.Exists(singlePath))
        {
            var file = SafeTensorsFile.Open(singlePath);
            var weightMap = file.Tensors.Keys.ToDictionary(name => name, _ => SingleFileName, StringComparer.Ordinal);
            var view = new ShardedSafeTensors(fullDirectory, singlePath, weightMap, file.Metadata);
            view._openShards.Add(SingleFileName, file);
            return view;
        }
        var indexPath = Path.Combine(fullDirectory, SafeTensorsIndex.FileName);
        if (!File.Exists(indexPath))
        {
            throw new CheckpointException(fullDirectory, null,
                $"no {SingleFileName} or {SafeTensorsIndex.FileName} in {fullDirectory}",
                "Point at the directory that holds the checkpoint's safetensors files, or download them there.");
        }
        var index = SafeTensorsIndex.Load(indexPath);
        foreach (var shard in index.ShardFiles)
        {
            if (!File.Exists(Path.Combine(fullDirectory, shard)))
            {
                var mapped = index.WeightMap.Where(pair => pair.Value == shard).Select(pair => pair.Key).ToList();
                throw new CheckpointException(indexPath, null,
                    $"shard '{shard}' (holding {mapped.Count} tensors, e.g. '{mapped[0]}') is not in {fullDirectory}",
                    "Download the missing shard, or save the checkpoint again.");
            }
        }
        return new ShardedSafeTensors(fullDirectory, indexPath, index.WeightMap, index.Metadata);
    }

    /// <summary>True when the checkpoint holds <paramref name="name"/> (no shard is opened).</summary>
    public bool Contains(string name) => _weightMap.ContainsKey(name);

    /// <summary>The header entry of <paramref name="name"/>; opens its shard.</summary>
    /// <exception cref="CheckpointException">No such tensor, or its shard is invalid.</exception>
    public TensorInfo GetInfo(string name) => ShardOf(name).GetInfo(name);

    /// <summary>Reads <paramref name="name"/> into a new CPU tensor of the stored dtype; the caller owns it.</summary>
    /// <exception cref="CheckpointException">No such tensor, or its shard is invalid.</exception>
    public torch.Tensor Read(string name) => ShardOf(name).Read(name);

    /// <summary>Closes every opened shard.</summary>
    public void Dispose()
    {
        _disposed = true;
        foreach (var shard in _openShards.Values)
        {
            shard.Dispose();
        }
        _openShards.Clear();
    }

    private SafeTensorsFile ShardOf(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!_weightMap.TryGetValue(name, out var file))
        {
            throw SafeTensorsFile.UnknownTensor(SourcePath, name, _weightMap.Keys);
        }
        return Shard(file);
    }

    private SafeTensorsFile Shard(string file)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_openShards.TryGetValue(file, out var open))
        {
            return open;
        }
        var shard = SafeTensorsFile.Open(Path.Combine(Directory, file));
        var missing = _weightMap.Where(pair => pair.Value == file && !shard.Contains(pair.Key)).Select(pair => pair.Key).ToList();
        if (missing.Count > 0)
        {
            shard.Dispose();
            throw new CheckpointException(shard.Path, missing[0],
                $"the index maps this tensor{(missing.Count > 1 ? $" and {missing.Count - 1} more" : "")} to this shard, but the shard does not hold it",
                "The index and the shards come from different checkpoints; download them again together.");
        }
        _openShards.Add(file, shard);
        return shard;
    }
}
