using Pollen.Inference.Client;

namespace Pollen.Inference.Routing;

/// <summary>Where a client learns which servers host which blocks of its model.</summary>
public interface IServerDirectory
{
    /// <summary>
    /// The known servers. <paramref name="refresh"/> asks for a fresh view (after a failure, or while
    /// waiting for missing blocks); otherwise a recent cached one may be returned.
    /// </summary>
    Task<IReadOnlyList<ServerSpan>> GetServersAsync(bool refresh, CancellationToken cancellationToken);

    /// <summary>Where the list comes from, for messages (e.g. "the DHT key pollen/model/M/servers").</summary>
    string Description { get; }
}

/// <summary>A fixed list of servers (<c>--servers host:port@start:end …</c>).</summary>
public sealed class StaticServerDirectory(IReadOnlyList<ServerSpan> servers) : IServerDirectory
{
    /// <inheritdoc/>
    public Task<IReadOnlyList<ServerSpan>> GetServersAsync(bool refresh, CancellationToken cancellationToken) => Task.FromResult(servers);

    /// <inheritdoc/>
    public string Description => "the --servers list";
}
