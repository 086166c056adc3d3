using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pollen.Swarm.Transport;

namespace Pollen.Inference.Server;

/// <summary>
/// A Kestrel endpoint (HTTP/2 cleartext, gRPC) serving one <see cref="BlockServer"/>. Message size limits
/// come from <see cref="BlockServerOptions.MaxMessageBytes"/> so an oversized request is refused by the
/// transport (RESOURCE_EXHAUSTED) before it is buffered.
/// </summary>
public sealed class BlockServerHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly IDisposable? _lane;

    private BlockServerHost(WebApplication app, IDisposable? lane, BlockServer server, string address)
    {
        _app = app;
        _lane = lane;
        Server = server;
        Address = address;
    }

    /// <summary>The blocks served.</summary>
    public BlockServer Server { get; }

    /// <summary>"host:port" clients dial.</summary>
    public string Address { get; }

    /// <summary>Stops the push lane alone (its connections are cut); the servers before this one push over gRPC from then on.</summary>
    internal void StopPushLane() => _lane?.Dispose();

    /// <summary>
    /// Starts serving on <paramref name="listenAddress"/>:<paramref name="port"/> (0 for an ephemeral port), with
    /// a push lane on another ephemeral port unless <paramref name="pushLane"/> is false.
    /// </summary>
    public static async Task<BlockServerHost> StartAsync(BlockServer server, string listenAddress = "127.0.0.1", int port = 0,
        ILoggerFactory? loggerFactory = null, bool pushLane = true, CancellationToken cancellationToken = default)
    {
        loggerFactory ??= NullLoggerFactory.Instance;
        var max = server.Options.MaxMessageBytes + (64 << 10);
        // streams are long-lived; each message is capped by gRPC
        var builder = GrpcHost.CreateBuilder(listenAddress, port, max, maxRequestBodyBytes: null, loggerFactory);
        var blocks = BlockServing.Services(new BlockServing.Slot { Server = server }, server.Options.MaxMessageBytes);
        blocks.Register(builder.Services);
        var app = builder.Build();
        blocks.Map(app);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        var lane = pushLane ? server.ListenForPushes(listenAddress, 0) : null;
        return new BlockServerHost(app, lane, server, PeerAddress.Format(PeerAddress.DefaultHost(IPAddress.Parse(listenAddress)), GrpcHost.BoundPort(app)));
    }

    /// <summary>Stops at once: the push lane's connections are cut and open streams aborted (what a client sees when a server dies). The server itself is not disposed.</summary>
    public async ValueTask DisposeAsync()
    {
        _lane?.Dispose();
        using var abort = new CancellationTokenSource();
        await abort.CancelAsync().ConfigureAwait(false);
        try
        {
            await _app.StopAsync(abort.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
