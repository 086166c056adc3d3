using Pollen.Node.Status;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Pollen.Node.Terminal;

public sealed partial class TerminalDashboard
{
    /// <summary>
    /// The dashboard for <paramref name="status"/> as a Spectre renderable: as wide as it is drawn and at
    /// most one row shorter than the console it is drawn on, the log taking the rows the other sections leave.
    /// </summary>
    public static IRenderable Render(NodeStatus status) => new Frame(status, null, height: null);

    /// <summary>The dashboard for <paramref name="status"/> in at most <paramref name="maxHeight"/> rows.</summary>
    public static IRenderable Render(NodeStatus status, int maxHeight) => new Frame(status, null, Math.Max(0, maxHeight));

    /// <summary>
    /// The dashboard for <paramref name="status"/> as plain text (no colours, no escape sequences), rows
    /// separated by '\n', none wider than <paramref name="width"/> cells.
    /// </summary>
    /// <param name="status">What to show.</param>
    /// <param name="width">Terminal width in cells.</param>
    /// <param name="height">At most this many rows; null for every row the sections and the whole log need.</param>
    /// <param name="unicode">Block characters for bars and sparklines; false for ASCII only.</param>
    public static string RenderToString(NodeStatus status, int width, int? height = null, bool unicode = true)
    {
        ArgumentNullException.ThrowIfNull(status);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        using var writer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
            Enrichment = new ProfileEnrichment { UseDefaultEnrichers = false },
        });
        console.Profile.Width = width;
        console.Profile.Height = Math.Max(1, height ?? 1000);
        console.Profile.Capabilities.Unicode = unicode;
        console.Write(new Frame(status, null, height ?? int.MaxValue));
        return writer.ToString().Replace("\r\n", "\n", StringComparison.Ordinal);
    }

    /// <summary>One frame: the status (or the last one and why a newer one is missing) laid out in rows.</summary>
    /// <param name="status">What to show; null before the first snapshot.</param>
    /// <param name="error">Why the latest snapshot failed, if it did.</param>
    /// <param name="height">Rows available; null for one less than the console's height.</param>
    private sealed class Frame(NodeStatus? status, string? error, int? height) : Renderable
    {
        protected override IEnumerable<Segment> Render(RenderOptions options, int maxWidth)
        {
            var rows = height ?? Math.Max(1, options.ConsoleSize.Height - 1);
            List<TerminalLine> lines;
            try
            {
                lines = Layout(status, error, maxWidth, rows, options.Unicode);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // a status this code does not expect must not end the node's display, nor the node
                lines = Layout(null, $"cannot draw the status: {e.Message}", maxWidth, rows, options.Unicode);
            }
            for (var i = 0; i < lines.Count; i++)
            {
                foreach (var segment in lines[i].Segments)
                {
                    yield return segment;
                }
                if (i < lines.Count - 1)
                {
                    yield return Segment.LineBreak;
                }
            }
        }
    }
}
