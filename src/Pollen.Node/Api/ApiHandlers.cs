using System.Diagnostics;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Pollen.Node.Api.Responses;
using Pollen.Swarm;

namespace Pollen.Node.Api;

/// <summary>
/// The request handlers of the HTTP API, one partial file per endpoint. Every request reads its own body,
/// opens its own decoding session (inside <c>TextGenerator</c>) and shares nothing else, so concurrent
/// requests need no locking here; the model's sessions are independent by contract.
/// </summary>
/// <remarks>
/// Failures become OpenAI-shaped JSON errors: <see cref="ApiException"/> with its status, a
/// <see cref="SwarmUnavailableException"/> with 503 (its message names the missing blocks), anything
/// else with 500 and a fixed message (logged, never sent). Streamed responses pull the first token
/// before the status line is written, so a swarm that cannot serve still gets a 503; a failure after
/// that is sent as a final <c>data: {"error": …}</c> event.
/// </remarks>
internal sealed partial class ApiHandlers(ServedModel model, ApiOptions options, TimeProvider time, ILogger logger)
{
    private readonly long _created = time.GetUtcNow().ToUnixTimeSeconds();

    public Task ModelsAsync(HttpContext context) =>
        WriteJsonAsync(context, new ModelList([new ModelCard(model.Id, _created)]));

    public Task ModelAsync(HttpContext context)
    {
        var id = (string?)context.Request.RouteValues["id"];
        if (!string.Equals(id, model.Id, StringComparison.Ordinal))
        {
            throw new ApiException(StatusCodes.Status404NotFound, $"the model '{id}' is not served here; this server serves '{model.Id}'",
                ApiException.InvalidRequest, "model", "model_not_found");
        }
        return WriteJsonAsync(context, new ModelCard(model.Id, _created));
    }

    /// <summary>Runs <paramref name="handler"/>, turning its failures into error responses (<paramref name="inputShape"/>: add <c>"ok": false</c>).</summary>
    public RequestDelegate Guard(Func<HttpContext, Task> handler, bool inputShape = false) => async context =>
    {
        var path = context.Request.Path.Value ?? "";
        try
        {
            await handler(context).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // the client went away; its session was closed by the generator's disposal
        }
        catch (ApiException e)
        {
            Log.Refused(logger, path, e.StatusCode, e.Message);
            await WriteErrorAsync(context, e, inputShape).ConfigureAwait(false);
        }
        catch (BadHttpRequestException e)
        {
            Log.Refused(logger, path, e.StatusCode, e.Message);
            await WriteErrorAsync(context, new ApiException(e.StatusCode, $"bad request: {e.Message}", ApiException.InvalidRequest), inputShape).ConfigureAwait(false);
        }
        catch (SwarmUnavailableException e)
        {
            Log.SwarmUnavailable(logger, path, e.Message);
            await WriteErrorAsync(context, new ApiException(StatusCodes.Status503ServiceUnavailable, e.Message, "service_unavailable_error", null, "swarm_unavailable"), inputShape)
                .ConfigureAwait(false);
        }
        catch (Exception e)
        {
            Log.Failed(logger, path, e);
            await WriteErrorAsync(context, new ApiException(StatusCodes.Status500InternalServerError, "the server failed to answer this request; see its log", "server_error"), inputShape)
                .ConfigureAwait(false);
        }
    };

    /// <summary>Reads the body within the size cap.</summary>
    private Task<(JsonDocument Document, RequestFields Fields)> ReadAsync(HttpContext context) =>
        RequestBody.ReadAsync(context.Request, options.MaxRequestBodyBytes, context.RequestAborted);

    private void LogGenerated(HttpContext context, int promptTokens, int completionTokens, string finish, Stopwatch clock)
    {
        if (logger.IsEnabled(LogLevel.Debug))
        {
            Log.Generated(logger, context.Request.Path.Value ?? "", promptTokens, completionTokens, finish, clock.Elapsed.TotalSeconds);
        }
    }

    private long Now() => time.GetUtcNow().ToUnixTimeSeconds();

    private static Task WriteJsonAsync<T>(HttpContext context, T body, int status = StatusCodes.Status200OK)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return JsonSerializer.SerializeAsync(context.Response.Body, body, OpenAiJson.Options, context.RequestAborted);
    }

    private static async Task WriteErrorAsync(HttpContext context, ApiException e, bool inputShape)
    {
        var body = new ErrorBody(new ErrorDetail(e.Message, e.Type, e.Param, e.Code), inputShape ? false : null);
        if (!context.Response.HasStarted)
        {
            await WriteJsonAsync(context, body, e.StatusCode).ConfigureAwait(false);
        }
        else if (context.Response.ContentType == ServerSentEvents.ContentType && !context.RequestAborted.IsCancellationRequested)
        {
            await ServerSentEvents.WriteAsync(context.Response, body, context.RequestAborted).ConfigureAwait(false);
        }
    }
}
