using System.Text.Json;
using System.Text.Json.Nodes;

namespace Pollen.Model.Config;

/// <summary>Reads typed values from a config JSON object; every failure names its key.</summary>
internal sealed class ConfigReader(JsonObject root)
{
    private readonly HashSet<string> _read = [];

    public int Int(string key, int? fallback = null)
    {
        var node = Get(key);
        if (node is null)
        {
            return fallback ?? throw new ModelConfigException(key, "is required");
        }
        if (node is JsonValue v && v.TryGetValue<long>(out var l) && l is >= int.MinValue and <= int.MaxValue)
        {
            return (int)l;
        }
        if (node is JsonValue d && d.TryGetValue<double>(out var x) && x == Math.Floor(x) && Math.Abs(x) < int.MaxValue)
        {
            return (int)x;
        }
        throw new ModelConfigException(key, $"expected an integer, found {node.ToJsonString()}");
    }

    public int? OptionalInt(string key) => Get(key) is null ? null : Int(key);

    public double Double(string key, double fallback)
    {
        var node = Get(key);
        if (node is null)
        {
            return fallback;
        }
        if (node is JsonValue v && v.TryGetValue<double>(out var d) && double.IsFinite(d))
        {
            return d;
        }
        throw new ModelConfigException(key, $"expected a number, found {node.ToJsonString()}");
    }

    public bool Bool(string key, bool fallback)
    {
        var node = Get(key);
        if (node is null)
        {
            return fallback;
        }
        if (node is JsonValue v && v.TryGetValue<bool>(out var b))
        {
            return b;
        }
        throw new ModelConfigException(key, $"expected true or false, found {node.ToJsonString()}");
    }

    public string String(string key, string fallback)
    {
        var node = Get(key);
        if (node is null)
        {
            return fallback;
        }
        if (node is JsonValue v && v.TryGetValue<string>(out var s))
        {
            return s;
        }
        throw new ModelConfigException(key, $"expected a string, found {node.ToJsonString()}");
    }

    public T Enum<T>(string key, T fallback)
        where T : struct, Enum
    {
        var text = String(key, fallback.ToString().ToLowerInvariant());
        if (System.Enum.TryParse<T>(text, ignoreCase: true, out var value) && System.Enum.IsDefined(value)
            && !char.IsDigit(text[0]))
        {
            return value;
        }
        var allowed = string.Join(", ", System.Enum.GetNames<T>().Select(n => $"\"{n.ToLowerInvariant()}\""));
        throw new ModelConfigException(key, $"'{text}' is not one of {allowed}");
    }

    public IReadOnlyList<int> IntOrIntList(string key)
    {
        var node = Get(key);
        switch (node)
        {
            case null:
                return [];
            case JsonArray array:
                var ids = new List<int>();
                foreach (var item in array)
                {
                    if (item is JsonValue v && v.TryGetValue<long>(out var l) && l is >= 0 and <= int.MaxValue)
                    {
                        ids.Add((int)l);
                    }
                    else
                    {
                        throw new ModelConfigException(key, $"expected integer ids, found {item?.ToJsonString() ?? "null"}");
                    }
                }
                return ids;
            default:
                return [Int(key)];
        }
    }

    public JsonObject? Object(string key)
    {
        var node = Get(key);
        return node switch
        {
            null => null,
            JsonObject o => o,
            _ => throw new ModelConfigException(key, $"expected an object or null, found {node.ToJsonString()}"),
        };
    }

    /// <summary>The keys not read so far, to be written back unchanged.</summary>
    public Dictionary<string, JsonNode?> Unread() =>
        root.Where(kv => !_read.Contains(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value?.DeepClone());

    private JsonNode? Get(string key)
    {
        _read.Add(key);
        return root.TryGetPropertyValue(key, out var node) && node is not null
            && !(node is JsonValue v && v.GetValueKind() == JsonValueKind.Null) ? node : null;
    }
}
