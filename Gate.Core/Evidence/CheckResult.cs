using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Gate.Core.Policy;

namespace Gate.Core.Evidence;

[JsonConverter(typeof(JsonStringEnumConverter<Verdict>))]
public enum Verdict { Pass, Fail, Inconclusive }

/// <summary>A file written as evidence, relative to the output folder's evidence/ directory, with its digest.</summary>
public sealed record EvidenceFile(string Path, string Sha256, long Bytes, string Description);

/// <summary>One requirement (metric and bound) and whether the measured value met it.</summary>
public sealed record RequirementOutcome(string Metric, double? Min, double? Max, double? Value, bool? Holds, string Text)
{
    /// <summary>What was judged: the point estimate or an end of the metric's confidence interval.</summary>
    public Estimate Bound { get; init; } = Estimate.Point;
}

/// <summary>
/// The uniform result of every check type: verdict, reasons, metrics, requirement outcomes, a coverage
/// statement (what was searched or measured, so the verdict's scope is explicit), evidence files, budget usage,
/// and free-form details for the report's plots.
/// </summary>
public sealed class CheckResult
{
    public required string Id { get; init; }
    public required string Type { get; init; }
    public Enforcement Enforcement { get; set; } = Enforcement.Blocking;
    public Verdict Verdict { get; set; } = Verdict.Inconclusive;
    public string Summary { get; set; } = "";
    public List<string> Reasons { get; init; } = [];
    public SortedDictionary<string, double> Metrics { get; init; } = new(StringComparer.Ordinal);
    public List<RequirementOutcome> Requirements { get; init; } = [];
    public string? Coverage { get; set; }
    public List<EvidenceFile> Evidence { get; init; } = [];
    public SortedDictionary<string, long> BudgetUsed { get; init; } = new(StringComparer.Ordinal);
    public JsonObject Details { get; init; } = new();
    public string? Runtime { get; set; }
    public double DurationSeconds { get; set; }

    public static CheckResult Inconclusive(CheckSpec spec, string reason) => new()
    {
        Id = spec.Id, Type = spec.Type, Enforcement = spec.Enforcement, Verdict = Verdict.Inconclusive,
        Summary = reason, Reasons = [reason],
    };
}
