using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pollen.Node.Dashboard;
using Pollen.Node.Status;
using Pollen.Swarm.Transport;

namespace Pollen.Node.Api;

/// <summary>
/// The OpenAI-compatible HTTP API on its own Kestrel endpoint (HTTP/1.1, which every HTTP client and
/// <c>curl</c> speak; the swarm's gRPC port is HTTP/2 only). Request bodies are capped by
/// <see cref="ApiOptions.MaxRequestBodyBytes"/> in Kestrel itself, so an oversized body is refused
/// while it is read, never buffered whole.
/// </summary>
public sealed class ApiServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ApiServer(WebApplication app, ServedModel model, Uri url)
    {
        _app = app;
        Model = model;
        Url = url;
    }

    /// <summary>The model served.</summary>
    public ServedModel Model { get; }

    /// <summary>Base URL clients use, e.g. <c>http://127.0.0.1:5000/</c> (the OpenAI base URL is this plus <c>v1</c>).</summary>
    public Uri Url { get; }

    /// <summary>
    /// Starts serving <paramref name="model"/> as <paramref name="options"/> say; with <paramref name="status"/>,
    /// also the web dashboard, <c>/api/status</c>, <c>/metrics</c> and <c>/healthz</c> (<see cref="DashboardEndpoints"/>).
    /// </summary>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    /// <exception cref="IOException">The port is taken.</exception>
    public static async Task<ApiServer> StartAsync(ServedModel model, ApiOptions options, ILoggerFactory? loggerFactory = null,
        TimeProvider? time = null, INodeStatusSource? status = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        loggerFactory ??= NullLoggerFactory.Instance;
        var listen = IPAddress.Parse(options.ListenAddress);
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.Services.AddSingleton(loggerFactory);
        builder.Services.AddSingleton(typeof(ILogger<>), typeof(Logger<>));
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
        {
            k.Listen(listen, options.Port, l => l.Protocols = HttpProtocols.Http1);
            k.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
            k.AddServerHeader = false;
        });
        builder.Services.AddRoutingCore();
        var app = builder.Build();
        if (status is not null)
        {
            app.MapPollenDashboard(status);
        }
        app.MapPollenApi(model, options, time);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        var port = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port;
        var url = new Uri($"http://{PeerAddress.Format(PeerAddress.DefaultHost(listen), port)}/");
        var logger = loggerFactory.CreateLogger<ApiServer>();
        Log.Listening(logger, model.Id, url);
        return new ApiServer(app, model, url);
    }

    /// <summary>Stops taking requests and waits up to <paramref name="grace"/> for running ones (default 5 s).</summary>
    public async Task StopAsync(TimeSpan? grace = null)
    {
        using var timeout = new CancellationTokenSource(grace ?? TimeSpan.FromSeconds(5));
        try
        {
            await _app.StopAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Stops (see <see cref="StopAsync"/>) and releases the endpoint. The model is not disposed.</summary>
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
