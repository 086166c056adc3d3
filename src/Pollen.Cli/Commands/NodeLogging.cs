using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace Pollen.Cli.Commands;

/// <summary>Console logging for long-running node commands: one line per event, all on stderr, so
/// stdout carries only what scripts read (addresses, the JSON object).</summary>
internal static class NodeLogging
{
    /// <param name="verbose">Debug level.</param>
    /// <param name="quiet">Warnings and errors only (for commands whose output is the result, like <c>generate</c>).</param>
    public static ILoggerFactory Create(bool verbose, bool quiet = false) => LoggerFactory.Create(b =>
    {
        b.AddSimpleConsole(c =>
        {
            c.SingleLine = true;
            c.TimestampFormat = "HH:mm:ss ";
        });
        b.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        b.SetMinimumLevel(verbose ? LogLevel.Debug : quiet ? LogLevel.Warning : LogLevel.Information);
        b.AddFilter("Microsoft", LogLevel.Warning);
        b.AddFilter("Grpc", LogLevel.Warning);
    });
}
