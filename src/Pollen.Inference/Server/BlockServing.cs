using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Pollen.Inference.Routing;
using Pollen.Swarm;
using Pollen.Swarm.Announcements;
using Pollen.Swarm.Dht;

namespace Pollen.Inference.Server;

/// <summary>
/// Serves blocks on a node's swarm port (next to the DHT) and keeps them announced: the server goes into
/// a <see cref="Slot"/> once loaded (before that, calls are refused as UNAVAILABLE), and
/// <see cref="StartAnnouncing"/> publishes a <see cref="ServerAnnouncement"/> under the model's key and the
/// node's entry in the peer directory, refreshed with the current free cache.
/// </summary>
public static class BlockServing
{
    /// <summary>Announcements stay valid this long without a refresh (refreshed every third of it).</summary>
    public static readonly TimeSpan DefaultTtl = TimeSpan.FromSeconds(60);

    /// <summary>Holds the served <see cref="BlockServer"/>, set once it is loaded.</summary>
    public sealed class Slot
    {
        private BlockServer? _server;

        /// <summary>The server, or null while loading.</summary>
        public BlockServer? Server
        {
            get => Volatile.Read(ref _server);
            set => Volatile.Write(ref _server, value);
        }
    }

    /// <summary>The <c>Blocks</c> service for <see cref="SwarmNode.StartAsync"/>, with messages up to <paramref name="maxMessageBytes"/>.</summary>
    public static SwarmServices Services(Slot slot, int maxMessageBytes) => new()
    {
        Register = services =>
        {
            services.AddSingleton(slot);
            services.AddGrpc().AddServiceOptions<BlocksService>(o =>
            {
                o.MaxReceiveMessageSize = maxMessageBytes + (64 << 10);
                o.MaxSendMessageSize = maxMessageBytes + (64 << 10);
            });
        },
        Map = endpoints => endpoints.MapGrpcService<BlocksService>(),
    };

    /// <summary>The announcement of <paramref name="server"/> reachable at <paramref name="node"/>'s address.</summary>
    public static ServerAnnouncement Describe(DhtNode node, BlockServer server, double throughput) =>
        Describe(node, server, throughput, (server.StartBlock, server.EndBlock));

    /// <summary>The announcement of <paramref name="span"/> (within what <paramref name="server"/> holds) reachable at <paramref name="node"/>'s address.</summary>
    public static ServerAnnouncement Describe(DhtNode node, BlockServer server, double throughput, (int Start, int End) span) => new()
    {
        PeerId = node.PeerId.ToString(),
        Address = node.Address,
        ModelId = server.Options.ModelId,
        ConfigFingerprint = server.Config.Fingerprint(),
        StartBlock = span.Start,
        EndBlock = span.End,
        Throughput = Math.Round(throughput, 1),
        FreeCacheTokens = server.FreeCacheTokens,
        Dtype = server.Dtype.ToString().ToLowerInvariant(),
        Version = PeerDirectory.SoftwareVersion,
    };

    /// <summary>
    /// Keeps <paramref name="server"/> announced under its model's key and in the peer directory (role
    /// <c>server</c>, serving <c>M/block/a..b</c>) until the returned announcer is disposed.
    /// </summary>
    public static Announcer StartAnnouncing(DhtNode node, BlockServer server, double throughput, TimeSpan ttl, TimeProvider time, ILogger logger,
        Func<(int Start, int End)>? span = null, (int Start, int End)? own = null) =>
        Announcer.Start(async ct =>
        {
            var announced = span?.Invoke() ?? (server.StartBlock, server.EndBlock);
            var announcement = Describe(node, server, throughput, announced);
            if (own is { } mine && mine != announced)
            {
                announcement = announcement with { OwnBlocks = [mine.Start, mine.End] };
            }
            await ModelServers.AnnounceAsync(node, announcement, ttl, time, ct).ConfigureAwait(false);
            await PeerDirectory.AnnounceAsync(node, new PeerAnnouncement
            {
                PeerId = announcement.PeerId,
                Address = announcement.Address,
                Version = announcement.Version,
                Role = "server",
                Serves = [$"{announcement.ModelId}/block/{announcement.StartBlock}..{announcement.EndBlock - 1}"],
                ThroughputTokensPerSecond = Math.Round(throughput / Math.Max(1, announcement.EndBlock - announcement.StartBlock), 1),
                FreeMemoryBytes = null,
            }, ttl, time, ct).ConfigureAwait(false);
        }, ttl, time, logger);

    /// <summary>
    /// Takes <paramref name="server"/>'s announcements back when it leaves: its subkeys under the model's key
    /// and in the peer directory are overwritten by entries readers skip (an empty span, no served blocks),
    /// valid a little longer than the last announcement could be, so they win over any replica of it. Clients
    /// stop routing to the server at their next directory refresh instead of after the TTL.
    /// </summary>
    public static async Task WithdrawAsync(DhtNode node, BlockServer server, TimeSpan ttl, TimeProvider time, CancellationToken cancellationToken)
    {
        var tombstoneTtl = ttl + TimeSpan.FromSeconds(5);
        var last = Describe(node, server, 0);
        await ModelServers.AnnounceAsync(node, last with { StartBlock = 0, EndBlock = 0, FreeCacheTokens = 0 }, tombstoneTtl, time, cancellationToken).ConfigureAwait(false);
        await PeerDirectory.AnnounceAsync(node, new PeerAnnouncement
        {
            PeerId = last.PeerId,
            Address = last.Address,
            Version = last.Version,
            Role = "left",
            Serves = [],
            ThroughputTokensPerSecond = 0,
            FreeMemoryBytes = null,
        }, tombstoneTtl, time, cancellationToken).ConfigureAwait(false);
    }
}
