namespace Pollen.Inference.Client;

/// <summary>A server at <paramref name="Address"/> ("host:port") hosting blocks <paramref name="Start"/>..<paramref name="End"/>-1.</summary>
public sealed record ServerSpan(string Address, int Start, int End)
{
    /// <summary>The server's peer id, when it was found in the DHT.</summary>
    public string? PeerId { get; init; }

    /// <summary>Announced speed in block-steps per second (one-token steps through one block); null if unknown.</summary>
    public double? Throughput { get; init; }

    /// <summary>Announced free cache, in tokens; null if unknown.</summary>
    public long? FreeCacheTokens { get; init; }

    /// <summary>Parses "host:port@start:end" (end exclusive), e.g. <c>127.0.0.1:7000@0:4</c>.</summary>
    public static ServerSpan Parse(string text)
    {
        var at = text.LastIndexOf('@');
        var colon = at < 0 ? -1 : text.IndexOf(':', at);
        if (at <= 0 || colon < 0
            || !int.TryParse(text.AsSpan(at + 1, colon - at - 1), System.Globalization.CultureInfo.InvariantCulture, out var start)
            || !int.TryParse(text.AsSpan(colon + 1), System.Globalization.CultureInfo.InvariantCulture, out var end)
            || start < 0 || end <= start)
        {
            throw new FormatException($"'{text}' is not host:port@start:end (e.g. 127.0.0.1:7000@0:4, end exclusive)");
        }
        return new ServerSpan(text[..at], start, end);
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Address}@{Start}:{End}";
}
