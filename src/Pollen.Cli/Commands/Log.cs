using Microsoft.Extensions.Logging;

namespace Pollen.Cli.Commands;

internal static partial class Log
{
    [LoggerMessage(EventId = 900, Level = LogLevel.Information, Message = "Chose blocks {Start}..{Last}: the least served of the model ({Servers} server(s) announced)")]
    internal static partial void ChoseSpan(ILogger logger, int start, int last, int servers);
}
