using System.Text;
using System.Text.Json.Nodes;
using Gate.Core.Checks.Adversarial;
using Gate.Core.Evidence;
using Gate.Core.Policy;
using Gate.Core.Runtime;
using Gate.Core.Tensors;
using Gate.Core.Verification;

namespace Gate.Core.Checks.Formal;

/// <summary>
/// Bound options of a formal check: a VNN-LIB file, or local robustness generated around dataset samples within
/// <see cref="Threat"/> (the shared perturbation set of adversarial checks: an L∞ box inside the declared input range).
/// </summary>
public sealed record FormalOptions(string? SpecPath, VnnProperty? Spec, ThreatModel? Threat, string? Dataset, int Samples, ProofMethod Method, TimeSpan Timeout)
    : IReadsInputFiles
{
    public IReadOnlyList<string> InputFiles => SpecPath is null ? [] : [SpecPath];
}

/// <summary>
/// Proves output properties with sound bounds (IBP/CROWN and branch and bound): "holds" (proved), "violated"
/// (a counterexample the runtime reproduces) or unknown. All proved → pass; any confirmed violation → fail;
/// otherwise inconclusive. The timeout is the check's total, shared evenly by its properties (the work units).
/// </summary>
public sealed class FormalCheck : ShardedCheck<FormalOptions>
{
    public override CheckDeclaration Declaration => FormalDeclaration.Value;
    public override CheckPlacement Placement => CheckPlacement.Sandbox;

    public override FormalOptions BindOptions(CheckSpec spec, DeploymentPolicy policy)
    {
        var n = spec.Node;
        var specNode = n["spec"] as PolicyScalar;
        var prop = n["property"] as PolicyMapping;
        if ((specNode is null) == (prop is null)) throw PolicyException.At(n, "a formal check needs exactly one of 'spec' (a VNN-LIB file) or 'property'");
        var d = Declaration; // explicit values, else the declared defaults
        var method = d.Value(n, "method").Text switch { "ibp" => ProofMethod.Ibp, "crown" => ProofMethod.Crown, _ => ProofMethod.Bab };
        var timeout = d.Value(n, "timeout").Duration!.Value;
        int samples = d.Value(n, "samples").Int!.Value;
        if (specNode is not null)
        {
            var path = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(policy.SourcePath)) ?? ".", specNode.Value));
            if (!File.Exists(path)) throw PolicyException.At(specNode, $"VNN-LIB file '{specNode.Value}' not found (looked for {path})");
            VnnProperty parsed;
            try { parsed = VnnLib.Load(path); }
            catch (VnnLibException e) { throw PolicyException.At(specNode, e.Message); }
            return new FormalOptions(path, parsed, null, null, 1, method, timeout);
        }
        if (spec.Dataset is null) throw PolicyException.At(n, "a 'property' of type local-robustness needs 'dataset' (the samples to prove around)");
        return new FormalOptions(null, null, ThreatOptions.Bind(prop!, policy), spec.Dataset, samples, method, timeout);
    }

    /// <summary>
    /// This shard's properties. Each proof seeds its searches from the policy seed alone and gets the same share of
    /// the timeout (the total over all properties), so a property's outcome does not depend on its shard.
    /// </summary>
    protected override Task<CheckResult> RunUnitsAsync(CheckContext ctx, CheckSpec spec, FormalOptions o, ShardSelection shard, CancellationToken ct)
    {
        // Counterexamples must hold on the production runtime; without one, the built-in engine confirms them and
        // the result names it (a proof does not depend on any runtime: it is about the float32 model itself).
        IInferenceSession confirm = ctx.Production ?? new BuiltinRuntime().Load(ctx.Model, new RuntimeOptions());
        try
        {
            long total = o.Spec is not null ? 1 : PropertyCount(ctx, o);
            var (first, end) = shard.Range(total);
            var properties = o.Spec is not null
                ? (first == 0 && end == 1 ? [(Path.GetFileName(o.SpecPath!), o.Spec)] : [])
                : LocalRobustness(ctx, o, (int)first, (int)end);
            var prover = new Prover(ctx.Model, confirm, new ProverOptions { Timeout = PerProperty(o, total), Method = o.Method, Seed = ctx.SeedFor(spec.Id) });
            var units = new List<JsonObject>();
            var files = new List<EvidenceFile>();
            for (int i = 0; i < properties.Count; i++)
            {
                ct.ThrowIfCancellationRequested();
                var (name, p) = properties[i];
                var res = prover.Prove(p, ct);
                if (res.Status == ProofStatus.Sat)
                {
                    var stem = Path.GetFileNameWithoutExtension(name);
                    files.Add(ctx.Evidence.WriteNpy($"cex-{stem}.npy", Tensor.FromFloats(prover.Network.InputShape, res.CounterexampleX!),
                        $"input violating {name}, confirmed on {res.ConfirmedOn}; replay with gate run"));
                    files.Add(ctx.Evidence.WriteText($"cex-{stem}.txt", res.ToVnnComp(), $"VNN-COMP counterexample for {name}"));
                }
                // The proof's time is a timing (like every durationSeconds, outside the shard digest); the rest is its outcome.
                units.Add(new JsonObject { ["property"] = name, ["status"] = res.Status.ToString().ToLowerInvariant(), ["durationSeconds"] = res.Seconds, ["domains"] = res.Domains, ["detail"] = res.Detail });
                ctx.Progress.Report(new ProgressUpdate(spec.Id, "properties", i + 1, properties.Count, "properties"));
            }
            // The shard's own budget: each property's share of the timeout, and whether any of this shard's ran out of it.
            int timeouts = units.Count(u => u["status"]!.GetValue<string>() == "timeout");
            var state = new JsonObject
            {
                ["timeoutPerPropertySeconds"] = PerProperty(o, total).TotalSeconds,
                ["exhausted"] = timeouts > 0 ? $"{timeouts} of {units.Count} properties ran out of their {PerProperty(o, total).TotalSeconds:G4} s" : null,
            };
            var part = Partial(spec, shard, total, units, state, confirm.Info.Name);
            part.Evidence.AddRange(files);
            return Task.FromResult(part);
        }
        finally { if (ctx.Production is null) confirm.Dispose(); }
    }

    /// <summary>The timeout is the check's total, shared evenly by all its properties (in every shard alike).</summary>
    private static TimeSpan PerProperty(FormalOptions o, long total) => TimeSpan.FromTicks(o.Timeout.Ticks / Math.Max(1, total));

    protected override CheckResult MergeUnits(CheckContext ctx, CheckSpec spec, FormalOptions o, ShardParts parts, string? runtime)
    {
        var r = NewResult(spec);
        int proved = 0, violated = 0, unknown = 0, timedOut = 0;
        var log = new StringBuilder();
        var details = new JsonArray();
        foreach (var u in parts.Units)
        {
            string name = u["property"]!.GetValue<string>(), status = u["status"]!.GetValue<string>();
            long domains = u["domains"]!.GetValue<long>();
            log.Append($"{name}\t{status}\t{domains} domains\t{u["detail"]?.GetValue<string>()}\n");
            details.Add(new JsonObject { ["property"] = name, ["status"] = status, ["durationSeconds"] = u["durationSeconds"]?.DeepClone(), ["domains"] = domains });
            switch (Enum.TryParse<ProofStatus>(status, ignoreCase: true, out var st) ? st : throw new InvalidDataException($"property {name}: unknown status '{status}'"))
            {
                case ProofStatus.Unsat: proved++; break;
                case ProofStatus.Sat: violated++; break;
                case ProofStatus.Timeout: timedOut++; unknown++; break;
                default: unknown++; break;
            }
        }
        // Times are in the details (durationSeconds), not in the evidence, so its digest is the same on every run.
        r.Evidence.Add(ctx.Evidence.WriteText("results.tsv", log.ToString(), "one line per property: status, sub-domains, detail"));
        r.Details["properties"] = details;
        long total = parts.Total;
        r.Metrics["properties"] = total;
        r.Metrics["proved"] = proved;
        r.Metrics["provedFraction"] = total == 0 ? double.NaN : (double)proved / total;
        r.Metrics["violations"] = violated;
        r.Metrics["unknown"] = unknown;
        r.Metrics["timeouts"] = timedOut;
        r.Runtime = runtime;
        r.Coverage = o.Spec is not null
            ? $"VNN-LIB property {Path.GetFileName(o.SpecPath!)} ({o.Spec.Cases.Count} case(s)), method {o.Method.ToString().ToLowerInvariant()}, {o.Timeout.TotalSeconds:G4} s"
            : $"local robustness ({o.Threat!.NormName} ε = {o.Threat.Epsilon}) around {total} sample(s) of dataset '{o.Dataset}', method {o.Method.ToString().ToLowerInvariant()}, {PerProperty(o, total).TotalSeconds:G4} s each";
        if (violated > 0) { r.Verdict = Verdict.Fail; r.Reasons.Add($"{violated} of {total} properties violated (counterexamples confirmed on {runtime})"); }
        else if (unknown > 0) { r.Verdict = Verdict.Inconclusive; r.Reasons.Add($"{unknown} of {total} properties neither proved nor refuted ({timedOut} timed out)"); }
        else r.Verdict = Verdict.Pass;
        Requirements.Apply(r, spec.Require);
        r.Summary = $"{proved}/{total} proved, {violated} violated, {unknown} unknown";
        return r;
    }

    private static int PropertyCount(CheckContext ctx, FormalOptions o) => Math.Min(o.Samples, ctx.LoadDataset(o.Dataset!).Count);

    /// <summary>
    /// The standard VNN-COMP local-robustness property per sample: inside the L∞ ball of radius ε (clipped to the
    /// input's declared range), is any other class's score ≥ the label's? (One case per competing class.)
    /// </summary>
    private static List<(string, VnnProperty)> LocalRobustness(CheckContext ctx, FormalOptions o, int first, int end)
    {
        var ds = ctx.LoadDataset(o.Dataset!);
        var box = o.Threat!;
        var list = new List<(string, VnnProperty)>();
        var x = ds.Inputs.Floats!;
        int size = ds.Inputs.Length / ds.Count;
        for (int i = first; i < end; i++)
        {
            var lo = new double[size]; var hi = new double[size];
            for (int j = 0; j < size; j++)
            {
                double v = x[i * size + j];
                lo[j] = Math.Max(v - box.Epsilon, box.Min); hi[j] = Math.Min(v + box.Epsilon, box.Max);
                if (lo[j] > hi[j]) (lo[j], hi[j]) = (v, v);
            }
            long label = ds.Labels?[i] ?? Predict(ctx, ds.Inputs.SliceBatch(i, 1));
            int classes = ctx.Engine.Run(new Dictionary<string, Tensor> { [ctx.Engine.InputNames[0]] = ds.Inputs.SliceBatch(i, 1) }, [ctx.PrimaryOutput])[ctx.PrimaryOutput].Length;
            var cases = new List<VnnCase>();
            for (int k = 0; k < classes; k++)
            {
                if (k == label) continue;
                var c = new double[classes]; c[label] = 1; c[k] = -1;
                cases.Add(new VnnCase(lo, hi, [new OutputConstraint(c, 0, 0, 0)])); // Y_label − Y_k ≤ 0: class k ties or wins
            }
            list.Add(($"sample-{i:D4}.vnnlib", new VnnProperty($"{o.Dataset}[{i}] ε={box.Epsilon}", size, classes, cases)));
        }
        return list;
    }

    private static long Predict(CheckContext ctx, Tensor x)
    {
        var y = ctx.Engine.Run(new Dictionary<string, Tensor> { [ctx.Engine.InputNames[0]] = x }, [ctx.PrimaryOutput])[ctx.PrimaryOutput].ToFloatArray();
        return Array.IndexOf(y, y.Max());
    }
}
