using System.Text.Json.Nodes;
using Gate.Core.Evidence;
using Gate.Core.Model;
using Gate.Core.Numerics;
using Gate.Core.Policy;
using Gate.Core.Tensors;

namespace Gate.Core.Checks.StaticInspection;

public sealed record StaticInspectionOptions(IReadOnlySet<string>? AllowOps, IReadOnlySet<string> DenyOps, long? MaxParameters,
    bool AllowCustomDomains, bool AllowControlFlow, bool AllowExternalData, double MaxWeightZScore, long? MinOpset, long? MaxOpset);

/// <summary>
/// Reads the parsed graph on the host, never executing it: operators against allow/deny lists, custom domains,
/// control flow, external data, parameter count, opsets, and the weights themselves: non-finite values (fail),
/// values with an extreme robust z-score within their tensor (fail above <c>maxWeightZScore</c>: a planted
/// outlier weight is a classic way to hide a trigger), denormals, unused initializers and dead nodes (reported).
/// </summary>
public sealed class StaticInspectionCheck : Check<StaticInspectionOptions>
{
    public override CheckDeclaration Declaration => StaticInspectionDeclaration.Value;
    public override CheckPlacement Placement => CheckPlacement.Host;

    /// <summary>
    /// One spelling per operator for allowOps/denyOps: the default ONNX domain ("" or "ai.onnx") as the bare name
    /// (Relu), every other domain qualified (com.microsoft:FusedGemm). "ai.onnx:Relu" in a policy means Relu.
    /// </summary>
    public static string QualifiedOp(string domain, string opType) => domain is "" or "ai.onnx" ? opType : $"{domain}:{opType}";

    /// <summary>
    /// A policy's operator name in the spelling of <see cref="QualifiedOp(string, string)"/>: "domain:Op" or the
    /// dotted "com.microsoft.FusedGemm" / "ai.onnx.ml.TreeEnsembleClassifier" (operator names have no dots, so the
    /// domain is everything before the last one).
    /// </summary>
    public static string QualifiedOp(string policyName)
    {
        int at = policyName.LastIndexOf(':');
        if (at < 0) at = policyName.LastIndexOf('.');
        return at < 0 ? policyName : QualifiedOp(policyName[..at], policyName[(at + 1)..]);
    }

    private static readonly HashSet<string> ControlFlow = ["If", "Loop", "Scan"];

    public override StaticInspectionOptions BindOptions(CheckSpec spec, DeploymentPolicy policy)
    {
        var n = spec.Node;
        IReadOnlySet<string>? Set(string key) => n[key] is PolicySequence s ? s.Items.Select(i => QualifiedOp(((PolicyScalar)i).Value)).ToHashSet(StringComparer.Ordinal) : null;
        bool Bool(string key) => Declaration.Value(n, key).Bool!.Value;
        var opset = n["opset"] as PolicyMapping;
        return new StaticInspectionOptions(Set("allowOps"), Set("denyOps") ?? new HashSet<string>(),
            n["maxParameters"] is PolicyScalar mp ? mp.AsLong() : null,
            Bool("allowCustomDomains"), Bool("allowControlFlow"), Bool("allowExternalData"),
            Declaration.Value(n, "maxWeightZScore").Number!.Value,
            opset?["min"] is PolicyScalar omin ? omin.AsLong() : null, opset?["max"] is PolicyScalar omax ? omax.AsLong() : null);
    }

    public override Task<CheckResult> RunAsync(CheckContext ctx, CheckSpec spec, StaticInspectionOptions o, CancellationToken ct)
    {
        var r = NewResult(spec);
        var g = ctx.Model.Graph;
        var failures = new List<string>();
        var ops = g.Nodes.GroupBy(n => QualifiedOp(n.Domain, n.OpType))
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
        long parameters = g.ParameterCount;
        if (o.MaxParameters is long maxp && parameters > maxp) failures.Add($"{parameters} parameters exceed the limit of {maxp}");
        long opset = ctx.Model.DefaultOpset;
        if (o.MinOpset is long lo && opset < lo) failures.Add($"opset {opset} is below the minimum {lo}");
        if (o.MaxOpset is long hi && opset > hi) failures.Add($"opset {opset} is above the maximum {hi}");

        var weights = InspectWeights(g);
        if (weights.NonFinite.Count > 0)
            failures.Add($"non-finite weights (NaN/Inf) in {string.Join(", ", weights.NonFinite.Select(t => $"{t.Name} ({t.Count})"))}");
        var extreme = weights.ZScores.Where(z => z.Z > o.MaxWeightZScore).OrderByDescending(z => z.Z).ToList();
        if (extreme.Count > 0)
            failures.Add($"weights with robust z-score above {o.MaxWeightZScore}: {string.Join(", ", extreme.Select(z => $"{z.Name}[{z.Index}] = {z.Value:G4} (z = {z.Z:G4})"))}");
        var warnings = new List<string>();
        if (weights.Denormal.Count > 0) warnings.Add($"denormal weights in {string.Join(", ", weights.Denormal.Select(t => $"{t.Name} ({t.Count})"))}: {DenormalCost}");
        var unused = UnusedInitializers(g);
        if (unused.Count > 0) warnings.Add($"unused initializers: {string.Join(", ", unused)}");
        var dead = DeadNodes(g);
        if (dead.Count > 0) warnings.Add($"dead nodes (no output reaches a graph output): {string.Join(", ", dead.Select(n => n.DisplayName))}");
        if (cf.Count > 0 && o.AllowControlFlow) warnings.Add($"control-flow operators (allowed by policy): {string.Join(", ", cf)}");

        r.Metrics["nonFiniteWeights"] = weights.NonFinite.Sum(t => t.Count);
        r.Metrics["denormalWeights"] = weights.Denormal.Sum(t => t.Count);
        r.Metrics["maxWeightZScore"] = weights.ZScores.Count == 0 ? 0 : weights.ZScores.Max(z => z.Z);
        r.Metrics["unusedInitializers"] = unused.Count;
        r.Metrics["deadNodes"] = dead.Count;
        r.Metrics["controlFlowNodes"] = cf.Count;
        r.Metrics["customDomains"] = ctx.Model.CustomDomains.Count;
        r.Metrics["externalDataTensors"] = g.ExternalData.Count;
        r.Details["warnings"] = new JsonArray(warnings.Select(w => (JsonNode)w).ToArray());
        r.Details["weightZScores"] = new JsonArray(weights.ZScores.OrderByDescending(z => z.Z).Select(z => (JsonNode)new JsonObject
            { ["tensor"] = z.Name, ["index"] = z.Index, ["value"] = z.Value, ["z"] = double.IsFinite(z.Z) ? z.Z : null }).ToArray());
        r.Details["opsets"] = new JsonObject(ctx.Model.Opsets.OrderBy(k => k.Key).Select(k =>
            new KeyValuePair<string, JsonNode?>(k.Key.Length == 0 ? "ai.onnx" : k.Key, k.Value)));
        r.Details["irVersion"] = ctx.Model.IrVersion;
        r.Details["metadata"] = new JsonObject(ctx.Model.Metadata.OrderBy(k => k.Key).Select(k => new KeyValuePair<string, JsonNode?>(k.Key, k.Value)));
        if (cf.Count > 0) r.Details["controlFlow"] = new JsonArray(cf.Select(c => (JsonNode)c).ToArray());
        r.Details["unusedInitializers"] = new JsonArray(unused.Select(u => (JsonNode)u).ToArray());
        r.Details["deadNodes"] = new JsonArray(dead.Select(d => (JsonNode)d.DisplayName).ToArray());

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
        r.Summary = failures.Count > 0 ? string.Join("; ", failures)
            : $"{g.Nodes.Count} nodes, {ops.Count} operator types, {parameters} parameters: all within policy" + (warnings.Count > 0 ? $" ({warnings.Count} warning(s))" : "");
        r.Coverage = "static: the graph was read, not executed";
        return Task.FromResult(r);
    }

    /// <summary>Per-tensor weight findings: counts of non-finite and denormal values, and each tensor's most extreme robust z-score.</summary>
    public sealed record WeightReport(List<(string Name, int Count)> NonFinite, List<(string Name, int Count)> Denormal,
        List<(string Name, int Index, double Value, double Z)> ZScores);

    public static WeightReport InspectWeights(Graph g)
    {
        var report = new WeightReport([], [], []);
        foreach (var (name, t) in g.Initializers.OrderBy(k => k.Key, StringComparer.Ordinal))
        {
            if (t.Type is not (DType.Float32 or DType.Float64 or DType.Float16 or DType.BFloat16)) continue;
            var values = t.ToDoubleArray();
            // Denormals are judged in the tensor's own precision: a float16 weight of 1e-5 is subnormal, a float32 one is not.
            double smallestNormal = SmallestNormal(t.Type);
            int nonFinite = 0, denormal = 0;
            var finite = new List<double>(values.Length);
            foreach (var v in values)
            {
                if (!double.IsFinite(v)) { nonFinite++; continue; }
                if (v != 0 && Math.Abs(v) < smallestNormal) denormal++;
                finite.Add(v);
            }
            if (nonFinite > 0) report.NonFinite.Add((name, nonFinite));
            if (denormal > 0) report.Denormal.Add((name, denormal));
            // A z-score needs a population: tensors of fewer than 8 values (biases of tiny layers, scalars) are skipped.
            if (finite.Count < 8) continue;
            var (z, at) = RobustStats.MaxRobustZ(finite.ToArray());
            report.ZScores.Add((name, at, finite[at], z));
        }
        return report;
    }

    /// <summary>The smallest positive normal number of a floating-point element type.</summary>
    internal static double SmallestNormal(DType type) => type switch
    {
        DType.Float64 => 2.2250738585072014e-308,
        DType.Float16 => 6.103515625e-05, // 2^-14
        _ => 1.1754943508222875e-38,      // float32 and bfloat16 share the exponent range: 2^-126
    };

    /// <summary>What subnormal weights cost, said once for the report: measured on Gate's development machine (issue
    /// #17's numbers) and what Gate's own runs do about it.</summary>
    internal const string DenormalCost =
        "arithmetic on subnormal numbers is 5-20x slower on x86 CPUs unless they are flushed to zero (measured: the digits " +
        "CNN with 227 subnormal weights ran 4.4 ms per batch on ONNX Runtime, 0.33 ms flushed); Gate's ONNX Runtime and " +
        "libtorch runs flush them (runtime.flushDenormals), which moves each affected value by less than 1.2e-38, and so " +
        "does an accelerator that flushes; a deployment that does not flush pays the slowdown in every layer they feed";

    /// <summary>Initializers that no node reads and that are not graph outputs.</summary>
    public static List<string> UnusedInitializers(Graph g)
    {
        var read = new HashSet<string>(g.Nodes.SelectMany(n => n.Inputs).Concat(g.Outputs.Select(o => o.Name)));
        return g.Initializers.Keys.Where(k => !read.Contains(k)).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>Nodes none of whose outputs reaches a graph output (walking back from the outputs).</summary>
    public static List<Node> DeadNodes(Graph g)
    {
        var needed = new HashSet<string>(g.Outputs.Select(o => o.Name));
        var live = new bool[g.Nodes.Count];
        for (int i = g.Nodes.Count - 1; i >= 0; i--) // nodes are topologically sorted (ONNX requires it)
        {
            var n = g.Nodes[i];
            if (!n.Outputs.Any(o => o.Length > 0 && needed.Contains(o))) continue;
            live[i] = true;
            foreach (var inp in n.Inputs) if (inp.Length > 0) needed.Add(inp);
        }
        return g.Nodes.Where((n, i) => !live[i]).ToList();
    }
}
