using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Pollen.Node.Status;
using Pollen.Node.Terminal;
using Spectre.Console;

namespace Pollen.Tests.Node;

/// <summary>The terminal dashboard: what a frame shows, that it fits the terminal, and the live display's start and stop.</summary>
public partial class TerminalDashboardTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 4, 10, 0, 0, TimeSpan.Zero);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Two peers over 8 blocks leaving blocks 6..7 unserved, a node that trains and serves, a few log lines.</summary>
    internal static NodeStatus Realistic(int logLines = 3) => new()
    {
        Time = Now,
        Node = new NodeSummary("12D3KooWQx7fZm2b9Yc4", "10.0.0.5:7100", "http://10.0.0.5:8080/", ["train", "serve", "api"],
            Now - new TimeSpan(1, 2, 3)),
        Model = new ModelSummary("tiny-stories-8", "a1b2c3d4", 8, 3_300_000, "Llama, 8 blocks of d=256"),
        Peers =
        [
            new PeerSummary("12D3KooWQx7fZm2b9Yc4", "10.0.0.5:7100", 0, 4, 120.5, Now, true),
            new PeerSummary("12D3KooWAbCdEfGh5678", "192.168.1.23:7101", 2, 6, 87.25, Now.AddSeconds(-12), false),
        ],
        Training = new TrainingSummary("stories", 12, 37, 50, 1234.5, 12_900_000, 12_500_000, 3,
            [new RoundLoss(8, 3.1), new RoundLoss(9, 2.9), new RoundLoss(10, 2.6), new RoundLoss(11, 2.359), new RoundLoss(12, 2.318)]),
        Serving = new ServingSummary(0, 4, 12, 3, 1_234_567, 45.0, 1024, 8192),
        RecentLog = [.. Enumerable.Range(0, logLines).Select(i =>
            new LogLine(Now.AddSeconds(i - logLines), i == 1 ? "warn" : "info", "Pollen.Training.DiLoCo.OuterLoop", $"log message number {i}"))],
    };

    private static string[] Rows(string text) => text.Split('\n');

    private static void AssertFits(string text, int width)
    {
        foreach (var row in Rows(text))
        {
            Assert.True(row.GetCellWidth() <= width, $"row of {row.GetCellWidth()} cells is wider than {width}: '{row}'");
        }
    }

    [Fact]
    public void ARealisticStatusShowsTheKeyFactsWithinTheWidth()
    {
        var text = TerminalDashboard.RenderToString(Realistic(), 100);

        AssertFits(text, 100);
        Assert.Contains("10.0.0.5:7100", text, StringComparison.Ordinal);
        Assert.Contains("192.168.1.23:7101", text, StringComparison.Ordinal);
        Assert.Contains("http://10.0.0.5:8080/", text, StringComparison.Ordinal);
        Assert.Contains("up 1h 02m 03s", text, StringComparison.Ordinal);
        Assert.Contains("this node: train, serve, api", text, StringComparison.Ordinal);
        Assert.Contains("blocks 6..7 not served", text, StringComparison.Ordinal);
        Assert.Contains("round 12", text, StringComparison.Ordinal);
        Assert.Contains("step 37/50", text, StringComparison.Ordinal);
        Assert.Contains("2.318", text, StringComparison.Ordinal);
        Assert.Contains("12.3 MiB", text, StringComparison.Ordinal); // bytes sent
        Assert.Contains("last group 3 peers", text, StringComparison.Ordinal);
        Assert.Contains("sessions 3", text, StringComparison.Ordinal);
        Assert.Contains("tokens served 1.23M", text, StringComparison.Ordinal);
        Assert.Contains("1.02k/8.19k tokens (13%)", text, StringComparison.Ordinal);
        Assert.Contains("log message number 2", text, StringComparison.Ordinal);
        Assert.Contains("OuterLoop", text, StringComparison.Ordinal);
        Assert.DoesNotContain("not training", text, StringComparison.Ordinal);
        Assert.DoesNotContain("\u001b", text, StringComparison.Ordinal); // no colour codes when rendering to text

        // each peer's row carries a bar of its blocks over the model's 8
        var self = Rows(text).Single(r => r.Contains("10.0.0.5:7100", StringComparison.Ordinal) && r.Contains("this node", StringComparison.Ordinal));
        Assert.Contains("████░░░░", self, StringComparison.Ordinal);
        Assert.Contains("0..3", self, StringComparison.Ordinal);
        var other = Rows(text).Single(r => r.Contains("192.168.1.23:7101", StringComparison.Ordinal));
        Assert.Contains("░░████░░", other, StringComparison.Ordinal);
        Assert.Contains("12s ago", other, StringComparison.Ordinal);
        Assert.Contains("87.3 steps/s", other, StringComparison.Ordinal);
        // the loss sparkline falls from the highest to the lowest level
        Assert.Contains("█▆▄▁▁", text, StringComparison.Ordinal);
    }

    [Fact]
    public void TheLogTakesTheRowsTheOtherSectionsLeaveNewestLast()
    {
        var status = Realistic(logLines: 60);
        var all = Rows(TerminalDashboard.RenderToString(status, 100));
        var logStart = Array.FindIndex(all, r => r.StartsWith("── Log", StringComparison.Ordinal));
        Assert.Equal(logStart + 1 + 60, all.Length); // unlimited height: every line

        var fitted = Rows(TerminalDashboard.RenderToString(status, 100, height: 24));
        Assert.Equal(24, fitted.Length); // as many log lines as fit, no more
        Assert.Contains("log message number 59", fitted[^1], StringComparison.Ordinal);
        Assert.Equal(all[..(logStart + 1)], fitted[..(logStart + 1)]); // the sections above the log are whole
        Assert.DoesNotContain(fitted, r => r.Contains($"log message number {59 - (24 - logStart - 1)}", StringComparison.Ordinal));

        var tiny = Rows(TerminalDashboard.RenderToString(status, 100, height: 5));
        Assert.Equal(5, tiny.Length);
    }

    [Fact]
    public void ManyPeersAreCutSoThatTheLogKeepsSomeRows()
    {
        var status = Realistic(logLines: 10) with
        {
            Peers = [.. Enumerable.Range(0, 40).Select(i => new PeerSummary($"peer{i}", $"10.0.1.{i}:7100", i % 8, i % 8 + 1, 1, Now, false))],
        };
        var rows = Rows(TerminalDashboard.RenderToString(status, 100, height: 30));
        Assert.Equal(30, rows.Length);
        Assert.Contains(rows, r => r.Contains("more peers", StringComparison.Ordinal));
        Assert.Contains("log message number 9", rows[^1], StringComparison.Ordinal);
    }

    [Fact]
    public void ANarrowTerminalCutsRowsWithAnEllipsisNeverInsideAValue()
    {
        var rows = Rows(TerminalDashboard.RenderToString(Realistic(), 50));
        AssertFits(string.Join('\n', rows), 50);
        Assert.StartsWith("pollen 12D3KooWQx7fZm2b9Yc4  up 1h 02m 03s…", rows[0], StringComparison.Ordinal); // no bare "swarm " label
        var loss = rows.Single(r => r.StartsWith("  loss", StringComparison.Ordinal));
        Assert.EndsWith("1.23k tok/s…", loss, StringComparison.Ordinal); // not "sent 1", a number that is not the number
        Assert.Contains(rows, r => r.Contains("log message number 2", StringComparison.Ordinal));
    }

    public static TheoryData<string> EdgeCases() => [.. Edge.Keys];

    private static readonly Dictionary<string, NodeStatus> Edge = new()
    {
        ["no peers"] = Realistic() with { Peers = [] },
        ["not training, not serving, no log"] = Realistic() with { Training = null, Serving = null, RecentLog = [] },
        ["NaN loss"] = Realistic() with { Training = Realistic().Training! with { Losses = [new RoundLoss(1, 2.5), new RoundLoss(2, double.NaN)] } },
        ["no losses yet, zero inner steps"] = Realistic() with { Training = Realistic().Training! with { Losses = [], InnerSteps = 0, InnerStep = 0 } },
        ["zero blocks"] = Realistic() with { Model = Realistic().Model with { NumBlocks = 0 } },
        ["a thousand blocks"] = Realistic() with { Model = Realistic().Model with { NumBlocks = 1000 } },
        ["very long strings"] = Realistic() with
        {
            Node = Realistic().Node with { PeerId = new string('p', 10_000), SwarmAddress = new string('a', 5000), HttpUrl = "http://" + new string('h', 5000) },
            Peers = [new PeerSummary(new string('q', 10_000), new string('b', 3000) + ":1", 0, 8, 1, Now, false)],
            RecentLog = [new LogLine(Now, "info", new string('c', 500), new string('m', 20_000)),
                new LogLine(DateTimeOffset.MinValue, new string('l', 100), "", ""), new LogLine(DateTimeOffset.MaxValue, "", ".", "x")],
        },
        ["huge and odd numbers"] = Realistic() with
        {
            Model = Realistic().Model with { Parameters = long.MaxValue },
            Peers = [new PeerSummary("x", "h:1", -5, int.MaxValue, double.PositiveInfinity, DateTimeOffset.MinValue, false),
                new PeerSummary("y", "h:2", 5, 2, double.NaN, DateTimeOffset.MaxValue, false)],
            Training = new TrainingSummary("r", int.MaxValue, -1, int.MaxValue, double.MaxValue, long.MaxValue, long.MinValue, int.MinValue,
                [new RoundLoss(1, double.PositiveInfinity), new RoundLoss(2, double.MaxValue), new RoundLoss(3, -double.MaxValue), new RoundLoss(4, 1e300)]),
            Serving = new ServingSummary(int.MinValue, int.MaxValue, -1, int.MaxValue, long.MaxValue, double.NegativeInfinity, long.MaxValue, 0),
        },
        ["started in the future"] = Realistic() with { Node = Realistic().Node with { StartedAt = DateTimeOffset.MaxValue } },
        ["control characters"] = Realistic() with
        {
            Peers = [new PeerSummary("evil\u001b[2J", "10.0.0.9:1\u001b]0;title\u0007\r\n\u202e", 0, 8, 1, Now, false)],
            RecentLog = [new LogLine(Now, "info", "c", "first\nsecond\u001b[31m")],
        },
        ["lists missing, as from a partial JSON document"] = Realistic() with
        {
            Peers = null!,
            RecentLog = null!,
            Node = Realistic().Node with { Roles = null!, HttpUrl = null },
            Training = Realistic().Training! with { Losses = null!, RunId = null! },
        },
        ["no node summary"] = Realistic() with { Node = null! },
        ["wide characters"] = Realistic() with { Node = Realistic().Node with { PeerId = string.Concat(Enumerable.Repeat("节点🐝", 40)) } },
    };

    [Theory]
    [MemberData(nameof(EdgeCases))]
    public void EdgeCasesRenderWithinTheWidthAtAnyWidth(string name)
    {
        var status = Edge[name];
        foreach (var width in new[] { 1, 10, 40, 80, 100, 300 })
        {
            foreach (var unicode in new[] { true, false })
            {
                var text = TerminalDashboard.RenderToString(status, width, unicode: unicode);
                AssertFits(text, width);
                Assert.DoesNotContain("\u001b", text, StringComparison.Ordinal);
                Assert.DoesNotContain("\u0007", text, StringComparison.Ordinal);
                Assert.DoesNotContain("\u202e", text, StringComparison.Ordinal);
                Assert.DoesNotContain("\r", text, StringComparison.Ordinal);
                if (!unicode)
                {
                    Assert.All(text.Where(c => c > 127 && name != "wide characters" && name != "control characters"), c => Assert.Fail($"non-ASCII '{c}' in ASCII mode"));
                }
            }
            var rows = Rows(TerminalDashboard.RenderToString(status, width, height: 12));
            Assert.True(rows.Length <= 12, $"{rows.Length} rows at width {width}");
        }
    }

    [Fact]
    public void EdgeCasesSayWhatIsMissing()
    {
        var idle = TerminalDashboard.RenderToString(Edge["not training, not serving, no log"], 100);
        Assert.Contains("not training", idle, StringComparison.Ordinal);
        Assert.Contains("not serving", idle, StringComparison.Ordinal);
        Assert.Contains("no log lines yet", idle, StringComparison.Ordinal);

        Assert.Contains("NaN", TerminalDashboard.RenderToString(Edge["NaN loss"], 100), StringComparison.Ordinal);
        Assert.Contains("no peer serves blocks", TerminalDashboard.RenderToString(Edge["no peers"], 100), StringComparison.Ordinal);
        Assert.Contains("blocks 0..7 not served", TerminalDashboard.RenderToString(Edge["no peers"], 100), StringComparison.Ordinal);
        Assert.Contains("the model has no blocks", TerminalDashboard.RenderToString(Edge["zero blocks"], 100), StringComparison.Ordinal);

        var partial = TerminalDashboard.RenderToString(Edge["lists missing, as from a partial JSON document"], 100);
        Assert.Contains("this node: none", partial, StringComparison.Ordinal);
        Assert.Contains("http off", partial, StringComparison.Ordinal);
        Assert.Contains("no log lines yet", partial, StringComparison.Ordinal);
        Assert.StartsWith("status unavailable: cannot draw the status", TerminalDashboard.RenderToString(Edge["no node summary"], 100), StringComparison.Ordinal);

        var evil = TerminalDashboard.RenderToString(Edge["control characters"], 100);
        Assert.Contains("10.0.0.9:1 ]0;title", evil, StringComparison.Ordinal); // the escape became a space, the rest is shown
        Assert.Contains("first second [31m", evil, StringComparison.Ordinal); // a multi-line message stays on one row

        var full = Realistic() with { Peers = [Realistic().Peers[0] with { EndBlock = 8 }] };
        Assert.Contains("all blocks served", TerminalDashboard.RenderToString(full, 100), StringComparison.Ordinal);
        var single = Realistic() with { Peers = [Realistic().Peers[0] with { EndBlock = 7 }] };
        Assert.Contains("block 7 not served", TerminalDashboard.RenderToString(single, 100), StringComparison.Ordinal);
    }

    [Fact]
    public void TextPiecesUseHumanUnits()
    {
        Assert.Equal("512 B", TerminalText.Bytes(512));
        Assert.Equal("1.00 KiB", TerminalText.Bytes(1024));
        Assert.Equal("12.3 MiB", TerminalText.Bytes(12_900_000));
        Assert.Equal("8.00 EiB", TerminalText.Bytes(long.MaxValue));
        Assert.Equal("-8.00 EiB", TerminalText.Bytes(long.MinValue));
        Assert.Equal("999", TerminalText.Count(999));
        Assert.Equal("1.23M", TerminalText.Count(1_234_567));
        Assert.Equal("9.22E", TerminalText.Count(long.MaxValue));
        Assert.Equal("NaN", TerminalText.Number(double.NaN));
        Assert.Equal("45.0", TerminalText.Number(45));
        Assert.Equal("1.00k", TerminalText.Number(999.7));
        Assert.Equal("1.8E+308", TerminalText.Number(double.MaxValue));
        Assert.Equal("3d 04h 05m", TerminalText.Duration(new TimeSpan(3, 4, 5, 6)));
        Assert.Equal("5m 03s", TerminalText.Duration(new TimeSpan(0, 5, 3)));
        Assert.Equal("0s", TerminalText.Duration(TimeSpan.FromSeconds(-5)));
        Assert.Equal("now", TerminalText.Ago(TimeSpan.FromSeconds(-5)));
        Assert.Equal("3m ago", TerminalText.Ago(TimeSpan.FromSeconds(200)));
        Assert.Equal("0..3", TerminalText.Span(0, 4));
        Assert.Equal("4", TerminalText.Span(4, 5));
        Assert.Equal("none", TerminalText.Span(4, 4));
        Assert.Equal("blocks 1, 4..5 not served", TerminalText.Missing([1, 0, 1, 2, 0, 0, 1]));
        Assert.Null(TerminalText.Missing([1, 1]));
        Assert.Equal("█▒░", TerminalText.Bar([true, true, true, false, false, false], 3)); // two blocks a cell
        Assert.Equal("▁▅█×", TerminalText.Sparkline([1, 2, 3, double.NaN], 10));
        Assert.Equal("▄▄", TerminalText.Sparkline([2, 2], 10));
        Assert.Equal(".+%x", TerminalText.Sparkline([1, 2, 3, double.PositiveInfinity], 10, unicode: false));
        Assert.Equal("3f9a2b1c…2d1", TerminalText.Abbreviate("3f9a2b1c5d6e7f80c2d1", 12));
        Assert.Equal("13%", TerminalText.Percent(1024, 8192));
        Assert.Equal("–", TerminalText.Percent(1, 0));
    }

    [Fact]
    public void TerminalDetectionNeedsAnUnredirectedNonDumbTerminal()
    {
        Assert.True(TerminalDashboard.IsTerminalFor(outputRedirected: false, "xterm-256color"));
        Assert.True(TerminalDashboard.IsTerminalFor(outputRedirected: false, null));
        Assert.False(TerminalDashboard.IsTerminalFor(outputRedirected: true, "xterm-256color"));
        Assert.False(TerminalDashboard.IsTerminalFor(outputRedirected: false, "dumb"));
    }

    [Fact]
    public async Task OnANonTerminalStartDrawsNothingAndSaysSo()
    {
        using var writer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(writer), Interactive = InteractionSupport.No });
        var source = new CountingSource(Realistic());
        await using var dashboard = new TerminalDashboard(console);

        Assert.False(await dashboard.StartAsync(source, Ct));
        Assert.False(dashboard.IsRunning);
        await dashboard.StopAsync(Ct);
        Assert.Equal("", writer.ToString());
        Assert.Equal(0, source.Count);
    }

    [Fact]
    public async Task OnATerminalItRedrawsOnEveryTickAndLeavesTheCursorShownBelowTheLastFrame()
    {
        var output = new FakeTerminal(100, 40);
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = output,
            Ansi = AnsiSupport.Yes,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.Yes,
            Enrichment = new ProfileEnrichment { UseDefaultEnrichers = false },
        });
        var time = new FakeTimeProvider(Now);
        var source = new CountingSource(Realistic());
        await using var dashboard = new TerminalDashboard(console, TimeSpan.FromMilliseconds(500), time);

        Assert.True(await dashboard.StartAsync(source, Ct));
        Assert.True(dashboard.IsRunning);
        Assert.Equal(1, source.Count); // the first frame is drawn before StartAsync returns
        await Assert.ThrowsAsync<InvalidOperationException>(() => dashboard.StartAsync(source, Ct));

        time.Advance(TimeSpan.FromMilliseconds(500));
        await source.WaitForAsync(2).WaitAsync(TimeSpan.FromSeconds(30), Ct);
        await dashboard.StopAsync(Ct);
        Assert.False(dashboard.IsRunning);
        await dashboard.StopAsync(Ct); // twice is fine

        var raw = output.Writer.ToString()!;
        var text = AnsiSequence().Replace(raw, "");
        Assert.StartsWith("\u001b[?25l", raw, StringComparison.Ordinal); // cursor hidden while drawing
        Assert.EndsWith("\u001b[?25h", raw, StringComparison.Ordinal); // and shown again at the end
        Assert.Contains("round 2", text, StringComparison.Ordinal); // the second snapshot was drawn
        Assert.Contains("192.168.1.23:7101", text, StringComparison.Ordinal);
        Assert.EndsWith("\n", text, StringComparison.Ordinal); // the cursor is left on a fresh line below the frame
        Assert.All(AnsiSequence().Replace(raw, "\n").Replace('\r', '\n').Split('\n'), row => Assert.True(row.GetCellWidth() <= 100, row));
    }

    [Fact]
    public async Task AFailingSnapshotIsShownInsteadOfEndingTheDisplay()
    {
        var output = new FakeTerminal(80, 30);
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = output,
            Ansi = AnsiSupport.Yes,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.Yes,
            Enrichment = new ProfileEnrichment { UseDefaultEnrichers = false },
        });
        var source = new CountingSource(Realistic()) { Failure = new InvalidOperationException("the swarm node is stopping") };
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        await using var dashboard = new TerminalDashboard(console, TimeSpan.FromMilliseconds(500), new FakeTimeProvider(Now));

        Assert.True(await dashboard.StartAsync(source, cancel.Token));
        await cancel.CancelAsync(); // the token given to StartAsync also stops it
        await dashboard.StopAsync(Ct);
        Assert.Contains("status unavailable: the swarm node is stopping", AnsiSequence().Replace(output.Writer.ToString()!, ""), StringComparison.Ordinal);
    }

    [Fact]
    public void RecentLogKeepsTheLastLinesInOrder()
    {
        var log = new RecentLog(capacity: 5, time: new FakeTimeProvider(Now));
        var logger = log.CreateLogger("Pollen.Test");
        Assert.Empty(log.Tail(10));
        for (var i = 0; i < 12; i++)
        {
            LogNumbered(logger, i);
        }
        Assert.Equal(12, log.Written);
        Assert.Equal(["line 7", "line 8", "line 9", "line 10", "line 11"], log.Tail(100).Select(l => l.Message));
        Assert.Equal(["line 10", "line 11"], log.Tail(2).Select(l => l.Message));
        Assert.Empty(log.Tail(0));
        Assert.Empty(log.Tail(-3));
        var line = log.Tail(1).Single();
        Assert.Equal(new LogLine(Now, "info", "Pollen.Test", "line 11"), line);
    }

    [Fact]
    public void RecentLogKeepsLevelsFromItsMinimumAndAddsAnExceptionOnOneLine()
    {
        var log = new RecentLog(capacity: 10);
        using var factory = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(log));
        var logger = factory.CreateLogger("Pollen.Swarm.Dht");
        LogNotKept(logger);
        LogSlow(logger, "10.0.0.7:7100");
        var refused = new InvalidOperationException("connection refused\nat line two\nat line three");
        LogUnreachable(logger, "10.0.0.8:7100", refused);
        var timeout = new TimeoutException("");
        LogBare(logger, timeout);

        Assert.Equal(
            [("warn", "peer 10.0.0.7:7100 is slow"), ("fail", "could not reach 10.0.0.8:7100: InvalidOperationException: connection refused"),
                ("crit", "TimeoutException")],
            log.Tail(10).Select(l => (l.Level, l.Message)));
        Assert.All(log.Tail(10), l => Assert.Equal("Pollen.Swarm.Dht", l.Category));

        var debug = new RecentLog(minimumLevel: LogLevel.Debug);
        var debugLogger = debug.CreateLogger("c");
        LogNotKept(debugLogger); // a debug line, kept at this minimum
        Assert.Equal(["not kept"], debug.Tail(10).Select(l => l.Message));
        Assert.False(debug.CreateLogger("c").IsEnabled(LogLevel.Trace));
        Assert.Equal(RecentLog.DefaultCapacity, debug.Capacity);
    }

    [Fact]
    public async Task RecentLogTakesLinesFromManyThreadsAtOnce()
    {
        const int threads = 4, perThread = 5000, capacity = 300;
        var log = new RecentLog(capacity);
        using var start = new Barrier(threads);
        await Task.WhenAll(Enumerable.Range(0, threads).Select(t => Task.Factory.StartNew(() =>
        {
            var logger = log.CreateLogger($"thread{t}");
            start.SignalAndWait(Ct);
            for (var i = 0; i < perThread; i++)
            {
                LogFromThread(logger, t, i);
                if (i % 500 == 0)
                {
                    Assert.InRange(log.Tail(capacity).Count, 1, capacity); // reading while others write
                }
            }
        }, Ct, TaskCreationOptions.LongRunning, TaskScheduler.Default)));

        Assert.Equal(threads * perThread, log.Written);
        var tail = log.Tail(capacity * 2);
        Assert.Equal(capacity, tail.Count);
        foreach (var group in tail.Select(l => l.Message.Split(' ')).GroupBy(p => p[0]))
        {
            var indices = group.Select(p => int.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture)).ToList();
            Assert.Equal(indices.Order(), indices); // each thread's lines in the order it wrote them
            Assert.Equal(perThread - 1, indices[^1]); // and none of its last lines lost
        }
    }

    [Fact]
    public void RecentLogLinesShowInTheDashboard()
    {
        var log = new RecentLog();
        var logger = log.CreateLogger("Pollen.Inference.Server.BlockServer");
        var full = new IOException("disk full");
        LogCacheNotSaved(logger, full);
        var text = TerminalDashboard.RenderToString(Realistic() with { RecentLog = log.Tail(50) }, 100);
        Assert.Contains("warn  BlockServer  could not save the cache: IOException: disk full", text, StringComparison.Ordinal);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "line {Number}")]
    private static partial void LogNumbered(ILogger logger, int number);

    [LoggerMessage(Level = LogLevel.Debug, Message = "not kept")]
    private static partial void LogNotKept(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "peer {Address} is slow")]
    private static partial void LogSlow(ILogger logger, string address);

    [LoggerMessage(Level = LogLevel.Error, Message = "could not reach {Address}")]
    private static partial void LogUnreachable(ILogger logger, string address, Exception error);

    [LoggerMessage(Level = LogLevel.Critical, Message = "")]
    private static partial void LogBare(ILogger logger, Exception error);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Thread} {Index}")]
    private static partial void LogFromThread(ILogger logger, int thread, int index);

    [LoggerMessage(Level = LogLevel.Warning, Message = "could not save the cache")]
    private static partial void LogCacheNotSaved(ILogger logger, Exception error);

    [System.Text.RegularExpressions.GeneratedRegex(@"\u001b\[[0-9;?]*[A-Za-z]")]
    private static partial System.Text.RegularExpressions.Regex AnsiSequence();

    /// <summary>A status source that counts snapshots, each a round further, and lets a test wait for the n-th.</summary>
    private sealed class CountingSource(NodeStatus status) : INodeStatusSource
    {
        private readonly Lock _gate = new();
        private readonly List<(int Count, TaskCompletionSource Done)> _waiters = [];
        private int _count;

        public Exception? Failure { get; init; }

        public int Count => Volatile.Read(ref _count);

        public NodeStatus Snapshot()
        {
            var n = Interlocked.Increment(ref _count);
            lock (_gate)
            {
                foreach (var w in _waiters.Where(w => w.Count <= n))
                {
                    w.Done.TrySetResult();
                }
            }
            return Failure is not null ? throw Failure : status with { Training = status.Training! with { Round = n } };
        }

        public Task WaitForAsync(int count)
        {
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (_gate)
            {
                _waiters.Add((count, done));
                if (Count >= count)
                {
                    done.TrySetResult();
                }
            }
            return done.Task;
        }
    }

    /// <summary>An interactive terminal of a fixed size that records what is written to it.</summary>
    private sealed class FakeTerminal(int width, int height) : IAnsiConsoleOutput
    {
        public TextWriter Writer { get; } = new StringWriter();

        public bool IsTerminal => true;

        public int Width => width;

        public int Height => height;

        public void SetEncoding(Encoding encoding)
        {
        }
    }
}
