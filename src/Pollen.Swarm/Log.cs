using Microsoft.Extensions.Logging;

namespace Pollen.Swarm;

internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Swarm node {PeerId} listening on {Listen}, announcing {Address}")]
    public static partial void NodeStarted(ILogger logger, Identity.PeerId peerId, string listen, string address);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Joined the swarm through {Answered} of {Given} initial peers; {Known} peers known")]
    public static partial void Joined(ILogger logger, int answered, int given, int known);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "No initial peers: founding a new swarm")]
    public static partial void Founding(ILogger logger);

    [LoggerMessage(EventId = 4, Level = LogLevel.Debug, Message = "Call {Method} to {Address} failed ({Status}); banned for {Ban}")]
    public static partial void CallFailed(ILogger logger, string method, string address, string status, TimeSpan ban);

    [LoggerMessage(EventId = 5, Level = LogLevel.Debug, Message = "Refused entry {Subkey}: {Reason}")]
    public static partial void EntryRefused(ILogger logger, string subkey, string reason);

    [LoggerMessage(EventId = 6, Level = LogLevel.Warning, Message = "Background {Loop} failed")]
    public static partial void LoopFailed(ILogger logger, string loop, Exception exception);

    [LoggerMessage(EventId = 7, Level = LogLevel.Debug, Message = "Republished {Records} records; refreshed {Buckets} buckets")]
    public static partial void Maintenance(ILogger logger, int records, int buckets);

    [LoggerMessage(EventId = 9, Level = LogLevel.Information, Message = "DHT options: k={K} alpha={Alpha} rpc-timeout={RpcTimeout} refresh={Refresh} republish={Republish} max-message={MaxMessageBytes} B max-value={MaxValueBytes} B max-expiration={MaxExpiration} max-connections={MaxConnections}")]
    public static partial void Options(ILogger logger, int k, int alpha, TimeSpan rpcTimeout, TimeSpan refresh, TimeSpan republish, int maxMessageBytes, int maxValueBytes, TimeSpan maxExpiration, int maxConnections);

    [LoggerMessage(EventId = 8, Level = LogLevel.Debug, Message = "Ignored sender with inconsistent peer info from {Address}")]
    public static partial void BadSender(ILogger logger, string address);
}
