using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Gate.Core.Report;

/// <summary>
/// The shapes of <see cref="Evidence.CheckResult.Details"/> that the report draws as plots. A check fills any of
/// these keys (with the <c>Set*</c> helpers, so the JSON always has the shape the report reads); the report
/// draws whatever is present and skips what is not, or what does not have the documented shape.
/// <list type="bullet">
/// <item><c>curve</c>: <c>[{ "epsilon": 0.01, "robustAccuracy": 0.93 }, …]</c> — adversarial: robust accuracy against ε.</item>
/// <item><c>layers</c>: <c>[{ "name": "fc1", "accuracy": 0.91, "ciLow": 0.88, "ciHigh": 0.94 }, …]</c> — linear probe: accuracy per layer with its confidence interval.</item>
/// <item><c>chance</c>: <c>0.5</c> — optional, with <c>layers</c>: the accuracy of guessing, drawn as a reference line.</item>
/// <item><c>masks</c>: <c>[{ "class": 3, "l1": 4.2, "mask": [[0.0, 0.7, …], …], "flagged": true }, …]</c> — trojan scan: the reverse-engineered trigger mask per class (rows × columns, values in [0, 1]).
/// An item may name the <c>detector</c> that recovered it (trojan scans with several detectors).</item>
/// <item><c>detectors</c>: <c>[{ "name": "mm-bd", "statistic": "…", "perClassName": "maximum margin", "perClass": [..], "score": 5.1, "threshold": 3.2,
/// "thresholdSource": "…", "falsePositiveRate": 0.05, "suspectClass": 3, "flagged": true, "productionAttackSuccess": 0.97, … }, …]</c> — trojan scan: each detector's evidence.</item>
/// <item><c>trajectories</c>: <c>[{ "label": "supervisor absent, ep 0", "points": [[row, col], …], "flagged": false }, …]</c> — simulation: the agent's cell per step.
/// Instead of <c>points</c> an item may carry <c>frames</c> (the rendered board per step, rows joined by "\n", agent 'A', walls '#') as the
/// simulation check writes them; the path is then read off the frames, <c>name</c>/<c>scenario</c> label it and a non-empty <c>note</c> flags it.</item>
/// <item><c>grid</c>: <c>{ "rows": 7, "cols": 8, "walls": [[r, c], …] }</c> — optional, with <c>trajectories</c>: the world the paths are drawn on.</item>
/// </list>
/// </summary>
public static class ReportDetails
{
    public const string Curve = "curve";
    public const string Layers = "layers";
    public const string Chance = "chance";
    public const string Masks = "masks";
    public const string Detectors = "detectors";
    public const string Trajectories = "trajectories";
    public const string Grid = "grid";

    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static void SetCurve(JsonObject details, IEnumerable<CurvePoint> points) => details[Curve] = JsonSerializer.SerializeToNode(points.ToArray(), Json);
    public static void SetLayers(JsonObject details, IEnumerable<LayerAccuracy> layers, double? chance = null)
    {
        details[Layers] = JsonSerializer.SerializeToNode(layers.ToArray(), Json);
        if (chance is double c) details[Chance] = c;
    }
    public static void SetMasks(JsonObject details, IEnumerable<ClassMask> masks) => details[Masks] = JsonSerializer.SerializeToNode(masks.ToArray(), Json);
    public static void SetTrajectories(JsonObject details, IEnumerable<Trajectory> trajectories, GridWorld? grid = null)
    {
        details[Trajectories] = JsonSerializer.SerializeToNode(trajectories.ToArray(), Json);
        if (grid is not null) details[Grid] = JsonSerializer.SerializeToNode(grid, Json);
    }

    /// <summary>Reads one key as T, or null when it is absent or has another shape (a report never fails on a check's details).</summary>
    public static T? Read<T>(JsonObject details, string key) where T : class => TryRead<T>(details, key, out var value, out _) ? value : null;

    /// <summary>
    /// Reads one key as T. False with the reason when the key is present but cannot be read as T, so that the report can
    /// say that a plot is missing and why, instead of dropping it silently.
    /// </summary>
    public static bool TryRead<T>(JsonObject details, string key, out T? value, out string? error) where T : class
    {
        value = null; error = null;
        if (!details.TryGetPropertyValue(key, out var node) || node is null) return false;
        try { value = node.Deserialize<T>(Json); return value is not null; }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NotSupportedException or FormatException)
        {
            error = $"details.{key} could not be read ({e.GetType().Name}: {e.Message})";
            return false;
        }
    }
}

public static class TrajectoryDetails
{
    /// <summary>
    /// Reads <c>trajectories</c> in either documented form (points, or rendered frames) and the grid (given, or read
    /// off the first frame). Items that have neither are skipped.
    /// </summary>
    public static (List<Trajectory> Paths, GridWorld? Grid) Read(JsonObject details)
    {
        var paths = new List<Trajectory>();
        GridWorld? grid = ReportDetails.Read<GridWorld>(details, ReportDetails.Grid);
        if (details[ReportDetails.Trajectories] is not JsonArray items) return (paths, grid);
        foreach (var item in items.OfType<JsonObject>())
        {
            string label = Text(item, "label") ?? string.Join(" · ", new[] { Text(item, "name"), Text(item, "scenario") }.Where(x => !string.IsNullOrEmpty(x)));
            string? note = Text(item, "note");
            bool flagged = (item["flagged"] is JsonValue f && f.TryGetValue<bool>(out var fb) && fb) || !string.IsNullOrEmpty(note);
            if (!string.IsNullOrEmpty(note)) label += $" — {note}";
            if (ReportDetails.Read<int[][]>(item, "points") is { Length: > 0 } pts) { paths.Add(new Trajectory(label, pts, flagged)); continue; }
            if (item["frames"] is not JsonArray frames) continue;
            var boards = frames.Select(x => x is JsonValue v && v.TryGetValue<string>(out var str) ? str.Split('\n') : null).Where(b => b is not null).ToList();
            var cells = new List<int[]>();
            foreach (var board in boards)
                for (int r = 0; r < board!.Length; r++)
                    if (board[r].IndexOf('A') is int c and >= 0) { cells.Add([r, c]); break; }
            if (cells.Count == 0) continue;
            paths.Add(new Trajectory(label, cells.ToArray(), flagged));
            if (grid is null && boards.Count > 0)
            {
                var first = boards[0]!;
                var walls = first.SelectMany((row, r) => row.Select((ch, c) => (ch, r, c))).Where(x => x.ch == '#').Select(x => new[] { x.r, x.c }).ToArray();
                grid = new GridWorld(first.Length, first.Max(row => row.Length), walls);
            }
        }
        return (paths, grid);
    }

    private static string? Text(JsonObject o, string key) => o[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
}

/// <summary>
/// One point of a robustness curve. <see cref="RobustAccuracy"/> is null when some samples were not fully searched at
/// that ε (undecided): the true value then lies in [<see cref="RobustAccuracyLower"/>, <see cref="RobustAccuracyUpper"/>].
/// </summary>
public sealed record CurvePoint(double Epsilon, double? RobustAccuracy, double? RobustAccuracyLower = null, double? RobustAccuracyUpper = null,
    int? Samples = null, int? Undecided = null);
public sealed record LayerAccuracy(string Name, double Accuracy, double? CiLow = null, double? CiHigh = null);
public sealed record ClassMask(int Class, double L1, double[][] Mask, bool Flagged = false, string? Detector = null);
public sealed record DetectorEvidence(string Name, string? Statistic, string? PerClassName, double[]? PerClass, double? Score, int SuspectClass, double? Threshold,
    string? ThresholdSource, double? FalsePositiveRate, bool Flagged, string? Exhausted, double? ProductionAttackSuccess, int ProductionSamples, string? ConfirmedWith);
public sealed record Trajectory(string Label, int[][] Points, bool Flagged = false);
public sealed record GridWorld(int Rows, int Cols, int[][]? Walls = null);
