using System.Globalization;
using System.Text;

namespace Gate.Core.Report;

/// <summary>
/// Small inline-SVG plots for the report: a line chart, bars with error bars, heat maps and grid paths.
/// Hand-written because the report must be one file with no scripts or external assets; every label is escaped.
/// </summary>
public static class Svg
{
    private const int W = 520, H = 260, Left = 56, Right = 16, Top = 16, Bottom = 44;

    private static string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);
    public static string Num(double v) => v.ToString("G4", CultureInfo.InvariantCulture);

    /// <summary>y against x with points, axes on [xMin,xMax]×[yMin,yMax] and a few ticks.</summary>
    /// <param name="intervals">Points known only as an interval (e.g. undecided): drawn as dashed bars, not joined into the line.</param>
    public static string LineChart(IReadOnlyList<(double X, double Y)> points, string xLabel, string yLabel, string title, double yMin = 0, double yMax = 1,
        IReadOnlyList<(double X, double Low, double High)>? intervals = null)
    {
        var pts = points.Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).OrderBy(p => p.X).ToList();
        var bars = (intervals ?? []).Where(b => double.IsFinite(b.X) && double.IsFinite(b.Low) && double.IsFinite(b.High)).ToList();
        if (pts.Count == 0 && bars.Count == 0) return "";
        var xs = pts.Select(p => p.X).Concat(bars.Select(b => b.X)).ToList();
        double xMin = Math.Min(0, xs.Min()), xMax = xs.Max();
        if (xMax <= xMin) xMax = xMin + 1;
        double Px(double x) => Left + (x - xMin) / (xMax - xMin) * (W - Left - Right);
        double Py(double y) => Top + (1 - (Math.Clamp(y, yMin, yMax) - yMin) / (yMax - yMin)) * (H - Top - Bottom);
        var sb = Open(title);
        Axes(sb, xLabel, yLabel, yMin, yMax, Py);
        for (int i = 0; i <= 4; i++)
        {
            double x = xMin + (xMax - xMin) * i / 4;
            sb.Append($"<text x=\"{F(Px(x))}\" y=\"{H - Bottom + 16}\" text-anchor=\"middle\" class=\"tick\">{Html.Escape(Num(x))}</text>");
        }
        sb.Append("<polyline fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"2\" points=\"")
          .Append(string.Join(' ', pts.Select(p => $"{F(Px(p.X))},{F(Py(p.Y))}"))).Append("\"/>");
        foreach (var p in pts)
            sb.Append($"<circle cx=\"{F(Px(p.X))}\" cy=\"{F(Py(p.Y))}\" r=\"3.5\" fill=\"#1f5fa8\"><title>{Html.Escape($"{xLabel} {Num(p.X)}: {yLabel} {Num(p.Y)}")}</title></circle>");
        foreach (var b in bars)
            sb.Append($"<path class=\"undecided\" d=\"M{F(Px(b.X))} {F(Py(b.Low))}V{F(Py(b.High))}M{F(Px(b.X) - 6)} {F(Py(b.Low))}h12M{F(Px(b.X) - 6)} {F(Py(b.High))}h12\" stroke=\"#b03a2e\" stroke-width=\"1.5\" stroke-dasharray=\"3 3\">")
              .Append($"<title>{Html.Escape($"{xLabel} {Num(b.X)}: undecided, {yLabel} between {Num(b.Low)} and {Num(b.High)}")}</title></path>");
        return sb.Append("</svg>").ToString();
    }

    /// <summary>One bar per item with an optional [low, high] error bar and an optional dashed reference line.</summary>
    public static string BarChart(IReadOnlyList<(string Label, double Value, double? Low, double? High)> bars, string yLabel, string title, double? reference = null, string? referenceLabel = null)
    {
        if (bars.Count == 0) return "";
        double Py(double y) => Top + (1 - Math.Clamp(double.IsFinite(y) ? y : 0, 0, 1)) * (H - Top - Bottom);
        var sb = Open(title);
        Axes(sb, "", yLabel, 0, 1, Py);
        double slot = (double)(W - Left - Right) / bars.Count, bw = Math.Min(48, slot * 0.6);
        for (int i = 0; i < bars.Count; i++)
        {
            var (label, v, lo, hi) = bars[i];
            double cx = Left + slot * (i + 0.5);
            sb.Append($"<rect x=\"{F(cx - bw / 2)}\" y=\"{F(Py(v))}\" width=\"{F(bw)}\" height=\"{F(Py(0) - Py(v))}\" fill=\"#4a8bd4\"><title>{Html.Escape($"{label}: {Num(v)}")}</title></rect>");
            if (lo is double l && hi is double h)
                sb.Append($"<path d=\"M{F(cx)} {F(Py(l))}V{F(Py(h))}M{F(cx - 6)} {F(Py(l))}h12M{F(cx - 6)} {F(Py(h))}h12\" stroke=\"#222\" stroke-width=\"1.5\"/>");
            string shown = label.Length > 14 ? label[..13] + "…" : label;
            sb.Append($"<text x=\"{F(cx)}\" y=\"{H - Bottom + 16}\" text-anchor=\"middle\" class=\"tick\">{Html.Escape(shown)}</text>");
        }
        if (reference is double r)
            sb.Append($"<line x1=\"{Left}\" x2=\"{W - Right}\" y1=\"{F(Py(r))}\" y2=\"{F(Py(r))}\" stroke=\"#b03a2e\" stroke-dasharray=\"5 4\"/>")
              .Append($"<text x=\"{W - Right}\" y=\"{F(Py(r) - 4)}\" text-anchor=\"end\" class=\"tick\" fill=\"#b03a2e\">{Html.Escape(referenceLabel ?? "reference")}</text>");
        return sb.Append("</svg>").ToString();
    }

    /// <summary>A grey-scale heat map of a matrix with values in [0, 1] (white 0, black 1), titled underneath.</summary>
    public static string HeatMap(double[][] matrix, string caption, bool flagged, int cell = 10)
    {
        int rows = matrix.Length, cols = rows == 0 ? 0 : matrix.Max(r => r?.Length ?? 0);
        if (rows == 0 || cols == 0 || rows > 256 || cols > 256) return "";
        cell = Math.Max(2, Math.Min(cell, 120 / Math.Max(rows, cols)));
        int w = cols * cell, h = rows * cell;
        var sb = new StringBuilder();
        sb.Append($"<figure class=\"mask{(flagged ? " flagged" : "")}\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\"><title>{Html.Escape(caption)}</title>");
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < (matrix[r]?.Length ?? 0); c++)
            {
                double v = matrix[r][c];
                int g = (int)Math.Round(255 * (1 - Math.Clamp(double.IsFinite(v) ? v : 0, 0, 1)));
                sb.Append($"<rect x=\"{c * cell}\" y=\"{r * cell}\" width=\"{cell}\" height=\"{cell}\" fill=\"rgb({g},{g},{g})\"/>");
            }
        return sb.Append($"</svg><figcaption>{Html.Escape(caption)}</figcaption></figure>").ToString();
    }

    /// <summary>Paths through a grid world (row, col per step), one colour per path; flagged paths are drawn red.</summary>
    public static string GridPaths(IReadOnlyList<Trajectory> paths, GridWorld? grid, string title)
    {
        var all = paths.SelectMany(p => p.Points ?? []).Where(p => p is { Length: >= 2 }).ToList();
        if (all.Count == 0) return "";
        int rows = grid?.Rows ?? all.Max(p => p[0]) + 1, cols = grid?.Cols ?? all.Max(p => p[1]) + 1;
        if (rows <= 0 || cols <= 0 || rows > 200 || cols > 200) return "";
        int cell = Math.Max(6, Math.Min(40, 360 / Math.Max(rows, cols)));
        int w = cols * cell, h = rows * cell;
        string[] palette = ["#1f5fa8", "#2e8b57", "#8e44ad", "#d4882a", "#16a2b8", "#6c757d"];
        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w + 2}\" height=\"{h + 2}\" viewBox=\"-1 -1 {w + 2} {h + 2}\" role=\"img\"><title>{Html.Escape(title)}</title>");
        sb.Append($"<rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#fafafa\" stroke=\"#999\"/>");
        for (int r = 1; r < rows; r++) sb.Append($"<line x1=\"0\" x2=\"{w}\" y1=\"{r * cell}\" y2=\"{r * cell}\" stroke=\"#e3e3e3\"/>");
        for (int c = 1; c < cols; c++) sb.Append($"<line y1=\"0\" y2=\"{h}\" x1=\"{c * cell}\" x2=\"{c * cell}\" stroke=\"#e3e3e3\"/>");
        foreach (var wall in grid?.Walls ?? [])
            if (wall is { Length: >= 2 }) sb.Append($"<rect x=\"{wall[1] * cell}\" y=\"{wall[0] * cell}\" width=\"{cell}\" height=\"{cell}\" fill=\"#555\"/>");
        for (int i = 0; i < paths.Count; i++)
        {
            var pts = (paths[i].Points ?? []).Where(p => p is { Length: >= 2 }).ToList();
            if (pts.Count == 0) continue;
            string colour = paths[i].Flagged ? "#c0392b" : palette[i % palette.Length];
            double off = (i % 5 - 2) * cell * 0.06; // small offset so overlapping paths stay distinguishable
            string P(int[] p) => $"{F(p[1] * cell + cell / 2.0 + off)},{F(p[0] * cell + cell / 2.0 + off)}";
            sb.Append($"<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2.5\" stroke-linejoin=\"round\" opacity=\"0.85\" points=\"{string.Join(' ', pts.Select(P))}\"><title>{Html.Escape(paths[i].Label ?? "")}</title></polyline>");
            sb.Append($"<circle cx=\"{F(pts[0][1] * cell + cell / 2.0 + off)}\" cy=\"{F(pts[0][0] * cell + cell / 2.0 + off)}\" r=\"{F(cell * 0.18)}\" fill=\"{colour}\"/>");
            sb.Append($"<rect x=\"{F(pts[^1][1] * cell + cell * 0.3 + off)}\" y=\"{F(pts[^1][0] * cell + cell * 0.3 + off)}\" width=\"{F(cell * 0.4)}\" height=\"{F(cell * 0.4)}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>");
        }
        return sb.Append("</svg>").ToString();
    }

    private static StringBuilder Open(string title) =>
        new StringBuilder().Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" class=\"plot\"><title>{Html.Escape(title)}</title>");

    private static void Axes(StringBuilder sb, string xLabel, string yLabel, double yMin, double yMax, Func<double, double> py)
    {
        sb.Append($"<line x1=\"{Left}\" x2=\"{W - Right}\" y1=\"{H - Bottom}\" y2=\"{H - Bottom}\" stroke=\"#333\"/><line x1=\"{Left}\" x2=\"{Left}\" y1=\"{Top}\" y2=\"{H - Bottom}\" stroke=\"#333\"/>");
        for (int i = 0; i <= 4; i++)
        {
            double y = yMin + (yMax - yMin) * i / 4;
            sb.Append($"<line x1=\"{Left}\" x2=\"{W - Right}\" y1=\"{F(py(y))}\" y2=\"{F(py(y))}\" stroke=\"#eee\"/>")
              .Append($"<text x=\"{Left - 6}\" y=\"{F(py(y) + 4)}\" text-anchor=\"end\" class=\"tick\">{Html.Escape(Num(y))}</text>");
        }
        if (xLabel.Length > 0) sb.Append($"<text x=\"{(Left + W - Right) / 2}\" y=\"{H - 6}\" text-anchor=\"middle\" class=\"axis\">{Html.Escape(xLabel)}</text>");
        sb.Append($"<text transform=\"translate(14 {(Top + H - Bottom) / 2}) rotate(-90)\" text-anchor=\"middle\" class=\"axis\">{Html.Escape(yLabel)}</text>");
    }
}

/// <summary>HTML/XML text escaping. Model- and policy-controlled strings go through here before reaching any markup.</summary>
public static class Html
{
    public static string Escape(string? text)
    {
        if (string.IsNullOrEmpty(text)) return "";
        // Control characters are not valid in XML/HTML text and bidi overrides would reorder what the reader sees:
        // SafeText shows both as visible escapes before the markup characters are escaped.
        text = SafeText.Text(text);
        var sb = new StringBuilder(text.Length + 16);
        foreach (var ch in text)
            sb.Append(ch switch
            {
                '&' => "&amp;", '<' => "&lt;", '>' => "&gt;", '"' => "&quot;", '\'' => "&#39;",
                _ => ch.ToString(),
            });
        return sb.ToString();
    }
}
