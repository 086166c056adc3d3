using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Pollen.Node.Status;

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
        Filter(b, verbose ? LogLevel.Debug : quiet ? LogLevel.Warning : LogLevel.Information);
    });

    /// <summary>
    /// Logging of <c>pollen node</c>: every line into <paramref name="recent"/> (the dashboards' log panel)
    /// and, with <paramref name="json"/>, as one JSON object per line on stderr (for log collectors and
    /// scripts; used when there is no terminal dashboard).
    /// </summary>
    public static ILoggerFactory CreateForNode(bool verbose, bool json, RecentLog recent) => LoggerFactory.Create(b =>
    {
        if (json)
        {
            b.AddJsonConsole(c =>
            {
                c.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
                c.UseUtcTimestamp = true;
            });
            b.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        }
        b.AddProvider(recent);
        Filter(b, verbose ? LogLevel.Debug : LogLevel.Information);
    });

    private static void Filter(ILoggingBuilder b, LogLevel level)
    {
        b.SetMinimumLevel(level);
        b.AddFilter("Microsoft", LogLevel.Warning);
        b.AddFilter("Grpc", LogLevel.Warning);
    }
}
