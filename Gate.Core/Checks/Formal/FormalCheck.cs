using System.Text;
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
/// otherwise inconclusive. The timeout is the check's total, shared evenly by its properties.
/// </summary>
public sealed class FormalCheck : Check<FormalOptions>
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

    public override Task<CheckResult> RunAsync(CheckContext ctx, CheckSpec spec, FormalOptions o, CancellationToken ct)
    {
        var r = NewResult(spec);
        // Counterexamples must hold on the production runtime; without one, the built-in engine confirms them and
        // the result names it (a proof does not depend on any runtime: it is about the float32 model itself).
        IInferenceSession confirm = ctx.Production ?? new BuiltinRuntime().Load(ctx.Model, new RuntimeOptions());
        var properties = o.Spec is not null
            ? [(Path.GetFileName(o.SpecPath!), o.Spec)]
            : LocalRobustness(ctx, o);
        var per = TimeSpan.FromTicks(o.Timeout.Ticks / Math.Max(1, properties.Count));
        var prover = new Prover(ctx.Model, confirm, new ProverOptions { Timeout = per, Method = o.Method, Seed = ctx.SeedFor(spec.Id) });
        int proved = 0, violated = 0, unknown = 0, timedOut = 0;
        var log = new StringBuilder();
        var details = new System.Text.Json.Nodes.JsonArray();
        for (int i = 0; i < properties.Count; i++)
        {
            ct.ThrowIfCancellationRequested();
            var (name, p) = properties[i];
            var res = prover.Prove(p, ct);
            log.Append($"{name}\t{res.Status.ToString().ToLowerInvariant()}\t{res.Seconds:F2}s\t{res.Domains} domains\t{res.Detail}\n");
            details.Add(new System.Text.Json.Nodes.JsonObject { ["property"] = name, ["status"] = res.Status.ToString().ToLowerInvariant(), ["seconds"] = res.Seconds, ["domains"] = res.Domains });
            switch (res.Status)
            {
                case ProofStatus.Unsat: proved++; break;
                case ProofStatus.Sat:
                    violated++;
                    var stem = Path.GetFileNameWithoutExtension(name);
                    r.Evidence.Add(ctx.Evidence.WriteNpy($"cex-{stem}.npy", Tensor.FromFloats(prover.Network.InputShape, res.CounterexampleX!),
                        $"input violating {name}, confirmed on {res.ConfirmedOn}; replay with gate run"));
                    r.Evidence.Add(ctx.Evidence.WriteText($"cex-{stem}.txt", res.ToVnnComp(), $"VNN-COMP counterexample for {name}"));
                    break;
                case ProofStatus.Timeout: timedOut++; unknown++; break;
                default: unknown++; break;
            }
            ctx.Progress.Report(new ProgressUpdate(spec.Id, "properties", i + 1, properties.Count, "properties"));
        }
        r.Evidence.Add(ctx.Evidence.WriteText("results.tsv", log.ToString(), "one line per property: status, time, sub-domains, detail"));
        r.Details["properties"] = details;
        int total = properties.Count;
        r.Metrics["properties"] = total;
        r.Metrics["proved"] = proved;
        r.Metrics["provedFraction"] = total == 0 ? double.NaN : (double)proved / total;
        r.Metrics["violations"] = violated;
        r.Metrics["unknown"] = unknown;
        r.Metrics["timeouts"] = timedOut;
        r.Runtime = confirm.Info.Name;
        r.Coverage = o.Spec is not null
            ? $"VNN-LIB property {Path.GetFileName(o.SpecPath!)} ({o.Spec.Cases.Count} case(s)), method {o.Method.ToString().ToLowerInvariant()}, {o.Timeout.TotalSeconds:G4} s"
            : $"local robustness ({o.Threat!.NormName} ε = {o.Threat.Epsilon}) around {total} sample(s) of dataset '{o.Dataset}', method {o.Method.ToString().ToLowerInvariant()}, {per.TotalSeconds:G4} s each";
        if (violated > 0) { r.Verdict = Verdict.Fail; r.Reasons.Add($"{violated} of {total} properties violated (counterexamples confirmed on {confirm.Info.Name})"); }
        else if (unknown > 0) { r.Verdict = Verdict.Inconclusive; r.Reasons.Add($"{unknown} of {total} properties neither proved nor refuted ({timedOut} timed out)"); }
        else r.Verdict = Verdict.Pass;
        Requirements.Apply(r, spec.Require);
        r.Summary = $"{proved}/{total} proved, {violated} violated, {unknown} unknown";
        if (ctx.Production is null) confirm.Dispose();
        return Task.FromResult(r);
    }

    /// <summary>
    /// The standard VNN-COMP local-robustness property per sample: inside the L∞ ball of radius ε (clipped to the
    /// input's declared range), is any other class's score ≥ the label's? (One case per competing class.)
    /// </summary>
    private static List<(string, VnnProperty)> LocalRobustness(CheckContext ctx, FormalOptions o)
    {
        var ds = ctx.LoadDataset(o.Dataset!);
        var box = o.Threat!;
        int n = Math.Min(o.Samples, ds.Count);
        var list = new List<(string, VnnProperty)>();
        var x = ds.Inputs.Floats!;
        int size = ds.Inputs.Length / ds.Count;
        for (int i = 0; i < n; i++)
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
