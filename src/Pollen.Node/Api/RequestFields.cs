using System.Globalization;
using System.Text.Json;

namespace Pollen.Node.Api;

/// <summary>
/// Typed access to the fields of a JSON request object. A field that is absent or <c>null</c> reads as
/// null (the default applies); a field of the wrong type or out of range throws an
/// <see cref="ApiException"/> naming the field, what it must be and what was sent.
/// </summary>
internal readonly struct RequestFields(JsonElement root)
{
    /// <summary>The field's value, or null when absent or JSON null.</summary>
    public JsonElement? Get(string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

    public string? String(string name)
    {
        if (Get(name) is not { } value)
        {
            return null;
        }
        return value.ValueKind == JsonValueKind.String ? value.GetString() : throw WrongType(name, "a string", value);
    }

    public bool? Bool(string name)
    {
        if (Get(name) is not { } value)
        {
            return null;
        }
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw WrongType(name, "true or false", value),
        };
    }

    /// <summary>An integer for which <paramref name="valid"/> holds; <paramref name="requirement"/> completes "must be …".</summary>
    public long? Integer(string name, Func<long, bool> valid, string requirement)
    {
        if (Get(name) is not { } value)
        {
            return null;
        }
        if (value.ValueKind != JsonValueKind.Number)
        {
            throw WrongType(name, "an integer", value);
        }
        long number;
        if (!value.TryGetInt64(out number))
        {
            // 5.0 is an integer; 5.5 and 1e30 are not
            if (!value.TryGetDouble(out var d) || d != Math.Floor(d) || Math.Abs(d) > long.MaxValue / 2)
            {
                throw ApiException.BadRequest(name, $"'{name}' must be an integer, got {value.GetRawText()}");
            }
            number = (long)d;
        }
        return valid(number) ? number : throw OutOfRange(name, requirement, value);
    }

    /// <summary>A finite number for which <paramref name="valid"/> holds; <paramref name="requirement"/> completes "must be …".</summary>
    public double? Number(string name, Func<double, bool> valid, string requirement)
    {
        if (Get(name) is not { } value)
        {
            return null;
        }
        if (value.ValueKind != JsonValueKind.Number)
        {
            throw WrongType(name, "a number", value);
        }
        var number = value.GetDouble();
        return double.IsFinite(number) && valid(number) ? number : throw OutOfRange(name, requirement, value);
    }

    /// <summary>
    /// Stop strings: one string or an array of at most <paramref name="max"/> non-empty strings (OpenAI's
    /// <c>stop</c>). Absent gives an empty list.
    /// </summary>
    public IReadOnlyList<string> StopStrings(string name, int max)
    {
        if (Get(name) is not { } value)
        {
            return [];
        }
        List<string> stops;
        if (value.ValueKind == JsonValueKind.String)
        {
            stops = [value.GetString()!];
        }
        else if (value.ValueKind == JsonValueKind.Array)
        {
            stops = [];
            foreach (var item in value.EnumerateArray())
            {
                stops.Add(item.ValueKind == JsonValueKind.String ? item.GetString()! : throw WrongType(name, "a string or an array of strings", item));
            }
            if (stops.Count > max)
            {
                throw ApiException.BadRequest(name, $"'{name}' has {stops.Count} strings; give at most {max}");
            }
        }
        else
        {
            throw WrongType(name, "a string or an array of strings", value);
        }
        return stops.Any(string.IsNullOrEmpty) ? throw ApiException.BadRequest(name, $"'{name}' must not contain an empty string") : stops;
    }

    /// <summary>"a string", "an array", … for messages.</summary>
    public static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "nothing",
    };

    public static ApiException WrongType(string name, string expected, JsonElement got) =>
        ApiException.BadRequest(name, $"'{name}' must be {expected}, got {Describe(got.ValueKind)}");

    private static ApiException OutOfRange(string name, string requirement, JsonElement got) =>
        ApiException.BadRequest(name, string.Create(CultureInfo.InvariantCulture, $"'{name}' must be {requirement} (got {got.GetRawText()})"));
}
