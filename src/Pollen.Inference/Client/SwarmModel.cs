using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pollen.Model;
using Pollen.Model.Config;
using Pollen.Swarm;
using Pollen.Swarm.Transport;

namespace Pollen.Inference.Client;

/// <summary>
/// A causal LM whose embedding and head run here and whose blocks run on servers: each session routes
/// its hidden states through a chain of server spans covering blocks 0..L-1.
/// </summary>
/// <remarks>
/// Routes are chosen greedily — from each block, the unbanned server whose span reaches furthest — which
/// minimizes hops (each hop costs a round trip, the dominant cost on small models); ties go to the server
/// listed first. A failed server is banned for a while (<see cref="PeerBans"/>) so every session routes
/// around it, not only the one that saw it fail.
/// </remarks>
public sealed class SwarmModel : ICausalLM, IDisposable
{
    private readonly IReadOnlyList<ServerSpan> _servers;
    private readonly PeerChannelPool _channels;
    private readonly ILogger _logger;

    /// <summary>Creates a model over the given servers.</summary>
    public SwarmModel(ModelEnds ends, IReadOnlyList<ServerSpan> servers, SwarmModelOptions? options = null, TimeProvider? time = null, ILogger<SwarmModel>? logger = null)
    {
        Options = options ?? new SwarmModelOptions();
        Options.Validate();
        Ends = ends;
        _servers = servers;
        _logger = logger ?? NullLogger<SwarmModel>.Instance;
        Bans = new PeerBans(time ?? TimeProvider.System, Options.BanDuration, Options.MaxBanDuration);
        _channels = new PeerChannelPool(Options.MaxMessageBytes + (64 << 10), TimeSpan.FromSeconds(5), 256);
    }

    /// <inheritdoc/>
    public ModelConfig Config => Ends.Config;

    /// <summary>Embedding and head.</summary>
    public ModelEnds Ends { get; }

    /// <summary>The options in effect.</summary>
    public SwarmModelOptions Options { get; }

    /// <summary>Servers that failed recently and are skipped.</summary>
    public PeerBans Bans { get; }

    internal ILogger Logger => _logger;

    internal Grpc.Net.Client.GrpcChannel Channel(string address) => _channels.Get(address);

    /// <inheritdoc/>
    public IDecodingSession OpenSession(int maxLength) => new SwarmDecodingSession(this, Math.Min(maxLength, Config.MaxPositionEmbeddings));

    /// <summary>
    /// A chain of (server, start, end) covering blocks <paramref name="start"/>..<paramref name="end"/>-1 over
    /// unbanned servers.
    /// </summary>
    /// <exception cref="SwarmUnavailableException">No unbanned server hosts some block; the message names it.</exception>
    public IReadOnlyList<(ServerSpan Server, int Start, int End)> FindRoute(int start, int end)
    {
        var route = new List<(ServerSpan, int, int)>();
        var block = start;
        while (block < end)
        {
            ServerSpan? best = null;
            foreach (var server in _servers)
            {
                if (server.Start <= block && server.End > block && !Bans.IsBanned(server.Address) && (best is null || server.End > best.End))
                {
                    best = server;
                }
            }
            if (best is null)
            {
                throw new SwarmUnavailableException($"no reachable server hosts block {block} (blocks {block}..{end - 1} are missing); start one with 'pollen serve --blocks {block}:{end}'");
            }
            var to = Math.Min(best.End, end);
            route.Add((best, block, to));
            block = to;
        }
        return route;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _channels.Dispose();
        Ends.Dispose();
    }
}
