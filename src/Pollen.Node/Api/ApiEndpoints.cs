using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Pollen.Node.Api;

/// <summary>Maps the HTTP API onto an ASP.NET Core app.</summary>
public static class ApiEndpoints
{
    /// <summary>The routes, for messages.</summary>
    public const string Routes = "GET /v1/models, POST /v1/completions, POST /v1/chat/completions, POST /input";

    /// <summary>
    /// Maps <c>GET /v1/models</c>, <c>GET /v1/models/{id}</c>, <c>POST /v1/completions</c>,
    /// <c>POST /v1/chat/completions</c> and <c>POST /input</c> for <paramref name="model"/>, and a JSON 404/405
    /// for everything else.
    /// </summary>
    public static IEndpointRouteBuilder MapPollenApi(this IEndpointRouteBuilder endpoints, ServedModel model, ApiOptions options, TimeProvider? time = null)
    {
        var logger = endpoints.ServiceProvider.GetRequiredService<ILoggerFactory>().CreateLogger("Pollen.Node.Api");
        var handlers = new ApiHandlers(model, options, time ?? TimeProvider.System, logger);
        endpoints.MapGet("/v1/models", handlers.Guard(handlers.ModelsAsync));
        endpoints.MapGet("/v1/models/{id}", handlers.Guard(handlers.ModelAsync));
        endpoints.MapPost("/v1/completions", handlers.Guard(handlers.CompletionsAsync));
        endpoints.MapPost("/v1/chat/completions", handlers.Guard(handlers.ChatAsync));
        endpoints.MapPost("/input", handlers.Guard(handlers.InputAsync, inputShape: true));
        endpoints.MapFallback(handlers.Guard(NotFound));
        return endpoints;
    }

    private static Task NotFound(HttpContext context)
    {
        var path = context.Request.Path.Value;
        var method = context.Request.Method;
        var post = path is "/v1/completions" or "/v1/chat/completions" or "/input";
        if (post || path == "/v1/models")
        {
            throw new ApiException(StatusCodes.Status405MethodNotAllowed, $"{method} is not allowed on {path}; use {(post ? "POST" : "GET")}", ApiException.InvalidRequest);
        }
        throw new ApiException(StatusCodes.Status404NotFound, $"no endpoint {method} {path}; this server answers {Routes}", ApiException.InvalidRequest, null, "unknown_url");
    }
}
