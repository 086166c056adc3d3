using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace Pollen.Cli.Commands;

/// <summary>Console logging for long-running node commands: one line per event, all on stderr, so
/// stdout carries only what scripts read (addresses, the JSON object).</summary>
internal static class NodeLogging
{
    public static ILoggerFactory Create(bool verbose) => LoggerFactory.Create(b =>
    {
        b.AddSimpleConsole(c =>
        {
            c.SingleLine = true;
            c.TimestampFormat = "HH:mm:ss ";
        });
        b.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        b.SetMinimumLevel(verbose ? LogLevel.Debug : LogLevel.Information);
        b.AddFilter("Microsoft", LogLevel.Warning);
        b.AddFilter("Grpc", LogLevel.Warning);
    });
}
