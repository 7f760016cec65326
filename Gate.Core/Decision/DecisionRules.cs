using System.Text.Json.Serialization;
using Gate.Core.Evidence;
using Gate.Core.Policy;

namespace Gate.Core.Decision;

[JsonConverter(typeof(JsonStringEnumConverter<GateDecision>))]
public enum GateDecision { Approve, Reject, Inconclusive }

/// <summary>
/// The three-valued decision. APPROVE needs every blocking check to have passed; any blocking failure rejects;
/// anything else (an inconclusive blocking check, no blocking checks at all) is INCONCLUSIVE — or REJECT when the
/// policy says <c>onInconclusive: reject</c>. Advisory checks are reported but never change the decision.
/// </summary>
public static class DecisionRules
{
    public static (GateDecision Decision, List<string> Reasons) Decide(DecisionSpec spec, IReadOnlyList<CheckResult> results)
    {
        var reasons = new List<string>();
        var blocking = results.Where(r => r.Enforcement == Enforcement.Blocking).ToList();
        var failed = blocking.Where(r => r.Verdict == Verdict.Fail).ToList();
        var unknown = blocking.Where(r => r.Verdict == Verdict.Inconclusive).ToList();
        foreach (var r in failed) reasons.Add($"{r.Id}: failed — {r.Summary}");
        foreach (var r in unknown) reasons.Add($"{r.Id}: inconclusive — {r.Summary}");
        if (failed.Count > 0) return (GateDecision.Reject, reasons);
        if (blocking.Count == 0)
        {
            reasons.Add("the policy has no blocking checks, so nothing supports an approval");
            return (spec.OnInconclusive == InconclusiveHandling.Reject ? GateDecision.Reject : GateDecision.Inconclusive, reasons);
        }
        if (unknown.Count > 0)
        {
            if (spec.OnInconclusive == InconclusiveHandling.Reject)
            {
                reasons.Add("policy sets decision.onInconclusive: reject");
                return (GateDecision.Reject, reasons);
            }
            return (GateDecision.Inconclusive, reasons);
        }
        reasons.Add($"all {blocking.Count} blocking check(s) passed");
        return (GateDecision.Approve, reasons);
    }
}
