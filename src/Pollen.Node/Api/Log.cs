using Microsoft.Extensions.Logging;

namespace Pollen.Node.Api;

internal static partial class Log
{
    [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "HTTP API serving {ModelId} on {Url}")]
    internal static partial void Listening(ILogger logger, string modelId, Uri url);

    [LoggerMessage(EventId = 401, Level = LogLevel.Debug, Message = "{Path}: {PromptTokens} prompt tokens, {CompletionTokens} generated, finish {Finish}, {Seconds:F2} s")]
    internal static partial void Generated(ILogger logger, string path, int promptTokens, int completionTokens, string finish, double seconds);

    [LoggerMessage(EventId = 402, Level = LogLevel.Debug, Message = "{Path}: refused with {Status}: {Message}")]
    internal static partial void Refused(ILogger logger, string path, int status, string message);

    [LoggerMessage(EventId = 403, Level = LogLevel.Warning, Message = "{Path}: the swarm cannot serve: {Message}")]
    internal static partial void SwarmUnavailable(ILogger logger, string path, string message);

    [LoggerMessage(EventId = 404, Level = LogLevel.Error, Message = "{Path}: request failed")]
    internal static partial void Failed(ILogger logger, string path, Exception exception);
}
