using Gate.Core.Evidence;
using Gate.Core.Policy;

namespace Gate.Core.Checks.StaticInspection;

public sealed record StaticInspectionOptions(IReadOnlySet<string>? AllowOps, IReadOnlySet<string> DenyOps, long? MaxParameters,
    bool AllowCustomDomains, bool AllowControlFlow, bool AllowExternalData, double MaxWeightZScore, long? MinOpset, long? MaxOpset);

/// <summary>
/// Reads the parsed graph on the host, never executing it: operators against allow/deny lists, custom domains,
/// control flow, external data, parameter count, opsets. (Weight statistics join in the mechanistic-checks work.)
/// </summary>
public sealed class StaticInspectionCheck : Check<StaticInspectionOptions>
{
    public override string Type => "static-inspection";
    public override CheckPlacement Placement => CheckPlacement.Host;
    public override string Purpose =>
        "Inspects the model file without running it: which operators it uses, whether it carries custom code, control flow or external files, and how many parameters it has. A model outside the approved operator set may behave in ways no other check can see.";

    private static readonly HashSet<string> ControlFlow = ["If", "Loop", "Scan"];

    public override StaticInspectionOptions BindOptions(CheckSpec spec, DeploymentPolicy policy)
    {
        var n = spec.Node;
        IReadOnlySet<string>? Set(string key) => n[key] is PolicySequence s ? s.Items.Select(i => ((PolicyScalar)i).Value).ToHashSet(StringComparer.Ordinal) : null;
        bool Bool(string key) => n[key] is PolicyScalar s && s.AsBool();
        var opset = n["opset"] as PolicyMapping;
        return new StaticInspectionOptions(Set("allowOps"), Set("denyOps") ?? new HashSet<string>(),
            n["maxParameters"] is PolicyScalar mp ? mp.AsLong() : null,
            Bool("allowCustomDomains"), Bool("allowControlFlow"), Bool("allowExternalData"),
            n["maxWeightZScore"] is PolicyScalar z ? z.AsDouble() : 1000,
            opset?["min"] is PolicyScalar omin ? omin.AsLong() : null, opset?["max"] is PolicyScalar omax ? omax.AsLong() : null);
    }

    public override Task<CheckResult> RunAsync(CheckContext ctx, CheckSpec spec, StaticInspectionOptions o, CancellationToken ct)
    {
        var r = NewResult(spec);
        var g = ctx.Model.Graph;
        var failures = new List<string>();
        var ops = g.Nodes.GroupBy(n => string.IsNullOrEmpty(n.Domain) ? n.OpType : $"{n.Domain}:{n.OpType}")
            .ToDictionary(x => x.Key, x => x.Count());
        if (o.AllowOps is not null)
        {
            var outside = ops.Keys.Where(op => !o.AllowOps.Contains(op)).OrderBy(x => x).ToList();
            if (outside.Count > 0) failures.Add($"operators outside the allow list: {string.Join(", ", outside)}");
        }
        var denied = ops.Keys.Where(o.DenyOps.Contains).OrderBy(x => x).ToList();
        if (denied.Count > 0) failures.Add($"denied operators present: {string.Join(", ", denied)}");
        if (ctx.Model.CustomDomains.Count > 0 && !o.AllowCustomDomains) failures.Add($"custom operator domains: {string.Join(", ", ctx.Model.CustomDomains)}");
        var cf = g.Nodes.Where(nd => ControlFlow.Contains(nd.OpType)).Select(nd => nd.DisplayName).ToList();
        if (cf.Count > 0 && !o.AllowControlFlow) failures.Add($"control-flow operators: {string.Join(", ", cf)}");
        if (g.ExternalData.Count > 0 && !o.AllowExternalData) failures.Add($"external tensor data: {string.Join(", ", g.ExternalData.Keys)}");
        long parameters = g.Initializers.Values.Sum(t => (long)t.Length);
        if (o.MaxParameters is long maxp && parameters > maxp) failures.Add($"{parameters} parameters exceed the limit of {maxp}");
        long opset = ctx.Model.DefaultOpset;
        if (o.MinOpset is long lo && opset < lo) failures.Add($"opset {opset} is below the minimum {lo}");
        if (o.MaxOpset is long hi && opset > hi) failures.Add($"opset {opset} is above the maximum {hi}");

        r.Metrics["parameters"] = parameters;
        r.Metrics["nodes"] = g.Nodes.Count;
        r.Metrics["opset"] = opset;
        r.Metrics["operatorTypes"] = ops.Count;
        r.Details["operators"] = new System.Text.Json.Nodes.JsonObject(ops.OrderBy(k => k.Key).Select(k =>
            new KeyValuePair<string, System.Text.Json.Nodes.JsonNode?>(k.Key, k.Value)));
        r.Details["producer"] = $"{ctx.Model.ProducerName} {ctx.Model.ProducerVersion}".Trim();
        r.Reasons.AddRange(failures);
        r.Verdict = failures.Count > 0 ? Verdict.Fail : Verdict.Pass;
        Requirements.Apply(r, spec.Require);
        r.Summary = failures.Count > 0 ? string.Join("; ", failures) : $"{g.Nodes.Count} nodes, {ops.Count} operator types, {parameters} parameters: all within policy";
        r.Coverage = "static: the graph was read, not executed";
        return Task.FromResult(r);
    }
}
