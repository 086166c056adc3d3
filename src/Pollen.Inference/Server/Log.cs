using Microsoft.Extensions.Logging;
using static TorchSharp.torch;

namespace Pollen.Inference.Server;

internal static partial class Log
{
    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "Serving {ModelId} blocks {First}..{Last} in {Dtype} ({Layout} linear weights): cache {CacheTokens} tokens, idle timeout {IdleTimeout}, batching window {Window}")]
    internal static partial void Serving(ILogger logger, string modelId, int first, int last, ScalarType dtype, WeightLayout layout, long cacheTokens, TimeSpan idleTimeout, TimeSpan window);

    [LoggerMessage(EventId = 301, Level = LogLevel.Information, Message = "Refused a session needing {Needed} cache tokens: {Free} of {Budget} free")]
    internal static partial void SessionRefused(ILogger logger, long needed, long free, long budget);

    [LoggerMessage(EventId = 302, Level = LogLevel.Information, Message = "Session {SessionId} idle for {IdleTimeout}; closed")]
    internal static partial void SessionExpired(ILogger logger, long sessionId, TimeSpan idleTimeout);

    [LoggerMessage(EventId = 303, Level = LogLevel.Warning, Message = "Request failed with an unexpected error")]
    internal static partial void UnexpectedError(ILogger logger, Exception error);

    [LoggerMessage(EventId = 304, Level = LogLevel.Information, Message = "Session {SessionId} could not push its step to {Address}: {Reason}; its client carries it instead")]
    internal static partial void PushFailed(ILogger logger, long sessionId, string address, string reason);

    [LoggerMessage(EventId = 305, Level = LogLevel.Information, Message = "Refused a pushed step: {Reason}")]
    internal static partial void PushRefused(ILogger logger, string reason);

    [LoggerMessage(EventId = 306, Level = LogLevel.Information, Message = "Closed a push-lane connection from {Remote}: {Reason}")]
    internal static partial void PushLaneClosed(ILogger logger, string remote, string reason);

    [LoggerMessage(EventId = 307, Level = LogLevel.Information, Message = "Could not connect to the push lane at {Lane} ({Reason}); pushes to it go through gRPC for {For}")]
    internal static partial void PushLaneUnreachable(ILogger logger, string lane, string reason, TimeSpan @for);
}
