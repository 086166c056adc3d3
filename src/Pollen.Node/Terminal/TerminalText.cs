using System.Globalization;
using System.Text;

namespace Pollen.Node.Terminal;

/// <summary>
/// The small pieces of text the terminal dashboard is made of: human units, durations, block spans,
/// coverage bars and loss sparklines. Everything here is total: any number (NaN, negative, <see cref="long.MaxValue"/>)
/// gives some short text instead of throwing.
/// </summary>
public static class TerminalText
{
    private const string Spark = "▁▂▃▄▅▆▇█";
    private const string AsciiSpark = ".:-=+*#%";
    private static readonly string[] ByteUnits = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    private static readonly string[] CountUnits = ["", "k", "M", "G", "T", "P", "E"];

    /// <summary>Bytes in binary units: "512 B", "12.3 MiB", "120 GiB".</summary>
    public static string Bytes(long bytes)
    {
        var sign = bytes < 0 ? "-" : "";
        var value = Math.Abs((double)bytes);
        var unit = 0;
        while (value >= 1024 && unit < ByteUnits.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return unit == 0 ? $"{sign}{value.ToString("0", CultureInfo.InvariantCulture)} B" : $"{sign}{Significant(value)} {ByteUnits[unit]}";
    }

    /// <summary>A count with a decimal suffix past a thousand: "950", "1.23k", "45.6M".</summary>
    public static string Count(long count) => Math.Abs((double)count) < 1000 ? count.ToString(CultureInfo.InvariantCulture) : Number(count);

    /// <summary>A rate or other measurement, three significant digits: "4.56", "45.6", "1.23k"; "NaN", "inf".</summary>
    public static string Number(double value)
    {
        if (double.IsNaN(value))
        {
            return "NaN";
        }
        if (double.IsInfinity(value))
        {
            return value > 0 ? "inf" : "-inf";
        }
        var sign = value < 0 ? "-" : "";
        var scaled = Math.Abs(value);
        var unit = 0;
        while (scaled >= 999.5 && unit < CountUnits.Length - 1)
        {
            scaled /= 1000;
            unit++;
        }
        return scaled >= 999.5 ? value.ToString("0.##E+0", CultureInfo.InvariantCulture) : $"{sign}{Significant(scaled)}{CountUnits[unit]}";
    }

    /// <summary>A loss value: three decimals, "NaN" or "inf" when not finite.</summary>
    public static string Loss(double loss) => double.IsNaN(loss) ? "NaN"
        : double.IsInfinity(loss) ? (loss > 0 ? "inf" : "-inf")
        : Math.Abs(loss) < 1e6 ? loss.ToString("0.000", CultureInfo.InvariantCulture)
        : loss.ToString("0.00E+0", CultureInfo.InvariantCulture);

    /// <summary>How long: "12s", "5m 03s", "1h 02m 03s", "3d 04h 05m"; negative as "0s".</summary>
    public static string Duration(TimeSpan span)
    {
        if (span < TimeSpan.Zero)
        {
            span = TimeSpan.Zero;
        }
        var c = CultureInfo.InvariantCulture;
        return span.TotalDays >= 1 ? string.Create(c, $"{(long)span.TotalDays}d {span.Hours:00}h {span.Minutes:00}m")
            : span.TotalHours >= 1 ? string.Create(c, $"{span.Hours}h {span.Minutes:00}m {span.Seconds:00}s")
            : span.TotalMinutes >= 1 ? string.Create(c, $"{span.Minutes}m {span.Seconds:00}s")
            : string.Create(c, $"{span.Seconds}s");
    }

    /// <summary>How long ago, in one unit: "now", "12s ago", "3m ago", "2h ago", "4d ago".</summary>
    public static string Ago(TimeSpan span)
    {
        var c = CultureInfo.InvariantCulture;
        return span < TimeSpan.FromSeconds(1) ? "now"
            : span.TotalMinutes < 1 ? string.Create(c, $"{(long)span.TotalSeconds}s ago")
            : span.TotalHours < 1 ? string.Create(c, $"{(long)span.TotalMinutes}m ago")
            : span.TotalDays < 1 ? string.Create(c, $"{(long)span.TotalHours}h ago")
            : string.Create(c, $"{(long)span.TotalDays}d ago");
    }

    /// <summary>Blocks [<paramref name="start"/>, <paramref name="end"/>) as people count them: "4", "0..3", "none".</summary>
    public static string Span(int start, int end) =>
        end <= start ? "none" : end - start == 1 ? start.ToString(CultureInfo.InvariantCulture) : string.Create(CultureInfo.InvariantCulture, $"{start}..{end - 1}");

    /// <summary>
    /// Blocks no peer serves, as a sentence: "block 4 not served", "blocks 4..5 not served",
    /// "blocks 1, 4..5 not served"; null when there are none.
    /// </summary>
    public static string? Missing(IReadOnlyList<int> perBlock)
    {
        var parts = new List<string>();
        var missing = 0;
        for (var b = 0; b < perBlock.Count; b++)
        {
            if (perBlock[b] > 0)
            {
                continue;
            }
            var end = b;
            while (end < perBlock.Count && perBlock[end] == 0)
            {
                end++;
            }
            parts.Add(Span(b, end));
            missing += end - b;
            b = end;
        }
        return missing == 0 ? null : $"{(missing == 1 ? "block" : "blocks")} {string.Join(", ", parts)} not served";
    }

    /// <summary>
    /// One bar of <paramref name="width"/> cells over <paramref name="served"/> (one flag per block): a cell is
    /// full when every block it stands for is served, shaded when some are, light when none. With more blocks
    /// than cells each cell stands for several blocks.
    /// </summary>
    public static string Bar(IReadOnlyList<bool> served, int width, bool unicode = true)
    {
        if (served.Count == 0 || width <= 0)
        {
            return "";
        }
        width = Math.Min(width, served.Count);
        var (full, some, none) = unicode ? ('█', '▒', '░') : ('#', ':', '.');
        var bar = new StringBuilder(width);
        for (var cell = 0; cell < width; cell++)
        {
            var from = (int)((long)cell * served.Count / width);
            var to = Math.Max(from + 1, (int)((long)(cell + 1) * served.Count / width));
            var count = 0;
            for (var b = from; b < to; b++)
            {
                count += served[b] ? 1 : 0;
            }
            bar.Append(count == to - from ? full : count > 0 ? some : none);
        }
        return bar.ToString();
    }

    /// <summary>Which of <paramref name="numBlocks"/> blocks the span [<paramref name="start"/>, <paramref name="end"/>) holds.</summary>
    public static bool[] Served(int numBlocks, int start, int end)
    {
        var served = new bool[Math.Max(0, numBlocks)];
        for (var b = Math.Max(0, start); b < Math.Min(served.Length, end); b++)
        {
            served[b] = true;
        }
        return served;
    }

    /// <summary>
    /// A sparkline of the last <paramref name="width"/> values, scaled between their smallest and largest
    /// finite value; a value that is not finite shows as "×" ("x" without Unicode).
    /// </summary>
    public static string Sparkline(IReadOnlyList<double> values, int width, bool unicode = true)
    {
        if (values.Count == 0 || width <= 0)
        {
            return "";
        }
        var chars = unicode ? Spark : AsciiSpark;
        var shown = values.Skip(Math.Max(0, values.Count - width)).ToArray();
        var finite = shown.Where(double.IsFinite).ToArray();
        var (min, max) = finite.Length == 0 ? (0d, 0d) : (finite.Min(), finite.Max());
        var line = new StringBuilder(shown.Length);
        foreach (var v in shown)
        {
            if (!double.IsFinite(v))
            {
                line.Append(unicode ? '×' : 'x');
                continue;
            }
            var level = max - min > 0 && double.IsFinite(max - min) ? (int)Math.Round((v - min) / (max - min) * (chars.Length - 1)) : (chars.Length - 1) / 2;
            line.Append(chars[Math.Clamp(level, 0, chars.Length - 1)]);
        }
        return line.ToString();
    }

    /// <summary>A progress bar of <paramref name="width"/> cells for <paramref name="done"/> of <paramref name="total"/>.</summary>
    public static string Progress(double done, double total, int width, bool unicode = true)
    {
        if (width <= 0)
        {
            return "";
        }
        var fraction = total > 0 && double.IsFinite(done / total) ? Math.Clamp(done / total, 0, 1) : 0;
        var filled = (int)Math.Round(fraction * width);
        return new string(unicode ? '█' : '#', filled) + new string(unicode ? '░' : '.', width - filled);
    }

    /// <summary>A percentage of <paramref name="part"/> in <paramref name="whole"/>: "12%", "–" for an empty whole.</summary>
    public static string Percent(double part, double whole) =>
        whole > 0 && double.IsFinite(part / whole) ? string.Create(CultureInfo.InvariantCulture, $"{Math.Round(100 * part / whole, MidpointRounding.AwayFromZero):0}%") : "–";

    /// <summary>
    /// An identifier shortened to at most <paramref name="max"/> characters, keeping its start and end
    /// ("3f9a2b1c…c2d1"), so that peers stay tell-apart-able.
    /// </summary>
    public static string Abbreviate(string id, int max)
    {
        if (id.Length <= max || max < 5)
        {
            return id.Length <= max ? id : id[..Math.Max(0, max)];
        }
        var tail = Math.Min(4, (max - 1) / 3);
        return string.Concat(id.AsSpan(0, max - 1 - tail), "…", id.AsSpan(id.Length - tail));
    }

    private static string Significant(double value) =>
        value.ToString(value < 9.995 ? "0.00" : value < 99.95 ? "0.0" : "0", CultureInfo.InvariantCulture);

    /// <summary>
    /// <paramref name="text"/> with the few non-ASCII characters the dashboard itself uses (rules, dots,
    /// ellipses, dashes) spelled in ASCII, for terminals without Unicode.
    /// </summary>
    public static string Ascii(string text)
    {
        if (System.Text.Ascii.IsValid(text))
        {
            return text;
        }
        var ascii = new StringBuilder(text.Length);
        foreach (var c in text)
        {
            ascii.Append(c switch
            {
                '─' => "-",
                '·' => "|",
                '…' => "...",
                '–' or '−' => "-",
                '±' => "+-",
                '▸' => ">",
                '×' => "x",
                _ => c.ToString(),
            });
        }
        return ascii.ToString();
    }

    /// <summary>
    /// Text safe to put on a terminal: control characters (escape sequences from another peer's
    /// announcement included) and invisible formatting characters become spaces or are dropped.
    /// </summary>
    public static string Clean(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return "";
        }
        StringBuilder? clean = null;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            var category = char.GetUnicodeCategory(c);
            var bad = char.IsControl(c) || category == UnicodeCategory.Format
                || (char.IsSurrogate(c) && !(char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                    && !(char.IsLowSurrogate(c) && i > 0 && char.IsHighSurrogate(text[i - 1])));
            if (bad && clean is null)
            {
                clean = new StringBuilder(text.Length).Append(text, 0, i);
            }
            if (clean is not null)
            {
                if (!bad)
                {
                    clean.Append(c);
                }
                else if (category != UnicodeCategory.Format)
                {
                    clean.Append(' ');
                }
            }
        }
        return clean?.ToString() ?? text;
    }
}
