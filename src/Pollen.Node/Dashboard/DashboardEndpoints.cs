using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Pollen.Node.Status;

namespace Pollen.Node.Dashboard;

/// <summary>The web dashboard and the monitoring endpoints of a node.</summary>
public static class DashboardEndpoints
{
    /// <summary>The routes, for messages.</summary>
    public const string Routes = "GET / (dashboard), GET /api/status, GET /metrics, GET /healthz";

    private static readonly Lazy<byte[]> Page = new(() => Resource("index.html"));

    /// <summary>
    /// Maps <c>GET /</c> (the dashboard page, shipped inside the assembly: no build step, no CDN),
    /// <c>GET /api/status</c> (<see cref="NodeStatus"/> as JSON), <c>GET /metrics</c> (Prometheus text) and
    /// <c>GET /healthz</c> (200 when every block of the model is served by some peer, else 503 naming the
    /// missing blocks).
    /// </summary>
    public static IEndpointRouteBuilder MapPollenDashboard(this IEndpointRouteBuilder endpoints, INodeStatusSource status)
    {
        endpoints.MapGet("/", context => WriteAsync(context, "text/html; charset=utf-8", Page.Value));
        endpoints.MapGet("/api/status", context =>
        {
            var snapshot = status.Snapshot();
            return WriteAsync(context, "application/json; charset=utf-8", JsonSerializer.SerializeToUtf8Bytes(snapshot, NodeStatus.Json));
        });
        endpoints.MapGet("/metrics", context => WriteAsync(context, PrometheusText.ContentType, System.Text.Encoding.UTF8.GetBytes(PrometheusText.Format(status.Snapshot()))));
        endpoints.MapGet("/healthz", context =>
        {
            var (code, body) = Health(status);
            context.Response.StatusCode = code;
            return WriteAsync(context, "application/json; charset=utf-8", System.Text.Encoding.UTF8.GetBytes(body.ToJsonString()));
        });
        return endpoints;
    }

    /// <summary>The health answer: status code and body.</summary>
    internal static (int Code, JsonObject Body) Health(INodeStatusSource status)
    {
        NodeStatus snapshot;
        try
        {
            snapshot = status.Snapshot();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return (StatusCodes.Status503ServiceUnavailable, new JsonObject { ["status"] = "unavailable", ["error"] = e.Message });
        }
        var perBlock = Coverage.PerBlock(snapshot);
        var missing = Enumerable.Range(0, perBlock.Length).Where(b => perBlock[b] == 0).ToArray();
        var body = new JsonObject
        {
            ["status"] = missing.Length == 0 ? "ok" : "degraded",
            ["peer_id"] = snapshot.Node.PeerId,
            ["model_id"] = snapshot.Model.ModelId,
            ["peers"] = snapshot.Peers.Count,
            ["blocks"] = snapshot.Model.NumBlocks,
            ["blocks_covered"] = perBlock.Length - missing.Length,
        };
        if (missing.Length > 0)
        {
            body["missing_blocks"] = Ranges(missing);
        }
        return (missing.Length == 0 ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable, body);
    }

    /// <summary>Block indices as ranges, e.g. "2:4, 6:7" (end exclusive).</summary>
    internal static string Ranges(IReadOnlyList<int> blocks)
    {
        var parts = new List<string>();
        for (var i = 0; i < blocks.Count;)
        {
            var j = i;
            while (j + 1 < blocks.Count && blocks[j + 1] == blocks[j] + 1)
            {
                j++;
            }
            parts.Add($"{blocks[i]}:{blocks[j] + 1}");
            i = j + 1;
        }
        return string.Join(", ", parts);
    }

    private static Task WriteAsync(HttpContext context, string contentType, byte[] body)
    {
        context.Response.ContentType = contentType;
        context.Response.Headers.CacheControl = "no-store";
        context.Response.ContentLength = body.Length;
        return context.Response.Body.WriteAsync(body, context.RequestAborted).AsTask();
    }

    private static byte[] Resource(string name)
    {
        var assembly = typeof(DashboardEndpoints).Assembly;
        using var stream = assembly.GetManifestResourceStream($"Pollen.Node.Dashboard.{name}")
            ?? throw new InvalidOperationException($"the dashboard resource {name} is missing from {assembly.GetName().Name}");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
