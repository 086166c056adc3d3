using Microsoft.Extensions.Logging;

namespace Pollen.Inference.Client;

internal static partial class Log
{
    [LoggerMessage(EventId = 320, Level = LogLevel.Warning, Message = "Server {Server} failed a step, banned for {Ban}; rerouting its blocks and replaying: {Reason}")]
    internal static partial void HopFailed(ILogger logger, string server, TimeSpan ban, string reason);

    [LoggerMessage(EventId = 321, Level = LogLevel.Warning, Message = "Server {Server} failed its check, banned for {Ban}: {Reason}")]
    internal static partial void ProbeFailed(ILogger logger, string server, TimeSpan ban, string reason);

    [LoggerMessage(EventId = 322, Level = LogLevel.Warning, Message = "Waiting for servers ({Remaining} left): {Missing}")]
    internal static partial void WaitingForBlocks(ILogger logger, string missing, TimeSpan remaining);

    [LoggerMessage(EventId = 323, Level = LogLevel.Information, Message = "A step pushed along the route stopped: server {Server} {What} ({Reason}); asking each server where it stands and carrying the step on from there")]
    internal static partial void ChainInterrupted(ILogger logger, ServerSpan server, string what, string reason);

    [LoggerMessage(EventId = 324, Level = LogLevel.Information, Message = "A step pushed along the route got no answer within {Timeout}; asking each server where it stands and carrying the step on from there")]
    internal static partial void ChainTimedOut(ILogger logger, TimeSpan timeout);
}
