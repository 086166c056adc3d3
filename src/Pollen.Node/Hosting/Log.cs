using Microsoft.Extensions.Logging;

namespace Pollen.Node.Hosting;

internal static partial class Log
{
    [LoggerMessage(EventId = 600, Level = LogLevel.Information, Message = "Node options {Options}")]
    internal static partial void Options(ILogger logger, string options);

    [LoggerMessage(EventId = 601, Level = LogLevel.Information, Message = "Serving round {Round} (parameters {Hash})")]
    internal static partial void WeightsSwapped(ILogger logger, long round, string hash);

    [LoggerMessage(EventId = 602, Level = LogLevel.Error, Message = "Could not replace the served weights")]
    internal static partial void SwapFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 603, Level = LogLevel.Warning, Message = "No initial peer answered (attempt {Attempt} of {Attempts}); retrying in {Delay}")]
    internal static partial void JoinRetry(ILogger logger, int attempt, int attempts, TimeSpan delay);

    [LoggerMessage(EventId = 604, Level = LogLevel.Information, Message = "Round {Round} done: {Peers} peer(s), validation loss {Loss:F3}, {TokensPerSecond:F0} tokens/s, parameters {Hash}")]
    internal static partial void RoundDone(ILogger logger, int round, int peers, double loss, double tokensPerSecond, string hash);

    [LoggerMessage(EventId = 605, Level = LogLevel.Information, Message = "Caught up with the run at round {Round}")]
    internal static partial void CaughtUp(ILogger logger, int round);

    [LoggerMessage(EventId = 606, Level = LogLevel.Warning, Message = "Training round failed, retrying: {Reason}")]
    internal static partial void RoundFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 607, Level = LogLevel.Information, Message = "Fetched round {Round} from {Peer} (parameters {Hash})")]
    internal static partial void Followed(ILogger logger, long round, string peer, string hash);

    [LoggerMessage(EventId = 608, Level = LogLevel.Warning, Message = "Could not fetch the run's latest round: {Reason}")]
    internal static partial void FollowFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 609, Level = LogLevel.Information, Message = "Leaving: sessions refused, announcements withdrawn, checkpoint of round {Round} saved in {Directory}")]
    internal static partial void Left(ILogger logger, long round, string directory);

    [LoggerMessage(EventId = 610, Level = LogLevel.Warning, Message = "Could not withdraw the announcements (they expire on their own): {Reason}")]
    internal static partial void WithdrawFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 611, Level = LogLevel.Information, Message = "Serving blocks {Start}..{Last} of {ModelId} ({Throughput:F0} block-steps/s), chosen from {Servers} other server(s)")]
    internal static partial void ServingSpan(ILogger logger, int start, int last, string modelId, double throughput, int servers);

    [LoggerMessage(EventId = 613, Level = LogLevel.Debug, Message = "Stopping interrupted the node's work")]
    internal static partial void Interrupted(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 612, Level = LogLevel.Information, Message = "Resumed round {Round} from {Directory}")]
    internal static partial void Resumed(ILogger logger, long round, string directory);

    [LoggerMessage(EventId = 614, Level = LogLevel.Information, Message = "Announcing blocks {Start}..{Last}: {Reason}")]
    internal static partial void CoverageChanged(ILogger logger, int start, int last, string reason);

    [LoggerMessage(EventId = 615, Level = LogLevel.Warning, Message = "Could not check the model's coverage: {Reason}")]
    internal static partial void CoverageCheckFailed(ILogger logger, string reason);
}
