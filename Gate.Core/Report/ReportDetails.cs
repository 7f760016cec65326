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
/// <item><c>masks</c>: <c>[{ "class": 3, "l1": 4.2, "mask": [[0.0, 0.7, …], …], "flagged": true }, …]</c> — trojan scan: the reverse-engineered trigger mask per class (rows × columns, values in [0, 1]).</item>
/// <item><c>trajectories</c>: <c>[{ "label": "supervisor absent, ep 0", "points": [[row, col], …], "flagged": false }, …]</c> — simulation: the agent's cell per step.</item>
/// <item><c>grid</c>: <c>{ "rows": 7, "cols": 8, "walls": [[r, c], …] }</c> — optional, with <c>trajectories</c>: the world the paths are drawn on.</item>
/// </list>
/// </summary>
public static class ReportDetails
{
    public const string Curve = "curve";
    public const string Layers = "layers";
    public const string Chance = "chance";
    public const string Masks = "masks";
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
    public static T? Read<T>(JsonObject details, string key) where T : class
    {
        if (!details.TryGetPropertyValue(key, out var node) || node is null) return null;
        try { return node.Deserialize<T>(Json); }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NotSupportedException or FormatException) { return null; }
    }
}

public sealed record CurvePoint(double Epsilon, double RobustAccuracy);
public sealed record LayerAccuracy(string Name, double Accuracy, double? CiLow = null, double? CiHigh = null);
public sealed record ClassMask(int Class, double L1, double[][] Mask, bool Flagged = false);
public sealed record Trajectory(string Label, int[][] Points, bool Flagged = false);
public sealed record GridWorld(int Rows, int Cols, int[][]? Walls = null);
