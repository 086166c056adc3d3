using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Pollen.Swarm.Transport;

/// <summary>
/// The one way Pollen hosts gRPC: an empty Kestrel app on one HTTP/2 cleartext port, message sizes
/// capped in both directions, no detailed errors (remote callers get a status and a message, never a
/// stack trace), no server header. The DHT node and the block server both build on it.
/// </summary>
public static class GrpcHost
{
    /// <summary>
    /// A builder listening on <paramref name="listenAddress"/>:<paramref name="port"/> (0 = any free port).
    /// <paramref name="maxRequestBodyBytes"/> caps a whole request body; null lifts it for long-lived
    /// streams, whose messages are still capped by <paramref name="maxMessageBytes"/>.
    /// </summary>
    public static WebApplicationBuilder CreateBuilder(string listenAddress, int port, int maxMessageBytes, long? maxRequestBodyBytes, ILoggerFactory loggerFactory)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.Services.AddSingleton(loggerFactory);
        builder.Services.AddSingleton(typeof(ILogger<>), typeof(Logger<>));
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Parse(listenAddress), port, listen => listen.Protocols = HttpProtocols.Http2);
            k.Limits.MaxRequestBodySize = maxRequestBodyBytes;
            k.AddServerHeader = false;
        });
        builder.Services.AddRoutingCore();
        builder.Services.AddGrpc(g =>
        {
            g.MaxReceiveMessageSize = maxMessageBytes;
            g.MaxSendMessageSize = maxMessageBytes;
            g.EnableDetailedErrors = false;
        });
        return builder;
    }

    /// <summary>The port a started app is bound to (resolves port 0).</summary>
    public static int BoundPort(WebApplication app) =>
        new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port;
}
