using Pollen.Node.Status;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Pollen.Node.Terminal;

/// <summary>
/// The live picture of a node in its terminal: who it is, which peers serve which blocks (and which
/// blocks nobody serves), training and serving progress, and the tail of the log, redrawn from
/// <see cref="INodeStatusSource.Snapshot"/> about twice a second.
/// </summary>
/// <remarks>
/// <para>It draws only on an interactive terminal (<see cref="IsTerminal"/>): with output redirected to a
/// file or a pipe, <see cref="StartAsync"/> draws nothing and returns false, so that logs stay plain
/// text there. While it runs it owns the screen: the node should send its log to <see cref="RecentLog"/>
/// (which the dashboard shows) rather than to the console, since anything else written to the console
/// lands in the middle of a frame.</para>
/// <para>A frame is never taller than the terminal: every row is cut to the width (so nothing wraps),
/// the sections above the log come first, and the log gets the rows left over. Each frame is written
/// in one piece; stopping draws the last frame once more, moves below it and shows the cursor again.</para>
/// <para>Everything shown from other peers (ids, addresses) is untrusted: control characters are replaced
/// before drawing, so an announcement cannot smuggle escape sequences into the terminal.</para>
/// </remarks>
public sealed partial class TerminalDashboard : IAsyncDisposable
{
    /// <summary>Default time between frames: 500 ms.</summary>
    public static readonly TimeSpan DefaultRefresh = TimeSpan.FromMilliseconds(500);

    private readonly IAnsiConsole _console;
    private readonly bool _canDraw;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private CancellationTokenSource? _stop;
    private Task? _loop;

    /// <summary>A dashboard on <paramref name="console"/> (default: standard output).</summary>
    /// <param name="console">Where to draw; drawn on only when it is an ANSI terminal (<see cref="CanDraw"/>).</param>
    /// <param name="refresh">Time between frames (default <see cref="DefaultRefresh"/>).</param>
    /// <param name="time">The clock that paces frames (default the system clock).</param>
    public TerminalDashboard(IAnsiConsole? console = null, TimeSpan? refresh = null, TimeProvider? time = null)
    {
        _console = console ?? AnsiConsole.Console;
        _canDraw = (console is not null || IsTerminal) && CanDraw(_console);
        _time = time ?? TimeProvider.System;
        Refresh = refresh ?? DefaultRefresh;
        if (Refresh <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(refresh), refresh, "the refresh interval must be positive");
        }
    }

    /// <summary>Time between frames.</summary>
    public TimeSpan Refresh { get; }

    /// <summary>Whether frames are being drawn now.</summary>
    public bool IsRunning
    {
        get
        {
            lock (_gate)
            {
                return _loop is { IsCompleted: false };
            }
        }
    }

    /// <summary>
    /// Whether standard output is a terminal a live display can draw on: not redirected to a file or
    /// pipe, and <c>TERM</c> not <c>dumb</c>.
    /// </summary>
    public static bool IsTerminal => IsTerminalFor(Console.IsOutputRedirected, Environment.GetEnvironmentVariable("TERM"));

    internal static bool IsTerminalFor(bool outputRedirected, string? term) =>
        !outputRedirected && !string.Equals(term, "dumb", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Whether <paramref name="console"/> writes to a terminal that understands ANSI cursor movement. Input
    /// does not matter (the dashboard reads no keys), so a node started with its input redirected still draws.
    /// </summary>
    public static bool CanDraw(IAnsiConsole console) =>
        console.Profile.Out.IsTerminal && RenderOptions.Create(console, console.Profile.Capabilities).Ansi;

    /// <summary>
    /// Starts drawing frames of <paramref name="source"/> and returns once the first one is on screen.
    /// Drawing goes on until <see cref="StopAsync"/> or until <paramref name="cancellationToken"/> is cancelled.
    /// </summary>
    /// <returns>True when drawing; false, having written nothing, when the console is not a terminal.</returns>
    /// <exception cref="InvalidOperationException">The dashboard is already running.</exception>
    public async Task<bool> StartAsync(INodeStatusSource source, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (!_canDraw)
        {
            return false;
        }
        var firstFrame = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task loop;
        lock (_gate)
        {
            if (_loop is { IsCompleted: false })
            {
                throw new InvalidOperationException("the terminal dashboard is already running; stop it before starting it again");
            }
            _stop?.Dispose();
            _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var stop = _stop.Token;
            _loop = loop = Task.Run(() => RunAsync(source, firstFrame, stop), CancellationToken.None);
        }
        await Task.WhenAny(firstFrame.Task, loop).ConfigureAwait(false);
        if (loop.IsFaulted)
        {
            await loop.ConfigureAwait(false);
        }
        return true;
    }

    /// <summary>
    /// Stops drawing: the last frame stays on screen, complete, the cursor goes below it and is shown again.
    /// Does nothing when not running.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        Task? loop;
        CancellationTokenSource? stop;
        lock (_gate)
        {
            (loop, stop) = (_loop, _stop);
            (_loop, _stop) = (null, null);
        }
        if (loop is null || stop is null)
        {
            return;
        }
        await stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await loop.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            stop.Dispose();
        }
    }

    /// <summary>Stops drawing.</summary>
    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);

    private async Task RunAsync(INodeStatusSource source, TaskCompletionSource firstFrame, CancellationToken stop)
    {
        try
        {
            var live = new LiveDisplay(_console, Text.Empty)
            {
                AutoClear = false,
                Overflow = VerticalOverflow.Crop,
                Cropping = VerticalOverflowCropping.Bottom,
            };
            await live.StartAsync(async context =>
            {
                using var timer = new PeriodicTimer(Refresh, _time);
                NodeStatus? last = null;
                while (true)
                {
                    string? error = null;
                    try
                    {
                        last = source.Snapshot();
                    }
                    catch (Exception e) when (e is not OutOfMemoryException)
                    {
                        error = e.Message;
                    }
                    context.UpdateTarget(new Frame(last, error, height: null));
                    firstFrame.TrySetResult();
                    try
                    {
                        if (!await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
                        {
                            return;
                        }
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                }
            }).ConfigureAwait(false);
        }
        catch (IOException)
        {
            // the terminal went away (closed window, hung-up session): nothing left to draw on
        }
        finally
        {
            firstFrame.TrySetResult();
        }
    }
}
