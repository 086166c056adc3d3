using Microsoft.Extensions.Logging;

namespace Pollen.Node.Status;

/// <summary>
/// A logger provider that keeps the last <see cref="Capacity"/> lines in memory, for the dashboards'
/// log panel (<see cref="NodeStatus.RecentLog"/>). Adding it to a logger factory costs a lock and a
/// formatted message per line at or above <see cref="MinimumLevel"/>.
/// </summary>
public sealed class RecentLog : ILoggerProvider
{
    private readonly Queue<LogLine> _lines = new();
    private readonly TimeProvider _time;

    /// <summary>Keeps up to <paramref name="capacity"/> lines (default 200) of <paramref name="minimumLevel"/> (default Information) or above.</summary>
    public RecentLog(int capacity = 200, LogLevel minimumLevel = LogLevel.Information, TimeProvider? time = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
        MinimumLevel = minimumLevel;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>Most lines kept.</summary>
    public int Capacity { get; }

    /// <summary>Lowest level kept.</summary>
    public LogLevel MinimumLevel { get; }

    /// <summary>The kept lines, oldest first.</summary>
    public IReadOnlyList<LogLine> Lines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    /// <inheritdoc/>
    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    /// <inheritdoc/>
    public void Dispose()
    {
    }

    private void Add(LogLine line)
    {
        lock (_lines)
        {
            if (_lines.Count == Capacity)
            {
                _lines.Dequeue();
            }
            _lines.Enqueue(line);
        }
    }

    private sealed class Logger(RecentLog log, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= log.MinimumLevel && logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }
            var message = formatter(state, exception);
            if (exception is not null)
            {
                message += ": " + exception.Message;
            }
            log.Add(new LogLine(log._time.GetUtcNow(), logLevel.ToString().ToLowerInvariant(), category, message));
        }
    }
}
