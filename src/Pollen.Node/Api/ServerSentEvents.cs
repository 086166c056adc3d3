using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Pollen.Node.Api;

/// <summary>
/// Writes a response as server-sent events the way OpenAI streams: one <c>data: {json}</c> event per
/// chunk, flushed at once, and <c>data: [DONE]</c> at the end.
/// </summary>
internal static class ServerSentEvents
{
    public const string ContentType = "text/event-stream";

    private static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();

    public static void Start(HttpResponse response)
    {
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = ContentType;
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no"; // proxies (nginx) must not hold events back
    }

    public static async Task WriteAsync<T>(HttpResponse response, T payload, CancellationToken cancellationToken)
    {
        var json = JsonSerializer.Serialize(payload, OpenAiJson.Options);
        await response.Body.WriteAsync(Encoding.UTF8.GetBytes($"data: {json}\n\n"), cancellationToken).ConfigureAwait(false);
        await response.Body.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    public static async Task WriteDoneAsync(HttpResponse response, CancellationToken cancellationToken)
    {
        await response.Body.WriteAsync(Done, cancellationToken).ConfigureAwait(false);
        await response.Body.FlushAsync(cancellationToken).ConfigureAwait(false);
    }
}
