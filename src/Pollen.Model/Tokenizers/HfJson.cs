using System.Text.Json;
using System.Text.RegularExpressions;

namespace Pollen.Model.Tokenizers;

/// <summary>Typed reads from a parsed <c>tokenizer.json</c> that fail with a <see cref="TokenizerException"/> naming the setting.</summary>
internal static class HfJson
{
    /// <summary>Regex match timeout: patterns come from a file, so a pathological one must not hang a request.</summary>
    public static readonly TimeSpan RegexTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The property, or null when it is missing or JSON null.</summary>
    public static JsonElement? Get(JsonElement obj, string name) =>
        obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null
            ? value
            : null;

    public static string? GetString(JsonElement obj, string name, string where)
    {
        var value = Get(obj, name);
        if (value is null)
        {
            return null;
        }

        return value.Value.ValueKind == JsonValueKind.String
            ? value.Value.GetString()
            : throw Invalid(where, name, "must be a string");
    }

    public static string RequireString(JsonElement obj, string name, string where) =>
        GetString(obj, name, where) ?? throw Invalid(where, name, "is missing");

    public static bool GetBool(JsonElement obj, string name, bool defaultValue, string where)
    {
        var value = Get(obj, name);
        return value?.ValueKind switch
        {
            null => defaultValue,
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Invalid(where, name, "must be true or false"),
        };
    }

    public static int GetInt(JsonElement obj, string name, int defaultValue, string where)
    {
        var value = Get(obj, name);
        if (value is null)
        {
            return defaultValue;
        }

        return value.Value.ValueKind == JsonValueKind.Number && value.Value.TryGetInt32(out var result)
            ? result
            : throw Invalid(where, name, "must be an integer");
    }

    /// <summary>The <c>type</c> of a normalizer, pre-tokenizer, decoder or model object.</summary>
    public static string RequireType(JsonElement obj, string where) =>
        obj.ValueKind == JsonValueKind.Object
            ? RequireString(obj, "type", where)
            : throw new TokenizerException($"tokenizer.json: {where} must be an object.");

    /// <summary>The array property <paramref name="name"/>; missing counts as empty.</summary>
    public static JsonElement.ArrayEnumerator GetArray(JsonElement obj, string name, string where)
    {
        var value = Get(obj, name);
        if (value is null)
        {
            return default;
        }

        return value.Value.ValueKind == JsonValueKind.Array
            ? value.Value.EnumerateArray()
            : throw Invalid(where, name, "must be an array");
    }

    /// <summary>
    /// Reads a Hugging Face pattern, <c>{"String": "..."}</c> or <c>{"Regex": "..."}</c>, as a .NET regex.
    /// Hugging Face uses Oniguruma syntax; the patterns real tokenizers use are also valid .NET regexes,
    /// and one that is not fails here with a clear message.
    /// </summary>
    public static Regex GetPattern(JsonElement obj, string name, string where)
    {
        var pattern = Get(obj, name) ?? throw Invalid(where, name, "is missing");
        if (GetString(pattern, "String", where + "." + name) is { } literal)
        {
            return new Regex(Regex.Escape(literal), RegexOptions.CultureInvariant, RegexTimeout);
        }

        var regex = GetString(pattern, "Regex", where + "." + name)
            ?? throw Invalid(where, name, "must be {\"String\": ...} or {\"Regex\": ...}");
        try
        {
            return new Regex(regex, RegexOptions.Compiled | RegexOptions.CultureInvariant, RegexTimeout);
        }
        catch (ArgumentException e)
        {
            throw new TokenizerException(
                $"tokenizer.json: {where}.{name} regex '{regex}' is not supported by .NET regular expressions ({e.Message}).", e);
        }
    }

    public static TokenizerException Invalid(string where, string name, string problem) =>
        new($"tokenizer.json: {where}.{name} {problem}.");

    public static TokenizerException Unsupported(string where, string type, string supported) =>
        new($"tokenizer.json: {where} type '{type}' is not supported (supported: {supported}).");
}
