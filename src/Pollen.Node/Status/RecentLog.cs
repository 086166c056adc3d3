using Microsoft.Extensions.Logging;

namespace Pollen.Node.Status;

/// <summary>
/// A logger provider that keeps the last <see cref="Capacity"/> log lines in memory, for
/// <see cref="NodeStatus.RecentLog"/>: the terminal dashboard shows them in place of a scrolling console log.
/// </summary>
/// <remarks>
/// A fixed ring buffer under one short lock: logging costs one formatted string and one array store,
/// and never grows memory however long the node runs. Messages are formatted with the logger's own
/// formatter (the <c>[LoggerMessage]</c> template); an exception adds its type and the first line of its
/// message, not its stack trace, so that a line stays a line. Add it with
/// <c>logging.AddProvider(recentLog)</c>; the usual filters apply under the alias <c>RecentLog</c>.
/// </remarks>
[ProviderAlias("RecentLog")]
public sealed class RecentLog : ILoggerProvider
{
    /// <summary>Default number of lines kept: 200.</summary>
    public const int DefaultCapacity = 200;

    private readonly LogLine[] _lines;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private int _next;
    private int _count;
    private long _written;

    /// <summary>Keeps the last <paramref name="capacity"/> lines at <paramref name="minimumLevel"/> or above.</summary>
    /// <param name="capacity">Lines kept (default <see cref="DefaultCapacity"/>).</param>
    /// <param name="minimumLevel">The least severe level kept (default Information).</param>
    /// <param name="time">Clock for the lines' times (default the system clock).</param>
    public RecentLog(int capacity = DefaultCapacity, LogLevel minimumLevel = LogLevel.Information, TimeProvider? time = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _lines = new LogLine[capacity];
        MinimumLevel = minimumLevel;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>Lines kept.</summary>
    public int Capacity => _lines.Length;

    /// <summary>The least severe level kept.</summary>
    public LogLevel MinimumLevel { get; }

    /// <summary>Lines logged since start, including those no longer kept.</summary>
    public long Written
    {
        get
        {
            lock (_gate)
            {
                return _written;
            }
        }
    }

    /// <summary>Keeps <paramref name="line"/>, dropping the oldest line when full.</summary>
    public void Add(LogLine line)
    {
        ArgumentNullException.ThrowIfNull(line);
        lock (_gate)
        {
            _lines[_next] = line;
            _next = (_next + 1) % _lines.Length;
            _count = Math.Min(_count + 1, _lines.Length);
            _written++;
        }
    }

    /// <summary>The last <paramref name="n"/> lines kept (fewer when fewer are kept), oldest first.</summary>
    public IReadOnlyList<LogLine> Tail(int n)
    {
        lock (_gate)
        {
            var take = Math.Clamp(n, 0, _count);
            var tail = new LogLine[take];
            var start = (_next - take + _lines.Length) % _lines.Length;
            for (var i = 0; i < take; i++)
            {
                tail[i] = _lines[(start + i) % _lines.Length];
            }
            return tail;
        }
    }

    /// <inheritdoc/>
    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    /// <inheritdoc/>
    public void Dispose()
    {
    }

    /// <summary>The short level names of the console log: trce, dbug, info, warn, fail, crit.</summary>
    public static string LevelName(LogLevel level) => level switch
    {
        LogLevel.Trace => "trce",
        LogLevel.Debug => "dbug",
        LogLevel.Information => "info",
        LogLevel.Warning => "warn",
        LogLevel.Error => "fail",
        LogLevel.Critical => "crit",
        _ => "none",
    };

    /// <summary>A message with <paramref name="exception"/>'s type and the first line of its message appended.</summary>
    internal static string WithException(string message, Exception? exception)
    {
        if (exception is null)
        {
            return message;
        }
        var text = exception.Message;
        var end = text.AsSpan().IndexOfAny('\r', '\n');
        var first = (end >= 0 ? text[..end] : text).Trim();
        var what = first.Length == 0 ? exception.GetType().Name : $"{exception.GetType().Name}: {first}";
        return message.Length == 0 ? what : $"{message}: {what}";
    }

    private sealed class Logger(RecentLog log, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None && logLevel >= log.MinimumLevel;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }
            var message = formatter?.Invoke(state, exception) ?? state?.ToString() ?? "";
            log.Add(new LogLine(log._time.GetUtcNow(), LevelName(logLevel), category, WithException(message, exception)));
        }
    }
}
