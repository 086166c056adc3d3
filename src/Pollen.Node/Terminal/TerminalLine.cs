using System.Text;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Pollen.Node.Terminal;

/// <summary>
/// One row of the terminal dashboard: styled pieces of text laid left to right and cut, in terminal cells
/// (a wide character counts two), so that the row never wraps. Every row being exactly one line is what
/// lets the dashboard know its own height and give the rest of the screen to the log.
/// </summary>
internal sealed class TerminalLine(int width, bool unicode)
{
    private readonly List<Segment> _segments = [];
    private bool _cut;

    /// <summary>Cells still free on the row; none once something was cut.</summary>
    public int Remaining => _cut ? 0 : Math.Max(0, width - Used);

    /// <summary>Cells used.</summary>
    public int Used { get; private set; }

    /// <summary>The pieces, for rendering.</summary>
    public IReadOnlyList<Segment> Segments => _segments;

    /// <summary>Appends <paramref name="text"/>, cut with an ellipsis where the row ends.</summary>
    public TerminalLine Add(string? text, Style? style = null)
    {
        var prepared = Prepare(text);
        var (fitted, cells) = Fit(prepared, Remaining, unicode);
        if (cells > 0)
        {
            _segments.Add(new Segment(fitted, style ?? Style.Plain));
            Used += cells;
        }
        _cut |= fitted.Length < prepared.Length;
        return this;
    }

    /// <summary>
    /// Appends a label and its value, or only an ellipsis when the value would not show (so that a row
    /// never ends in a bare label, or in a number cut to a different number).
    /// </summary>
    public TerminalLine Field(string label, string? value, Style? labelStyle = null, Style? valueStyle = null)
    {
        var (l, v) = (Prepare(label), Prepare(value));
        var needed = Cells(l) + Cells(v);
        if (Remaining >= needed)
        {
            return Add(l, labelStyle).Add(v, valueStyle);
        }
        var ellipsis = unicode ? "…" : "...";
        Add(ellipsis[..Math.Min(ellipsis.Length, Remaining)], labelStyle);
        _cut = true;
        return this;
    }

    /// <summary>Appends <paramref name="text"/> in a column of <paramref name="cells"/> cells: cut or padded with spaces.</summary>
    public TerminalLine Column(string? text, int cells, Style? style = null)
    {
        cells = Math.Min(cells, Remaining);
        var (fitted, used) = Fit(Prepare(text), cells, unicode);
        if (used > 0)
        {
            _segments.Add(new Segment(fitted, style ?? Style.Plain));
        }
        if (cells - used > 0)
        {
            _segments.Add(new Segment(new string(' ', cells - used)));
        }
        Used += Math.Max(0, cells);
        return this;
    }

    /// <summary>Fills the rest of the row with <paramref name="fill"/>.</summary>
    public TerminalLine Fill(char fill, Style? style = null) => Remaining > 0 ? Add(new string(fill, Remaining), style) : this;

    private string Prepare(string? text)
    {
        var clean = TerminalText.Clean(text);
        return unicode ? clean : TerminalText.Ascii(clean);
    }

    /// <summary>Cells <paramref name="text"/> takes on a terminal.</summary>
    public static int Cells(string text)
    {
        var cells = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            cells += RuneCells(rune);
        }
        return cells;
    }

    /// <summary><paramref name="text"/> cut to at most <paramref name="max"/> cells, ending in an ellipsis when cut.</summary>
    public static (string Text, int Cells) Fit(string text, int max, bool unicode)
    {
        if (max <= 0 || text.Length == 0)
        {
            return ("", 0);
        }
        var total = Cells(text);
        if (total <= max)
        {
            return (text, total);
        }
        var ellipsis = unicode ? "…" : "...";
        if (max <= ellipsis.Length)
        {
            return (ellipsis[..max], max);
        }
        var room = max - ellipsis.Length;
        var cut = new StringBuilder();
        var cells = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            var w = RuneCells(rune);
            if (cells + w > room)
            {
                break;
            }
            cut.Append(rune.ToString());
            cells += w;
        }
        return (cut.Append(ellipsis).ToString(), cells + ellipsis.Length);
    }

    private static int RuneCells(Rune rune) => rune.IsBmp ? Math.Max(0, ((char)rune.Value).GetCellWidth()) : Math.Max(0, rune.ToString().GetCellWidth());
}
