using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pollen.Swarm.Dht;
using Pollen.Swarm.Identity;
using Pollen.Swarm.Transport;

namespace Pollen.Swarm;

/// <summary>
/// A running swarm peer: the swarm port (Kestrel, HTTP/2 cleartext, gRPC) serving the DHT, and the
/// <see cref="DhtNode"/> that uses it. <see cref="StartAsync"/> binds, joins and starts maintenance;
/// disposing stops everything.
/// </summary>
/// <remarks>
/// Cleartext HTTP/2 (h2c) on one port keeps setup free of certificates; integrity of what matters
/// (records naming a peer) comes from signatures, not the channel. Kestrel is configured for HTTP/2
/// only, since gRPC needs nothing else and prior-knowledge h2c cannot share a port with HTTP/1.1.
/// </remarks>
public sealed class SwarmNode : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly bool _ownsIdentity;

    private SwarmNode(WebApplication app, DhtNode dht, bool ownsIdentity)
    {
        _app = app;
        Dht = dht;
        _ownsIdentity = ownsIdentity;
    }

    /// <summary>The DHT node.</summary>
    public DhtNode Dht { get; }

    /// <summary>This peer's id.</summary>
    public PeerId PeerId => Dht.PeerId;

    /// <summary>"host:port" others dial (the announce address).</summary>
    public string Address => Dht.Address;

    /// <summary>The port actually bound.</summary>
    public int Port { get; private set; }

    /// <summary>
    /// Binds the swarm port, joins through <see cref="SwarmOptions.InitialPeers"/> and starts background
    /// maintenance.
    /// </summary>
    /// <param name="options">Options; validated here.</param>
    /// <param name="identity">Key pair to use; null loads or creates <c>identity.key</c> in <see cref="SwarmOptions.Home"/>.</param>
    /// <param name="time">Clock for records, bans and maintenance; null for the system clock.</param>
    /// <param name="loggerFactory">Logging; null for none.</param>
    /// <param name="services">More gRPC services to serve on the swarm port (block serving, averaging); null for the DHT alone.</param>
    /// <param name="cancellationToken">Cancels start-up.</param>
    public static async Task<SwarmNode> StartAsync(SwarmOptions options, NodeIdentity? identity = null, TimeProvider? time = null, ILoggerFactory? loggerFactory = null,
        SwarmServices? services = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        loggerFactory ??= NullLoggerFactory.Instance;
        time ??= TimeProvider.System;
        var ownsIdentity = identity is null;
        identity ??= NodeIdentity.LoadOrCreate(options.Home);
        var dht = new DhtNode(identity, options, time, loggerFactory.CreateLogger<DhtNode>());

        // long-lived streams of other services need an unbounded body; each message is still capped by gRPC
        var builder = GrpcHost.CreateBuilder(options.ListenAddress, options.Port, options.MaxMessageBytes,
            services is null ? options.MaxMessageBytes + 1024 : null, loggerFactory);
        builder.Services.AddSingleton(dht);
        services?.Register(builder.Services);
        var app = builder.Build();
        app.MapGrpcService<DhtRpcService>();
        services?.Map(app);
        var node = new SwarmNode(app, dht, ownsIdentity);
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
            var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            node.Port = new Uri(bound).Port;
            var address = options.AnnounceAddress ?? PeerAddress.Format(PeerAddress.DefaultHost(IPAddress.Parse(options.ListenAddress)), node.Port);
            dht.SetAddress(address);
            var logger = loggerFactory.CreateLogger<SwarmNode>();
            Log.NodeStarted(logger, dht.PeerId, bound, address);
            Log.Options(logger, options.BucketSize, options.Alpha, options.RpcTimeout, options.RefreshInterval, options.RepublishInterval,
                options.MaxMessageBytes, options.Records.MaxValueBytes, options.Records.MaxExpirationAhead, options.MaxConnections);
            await dht.JoinAsync([.. options.InitialPeers], cancellationToken).ConfigureAwait(false);
            dht.StartMaintenance();
            return node;
        }
        catch
        {
            await node.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Stops serving at once (open calls are aborted) and stops maintenance.</summary>
    public async ValueTask DisposeAsync()
    {
        using (var abort = new CancellationTokenSource())
        {
            await abort.CancelAsync().ConfigureAwait(false);
            try
            {
                await _app.StopAsync(abort.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }
        await _app.DisposeAsync().ConfigureAwait(false);
        await Dht.DisposeAsync().ConfigureAwait(false);
        if (_ownsIdentity)
        {
            Dht.Identity.Dispose();
        }
    }
}
