using System.Globalization;
using System.Text.Json;

namespace Pollen.Model.Checkpoints;

/// <summary>
/// The index of a sharded checkpoint (<c>model.safetensors.index.json</c>):
/// <c>{"metadata": {...}, "weight_map": {"tensor name": "model-00001-of-00002.safetensors", ...}}</c>.
/// Shard names must be plain file names in the index's directory, so an index cannot point outside it.
/// </summary>
public sealed class SafeTensorsIndex
{
    /// <summary>The conventional file name of the index.</summary>
    public const string FileName = "model.safetensors.index.json";

    /// <summary>Creates an index.</summary>
    /// <param name="weightMap">Tensor name to shard file name.</param>
    /// <param name="metadata">Optional metadata; Hugging Face stores <c>total_size</c> (bytes of tensor data).</param>
    public SafeTensorsIndex(IReadOnlyDictionary<string, string> weightMap, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(weightMap);
        foreach (var (name, file) in weightMap)
        {
            if (!IsPlainFileName(file))
            {
                throw new ArgumentException($"tensor '{name}' maps to '{file}', which is not a plain file name", nameof(weightMap));
            }
        }
        WeightMap = new Dictionary<string, string>(weightMap, StringComparer.Ordinal);
        Metadata = metadata is null
            ? new Dictionary<string, string>(StringComparer.Ordinal)
            : new Dictionary<string, string>(metadata, StringComparer.Ordinal);
    }

    /// <summary>Tensor name to shard file name (relative to the index's directory).</summary>
    public IReadOnlyDictionary<string, string> WeightMap { get; }

    /// <summary>The index's metadata; non-string JSON values (such as <c>total_size</c>) are kept as their JSON text.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>The distinct shard file names, in ordinal order.</summary>
    public IReadOnlyList<string> ShardFiles =>
        WeightMap.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();

    /// <summary>Reads and validates an index file (it does not check the shards; <see cref="ShardedSafeTensors"/> does).</summary>
    /// <exception cref="CheckpointException">The file is missing or not a valid index.</exception>
    public static SafeTensorsIndex Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var fullPath = Path.GetFullPath(path);
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(fullPath);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new CheckpointException(fullPath, null, "the index file does not exist", "Check the path.", e);
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw new CheckpointException(fullPath, null, $"the index is not valid JSON ({e.Message})", IndexRemedy, e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("weight_map", out var weightMapElement)
                || weightMapElement.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointException(fullPath, null, "the index has no 'weight_map' object", IndexRemedy);
            }
            var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var item in weightMapElement.EnumerateObject())
            {
                if (item.Value.ValueKind != JsonValueKind.String || !IsPlainFileName(item.Value.GetString()!))
                {
                    throw new CheckpointException(fullPath, item.Name,
                        $"the weight_map entry {item.Value.GetRawText()} is not a file name in the index's directory", IndexRemedy);
                }
                if (!weightMap.TryAdd(item.Name, item.Value.GetString()!))
                {
                    throw new CheckpointException(fullPath, item.Name, "the weight_map lists this tensor twice", IndexRemedy);
                }
            }
            if (weightMap.Count == 0)
            {
                throw new CheckpointException(fullPath, null, "the weight_map is empty", IndexRemedy);
            }
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            if (root.TryGetProperty("metadata", out var metadataElement) && metadataElement.ValueKind == JsonValueKind.Object)
            {
                foreach (var item in metadataElement.EnumerateObject())
                {
                    metadata[item.Name] = item.Value.ValueKind == JsonValueKind.String ? item.Value.GetString()! : item.Value.GetRawText();
                }
            }
            return new SafeTensorsIndex(weightMap, metadata);
        }
    }

    /// <summary>Writes the index to <paramref name="path"/> atomically, keys sorted; <c>total_size</c> is written as a number.</summary>
    public void Save(string path)
    {
        AtomicFile.Write(path, stream =>
        {
            using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
            json.WriteStartObject();
            json.WriteStartObject("metadata");
            foreach (var (key, value) in Metadata.OrderBy(pair => pair.Key, StringComparer.Ordinal))
            {
                if (key == "total_size" && long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var number))
                {
                    json.WriteNumber(key, number);
                }
                else
                {
                    json.WriteString(key, value);
                }
            }
            json.WriteEndObject();
            json.WriteStartObject("weight_map");
            foreach (var (name, file) in WeightMap.OrderBy(pair => pair.Key, StringComparer.Ordinal))
            {
                json.WriteString(name, file);
            }
            json.WriteEndObject();
            json.WriteEndObject();
            json.Flush();
            stream.WriteByte((byte)'\n');
        });
    }

    private const string IndexRemedy = "The index is corrupt or not a safetensors index; re-download it or save the checkpoint again.";

    private static bool IsPlainFileName(string file) =>
        file.Length > 0 && file is not ("." or "..") && Path.GetFileName(file) == file
        && file.IndexOfAny(['/', '\\']) < 0 && file.IndexOfAny(Path.GetInvalidFileNameChars()) < 0;
}
