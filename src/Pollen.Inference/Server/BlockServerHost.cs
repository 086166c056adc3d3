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

    private BlockServerHost(WebApplication app, BlockServer server, string address)
    {
        _app = app;
        Server = server;
        Address = address;
    }

    /// <summary>The blocks served.</summary>
    public BlockServer Server { get; }

    /// <summary>"host:port" clients dial.</summary>
    public string Address { get; }

    /// <summary>Starts serving on <paramref name="listenAddress"/>:<paramref name="port"/> (0 for an ephemeral port).</summary>
    public static async Task<BlockServerHost> StartAsync(BlockServer server, string listenAddress = "127.0.0.1", int port = 0,
        ILoggerFactory? loggerFactory = null, CancellationToken cancellationToken = default)
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
        return new BlockServerHost(app, server, PeerAddress.Format(PeerAddress.DefaultHost(IPAddress.Parse(listenAddress)), GrpcHost.BoundPort(app)));
    }

    /// <summary>Stops at once: open streams are aborted (what a client sees when a server dies). The server itself is not disposed.</summary>
    public async ValueTask DisposeAsync()
    {
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
