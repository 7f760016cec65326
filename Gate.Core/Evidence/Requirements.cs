using System.Globalization;
using Gate.Core.Policy;

namespace Gate.Core.Evidence;

/// <summary>Judges a check's <c>require</c> block against its metrics, the same way for every check type.</summary>
public static class Requirements
{
    /// <summary>
    /// Fills <see cref="CheckResult.Requirements"/> and sets the verdict: Fail if any requirement fails, Pass if all
    /// hold, Inconclusive if a required metric was not measured. A check that already decided Inconclusive
    /// (e.g. exhausted budget) stays so: "not measured" never becomes a pass.
    /// </summary>
    /// <param name="judgedValues">
    /// Values to judge instead of the reported metrics, keyed like them (<c>robustAccuracy</c>, <c>robustAccuracyLower</c>):
    /// a requirement with <c>bound: lower</c> reads <c>metricLower</c> (<see cref="MetricBound.JudgedMetric"/>).
    /// </param>
    public static void Apply(CheckResult result, IReadOnlyDictionary<string, MetricBound> require, IReadOnlyDictionary<string, double>? judgedValues = null)
    {
        bool anyFail = false, anyMissing = false;
        bool alreadyInconclusive = result.Verdict == Verdict.Inconclusive && result.Reasons.Count > 0;
        foreach (var (metric, bound) in require)
        {
            string key = bound.JudgedMetric(metric);
            double? value = judgedValues is not null && judgedValues.TryGetValue(key, out var jv) ? jv
                : result.Metrics.TryGetValue(key, out var mv) ? mv : null;
            bool? holds = value is double v ? bound.Holds(v) : null;
            string text = value is double x
                ? $"{bound.Describe(metric)} = {x.ToString("G4", CultureInfo.InvariantCulture)} (required {bound})"
                : $"{bound.Describe(metric)} was not measured (required {bound})";
            result.Requirements.Add(new RequirementOutcome(metric, bound.Min, bound.Max, value, holds, text) { Bound = bound.Bound });
            if (holds == false) { anyFail = true; result.Reasons.Add($"requirement failed: {text}"); }
            if (holds is null) { anyMissing = true; result.Reasons.Add(text); }
        }
        result.Verdict = anyFail || result.Verdict == Verdict.Fail ? Verdict.Fail
            : alreadyInconclusive || anyMissing ? Verdict.Inconclusive
            : Verdict.Pass;
    }
}
