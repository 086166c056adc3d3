using System.Globalization;
using Pollen.Node.Dashboard;
using Pollen.Node.Status;
using Spectre.Console;

namespace Pollen.Node.Terminal;

public sealed partial class TerminalDashboard
{
    private static readonly Style Dim = new(Color.Grey);
    private static readonly Style Bold = new(decoration: Decoration.Bold);
    private static readonly Style Good = new(Color.Green);
    private static readonly Style Partial = new(Color.Yellow);
    private static readonly Style Bad = new(Color.Red, decoration: Decoration.Bold);
    private static readonly Style Self = new(Color.Aqua, decoration: Decoration.Bold);

    /// <summary>Rows the sections below the header take besides peers and log lines: swarm title and coverage 2, training 3, serving 3, log title 1.</summary>
    private const int FixedRows = 9;

    /// <summary>The rows of a frame, each at most <paramref name="width"/> cells, at most <paramref name="height"/> of them.</summary>
    internal static List<TerminalLine> Layout(NodeStatus? status, string? error, int width, int height, bool unicode)
    {
        var lines = new List<TerminalLine>();
        if (width <= 0 || height <= 0)
        {
            return lines;
        }
        TerminalLine Line() => new(width, unicode);
        if (error is not null)
        {
            lines.Add(Line().Add("status unavailable: ", Bad).Add(error));
        }
        if (status is null)
        {
            if (error is null)
            {
                lines.Add(Line().Add("waiting for the node's status…", Dim));
            }
            return [.. lines.Take(height)];
        }

        // a status read back from JSON may lack lists its type says are there
        status = status with { Peers = status.Peers ?? [], RecentLog = status.RecentLog ?? [] };
        Header(lines, status, Line);
        var peerRows = Math.Max(1, height - lines.Count - FixedRows - 3); // leave the log a few rows when the swarm is big
        Swarm(lines, status, Line, peerRows, unicode);
        Training(lines, status.Training, Line, unicode);
        Serving(lines, status.Serving, Line, unicode);
        Log(lines, status.RecentLog, Line, height - lines.Count - 1);
        return [.. lines.Take(height)];
    }

    private static TerminalLine Title(Func<TerminalLine> line, string name, string? detail, Style? detailStyle = null)
    {
        var rule = line().Add("── ", Dim).Add(name, Bold);
        if (!string.IsNullOrEmpty(detail))
        {
            rule.Add(" · ", Dim).Add(detail, detailStyle);
        }
        return rule.Add(" ", Dim).Fill('─', Dim);
    }

    private static void Header(List<TerminalLine> lines, NodeStatus status, Func<TerminalLine> line)
    {
        var node = status.Node;
        lines.Add(line().Add("pollen ", Bold).Add(TerminalText.Abbreviate(TerminalText.Clean(node.PeerId), 24), Self)
            .Field("  up ", TerminalText.Duration(status.Time - node.StartedAt), Dim)
            .Field("  swarm ", node.SwarmAddress, Dim)
            .Field("  http ", node.HttpUrl ?? "off", Dim));
        var model = status.Model;
        lines.Add(line().Add("model ", Dim).Add(model.ModelId, Bold)
            .Field(" · ", string.Create(CultureInfo.InvariantCulture, $"{model.NumBlocks} blocks"), Dim)
            .Field(" · ", $"{TerminalText.Count(model.Parameters)} parameters", Dim)
            .Add(string.IsNullOrWhiteSpace(model.Description) ? "" : " · ", Dim).Add(model.Description, Dim));
    }

    private static void Swarm(List<TerminalLine> lines, NodeStatus status, Func<TerminalLine> line, int maxPeerRows, bool unicode)
    {
        var width = line().Remaining;
        var numBlocks = Math.Max(0, status.Model.NumBlocks);
        var perBlock = Coverage.PerBlock(status);
        var covered = perBlock.Count(c => c > 0);
        var roles = status.Node.Roles is not { Count: > 0 } ? "none" : string.Join(", ", status.Node.Roles);
        lines.Add(Title(line, "Swarm", string.Create(CultureInfo.InvariantCulture,
            $"{status.Peers.Count} {(status.Peers.Count == 1 ? "peer" : "peers")} · {covered}/{numBlocks} blocks served · this node: {roles}")));

        var barWidth = Math.Min(numBlocks, Math.Clamp(width / 4, 4, 32));
        var coverage = line().Add("  coverage ", Dim);
        if (numBlocks == 0)
        {
            lines.Add(coverage.Add("the model has no blocks", Dim));
        }
        else
        {
            var bar = TerminalText.Bar([.. perBlock.Select(c => c > 0)], barWidth, unicode);
            foreach (var run in Runs(bar))
            {
                coverage.Add(run, run[0] is '█' or '#' ? Good : run[0] is '▒' or ':' ? Partial : Bad);
            }
            var missing = TerminalText.Missing(perBlock);
            lines.Add(missing is null ? coverage.Add("  all blocks served", Good) : coverage.Add("  " + missing, Bad));
        }

        if (status.Peers.Count == 0)
        {
            lines.Add(line().Add("  no peer serves blocks of this model yet", Dim));
            return;
        }
        var shown = status.Peers.Count <= maxPeerRows ? status.Peers : status.Peers.Take(Math.Max(0, maxPeerRows - 1)).ToList();
        var spans = shown.Select(p => TerminalText.Span(p.StartBlock, p.EndBlock)).ToList();
        var speeds = shown.Select(p => TerminalText.Number(p.Throughput) + " steps/s").ToList();
        var seen = shown.Select(p => TerminalText.Ago(status.Time - p.LastSeen)).ToList();
        var spanWidth = Math.Min(12, spans.Select(TerminalLine.Cells).DefaultIfEmpty().Max() + 2);
        var addressWidth = Math.Min(32, shown.Select(p => TerminalLine.Cells(TerminalText.Clean(p.Address))).DefaultIfEmpty().Max() + 2);
        var speedWidth = speeds.Select(TerminalLine.Cells).DefaultIfEmpty().Max() + 2;
        var seenWidth = seen.Select(TerminalLine.Cells).DefaultIfEmpty().Max() + 2;
        for (var i = 0; i < shown.Count; i++)
        {
            var peer = shown[i];
            var row = line().Column(peer.IsSelf ? (unicode ? " ▸" : " >") : "", 3, Self);
            if (numBlocks > 0)
            {
                row.Column(TerminalText.Bar(TerminalText.Served(numBlocks, peer.StartBlock, peer.EndBlock), barWidth, unicode), barWidth + 2, peer.IsSelf ? Self : Good);
            }
            row.Column(spans[i], spanWidth)
                .Column(peer.Address, addressWidth)
                .Column(speeds[i], speedWidth)
                .Column(seen[i], seenWidth, Dim)
                .Add(TerminalText.Abbreviate(TerminalText.Clean(peer.PeerId), 16), Dim)
                .Add(peer.IsSelf ? " (this node)" : "", Self);
            lines.Add(row);
        }
        if (shown.Count < status.Peers.Count)
        {
            lines.Add(line().Add(string.Create(CultureInfo.InvariantCulture, $"   … and {status.Peers.Count - shown.Count} more peers"), Dim));
        }
    }

    private static void Training(List<TerminalLine> lines, TrainingSummary? training, Func<TerminalLine> line, bool unicode)
    {
        if (training is null)
        {
            lines.Add(Title(line, "Training", null));
            lines.Add(line().Add("  not training", Dim));
            return;
        }
        var c = CultureInfo.InvariantCulture;
        lines.Add(Title(line, "Training", $"run {TerminalText.Clean(training.RunId)}"));
        lines.Add(line().Field("  round ", training.Round.ToString(c), Dim, Bold)
            .Field("   step ", string.Create(c, $"{training.InnerStep}/{training.InnerSteps} "), Dim)
            .Add(TerminalText.Progress(training.InnerStep, training.InnerSteps, 20, unicode), Good)
            .Add(" " + TerminalText.Percent(training.InnerStep, training.InnerSteps))
            .Field("   last group ", string.Create(c, $"{training.LastGroupSize} {(training.LastGroupSize == 1 ? "peer" : "peers")}"), Dim));

        var loss = line().Add("  loss ", Dim);
        if (training.Losses is not { Count: > 0 })
        {
            loss.Add("–");
        }
        else
        {
            var values = training.Losses.Select(l => l.Loss).ToList();
            var last = values[^1];
            loss.Add(TerminalText.Sparkline(values, 24, unicode), Good).Add(" ").Add(TerminalText.Loss(last), Bold);
            if (values.Count > 1 && double.IsFinite(last) && double.IsFinite(values[^2]))
            {
                var delta = last - values[^2];
                loss.Add($" ({(delta > 0 ? "+" : delta < 0 ? "−" : "±")}{TerminalText.Loss(Math.Abs(delta))})", delta > 0 ? Partial : Dim);
            }
        }
        lines.Add(loss.Field("   ", TerminalText.Number(training.TokensPerSecond) + " tok/s", Dim)
            .Field("   sent ", TerminalText.Bytes(training.BytesSent), Dim)
            .Field("   received ", TerminalText.Bytes(training.BytesReceived), Dim));
    }

    private static void Serving(List<TerminalLine> lines, ServingSummary? serving, Func<TerminalLine> line, bool unicode)
    {
        if (serving is null)
        {
            lines.Add(Title(line, "Serving", null));
            lines.Add(line().Add("  not serving", Dim));
            return;
        }
        var c = CultureInfo.InvariantCulture;
        lines.Add(Title(line, "Serving", $"blocks {TerminalText.Span(serving.StartBlock, serving.EndBlock)}"));
        lines.Add(line().Field("  round ", serving.ServedRound.ToString(c), Dim)
            .Field("   sessions ", serving.OpenSessions.ToString(c), Dim, Bold)
            .Field("   tokens served ", TerminalText.Count(serving.TokensServed), Dim)
            .Field("   ", TerminalText.Number(serving.TokensPerSecond) + " tok/s", Dim));
        var full = serving.CacheTokens > 0 && serving.CacheTokensUsed >= serving.CacheTokens;
        lines.Add(line().Add("  cache ", Dim)
            .Add($"{TerminalText.Count(serving.CacheTokensUsed)}/{TerminalText.Count(serving.CacheTokens)} tokens ({TerminalText.Percent(serving.CacheTokensUsed, serving.CacheTokens)}) ")
            .Add(TerminalText.Progress(serving.CacheTokensUsed, serving.CacheTokens, 20, unicode), full ? Bad : Good));
    }

    private static void Log(List<TerminalLine> lines, IReadOnlyList<LogLine> log, Func<TerminalLine> line, int rows)
    {
        if (rows <= 0)
        {
            return;
        }
        lines.Add(Title(line, "Log", null));
        if (log.Count == 0)
        {
            lines.Add(line().Add("  no log lines yet", Dim));
            return;
        }
        foreach (var entry in log.Skip(Math.Max(0, log.Count - rows)))
        {
            var category = entry.Category;
            var dot = category.LastIndexOf('.');
            lines.Add(line().Add("  " + Clock(entry.Time), Dim)
                .Add(" ").Column(entry.Level, 6, LevelStyle(entry.Level))
                .Add(dot >= 0 && dot < category.Length - 1 ? category[(dot + 1)..] : category, Dim).Add("  ")
                .Add(entry.Message));
        }
    }

    /// <summary>The local time of day; the time as given when it is too near the ends of the calendar to convert.</summary>
    private static string Clock(DateTimeOffset time)
    {
        try
        {
            time = time.ToLocalTime();
        }
        catch (ArgumentOutOfRangeException)
        {
        }
        return time.ToString("HH:mm:ss", CultureInfo.InvariantCulture);
    }

    private static Style LevelStyle(string level) => level.ToLowerInvariant() switch
    {
        "warn" or "warning" => Partial,
        "fail" or "crit" or "error" or "critical" => Bad,
        "dbug" or "trce" or "debug" or "trace" => Dim,
        _ => Style.Plain,
    };

    /// <summary>Runs of equal characters, for colouring a bar cell by cell cheaply.</summary>
    private static IEnumerable<string> Runs(string text)
    {
        for (var i = 0; i < text.Length;)
        {
            var j = i;
            while (j < text.Length && text[j] == text[i])
            {
                j++;
            }
            yield return text[i..j];
            i = j;
        }
    }
}
