using System.Globalization;
using Gate.Core.Checks;
using Gate.Core.Checks.Adversarial;
using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Plan;
using Gate.Core.Policy;
using Gate.Core.Tensors;

namespace Gate.Core.Governance;

/// <summary>Lint outcome: errors make the policy unusable; warnings flag settings that are valid but vacuous or weak.</summary>
public sealed record LintResult(IReadOnlyList<PolicyError> Errors, IReadOnlyList<PolicyError> Warnings, DeploymentPolicy? Policy)
{
    /// <summary>No errors and no warnings.</summary>
    public bool Clean => Errors.Count == 0 && Warnings.Count == 0;
}

/// <summary>
/// <c>gate policy lint</c>: the loader's schema and semantic errors, each check type's own option validation, and
/// warnings for settings that let a weak model through (vacuous thresholds, budgets that cannot cover the
/// samples, a release policy that tolerates inconclusive results or weak isolation, …). Each finding is file:line:col.
/// </summary>
public static class PolicyLint
{
    /// <summary>Below this many samples a 95% interval on a fraction is wider than ±0.18: too few to tell models apart.</summary>
    public const int MinUsefulSamples = 30;
    /// <summary>An ε below this fraction of the input range is no perturbation worth searching.</summary>
    public const double TinyEpsilonFraction = 1e-3;

    /// <param name="modelPath">Optional model to lint the policy against (as <c>gate check</c> would plan it); a malformed model is bad input.</param>
    public static LintResult Lint(string path, string? modelPath = null)
    {
        DeploymentPolicy policy;
        try { policy = PolicyLoader.Load(path); }
        catch (PolicyException e) { return new LintResult(e.Errors, [], null); }
        return Lint(policy, model: modelPath is null ? null : OnnxModelLoader.Load(modelPath));
    }

    /// <param name="checks">Check implementations whose option binding is part of lint (default: this build's <see cref="CheckRegistry"/>).</param>
    /// <param name="model">When given, the plan errors <c>gate check</c> would report for this model, and a warning for opsets newer than the engine knows.</param>
    public static LintResult Lint(DeploymentPolicy policy, Func<string, ICheck?>? checks = null, OnnxModel? model = null)
    {
        checks ??= CheckRegistry.Find;
        var errors = new List<PolicyError>();
        foreach (var spec in policy.Spec.Checks)
        {
            // A check type's own option validation (e.g. a layer that must exist) is part of lint too.
            try { checks(spec.Type)?.Bind(spec, policy); }
            catch (PolicyException e) { errors.AddRange(e.Errors); }
        }
        var warnings = new List<PolicyError>();
        void Warn(PolicyNode at, string message) => warnings.Add(new PolicyError(at.Location, at.Path, message, IsWarning: true));
        var root = policy.Root;
        var spec0 = (PolicyMapping)root["spec"]!;
        bool release = policy.Metadata.Release;

        if (release && policy.Spec.Decision.OnInconclusive == InconclusiveHandling.Inconclusive)
            Warn(Where(spec0, "decision", "onInconclusive"),
                "a release policy lets INCONCLUSIVE through to the pipeline; set decision.onInconclusive: reject so that \"could not tell\" blocks a release");
        if (release && !policy.Spec.Sandbox.Isolation.Meets(IsolationLevel.ProcessNetns))
            Warn(Where(spec0, "sandbox", "isolation"),
                "isolation 'process' gives the model no network or filesystem isolation; a release policy should require 'container' (or at least 'process-netns')");
        if (release && policy.Spec.Runtime == "builtin")
            Warn(spec0["runtime"]!, "a release policy judged on the built-in engine does not exercise the production runtime (onnxruntime)");
        if (policy.Spec.Checks.All(c => c.Enforcement == Enforcement.Advisory))
            Warn(spec0["checks"]!, "every check is advisory: nothing can block, and with no blocking check the decision can never be APPROVE");

        if ((spec0["sandbox"] as PolicyMapping)?["limits"] is PolicyMapping limits && limits["cpus"] is PolicyScalar cpus && cpus.IsNumber
            && cpus.AsDouble() > Environment.ProcessorCount)
            Warn(cpus, $"cpus {cpus.Value} is more than this host's {Environment.ProcessorCount}: Docker refuses a container that asks for more CPUs than its host has, " +
                       "so on a host like this one every sandboxed check would be INCONCLUSIVE");
        if (model is not null) ModelFindings(policy, model, spec0, errors, Warn);

        foreach (var c in policy.Spec.Checks)
        {
            var node = c.Node;
            var decl = CheckTypes.Declaration(c.Type);
            // Some types decide by their own criteria (a static inspection, a trojan scan, a simulation with forbidden actuators).
            if (node["require"] is null && decl?.JudgesItself(node) != true)
                Warn(node, $"check '{c.Id}' has no require block: it measures but no threshold can make it fail");
            if (node["require"] is PolicyMapping req) RequireWarnings(c, decl, req, Warn);
            if (node["samples"] is PolicyScalar s && s.IsNumber && s.AsLong() < MinUsefulSamples)
                Warn(s, $"{s.AsLong()} samples are too few for a meaningful estimate (a 95% interval on a fraction is wider than ±0.18 below {MinUsefulSamples})");

            // Every perturbation set a type declares (ThreatOptions), bound as its check binds it: ε against the
            // declared range of the input it perturbs.
            foreach (var (path, _) in decl?.AllOptions().Where(o => o.Option.Unit == ThreatOptions.RadiusUnit) ?? [])
                if (decl!.Value(node, path).Explicit is PolicyScalar e && ThreatOptions.At(node, path, policy) is { RangeFraction: { } frac } threat
                    && frac < TinyEpsilonFraction)
                    Warn(e, $"ε = {e.Value} is {frac.ToString("0.####%", CultureInfo.InvariantCulture)} of the input range [{threat.Min}, {threat.Max}]: a perturbation this small proves almost nothing");

            if (decl?.Cost?.Invoke(c, policy) is { } cost) BudgetWarning(policy, c, cost, Warn);
            foreach (var (at, message) in decl?.Warnings?.Invoke(c) ?? []) Warn(at, message);
            foreach (var (metric, bound) in c.Require)
                if ((bound.Bound == Estimate.Lower && bound.Min is null) || (bound.Bound == Estimate.Upper && bound.Max is null))
                    warnings.Add(new PolicyError(bound.Location, $"{c.Path}.require.{metric}", $"bound: {bound.Bound.ToString().ToLowerInvariant()} judges the optimistic end of the interval " +
                        $"against a {(bound.Min is null ? "max" : "min")}: the requirement is easier to meet than on the point estimate", IsWarning: true));
        }
        // Data a release is judged on should be the approved data: pinned, and not replaceable by a data override.
        if (release && spec0["datasets"] is PolicyMapping dsNodes)
            foreach (var (name, node) in dsNodes.Entries)
            {
                if (!policy.Spec.Checks.Any(c => c.Dataset == name.Value && c.Enforcement == Enforcement.Blocking)) continue;
                if (node is PolicyMapping m && m["sha256"] is null)
                    Warn(node, $"dataset '{name.Value}' is not pinned (sha256): a data override at check time can swap it for other samples; pin it so only the approved files are judged");
                else if (node is PolicyMapping m2 && m2["allowOverride"] is PolicyScalar ao && ao.AsBool())
                    Warn(ao, $"allowOverride lets a data override at check time replace the pinned dataset '{name.Value}' in a release (each replacement is flagged in the decision)");
            }
        return new LintResult(errors, warnings.OrderBy(w => w.Location.Line).ThenBy(w => w.Location.Column).ToList(), policy);
    }

    /// <summary>What linting against a model adds: the plan's errors (inputs, outputs, datasets), and opsets the engine does not know.</summary>
    private static void ModelFindings(DeploymentPolicy policy, OnnxModel model, PolicyMapping spec, List<PolicyError> errors, Action<PolicyNode, string> warn)
    {
        try { CheckPlan.Create(policy, model); }
        catch (PolicyException e)
        {
            // Check options are bound by both lint and the plan: report each finding once.
            var seen = errors.Select(x => x.ToString()).ToHashSet();
            errors.AddRange(e.Errors.Where(x => seen.Add(x.ToString())));
        }
        if (model.Opsets.TryGetValue("", out var opset) && opset > OperatorRegistry.NewestKnownOpset)
            warn(spec["model"]!, $"model {model.FileName} imports ONNX opset {opset}, newer than the {OperatorRegistry.NewestKnownOpset} this Gate knows: " +
                                 "operators whose behaviour changed in later opsets would be judged by the older versions Gate implements (or refused)");
    }

    private static PolicyNode Where(PolicyMapping spec, string section, string key) =>
        (spec[section] as PolicyMapping)?[key] ?? spec[section] ?? spec;

    private static void RequireWarnings(CheckSpec c, CheckDeclaration? decl, PolicyMapping req, Action<PolicyNode, string> warn)
    {
        MetricRange Range(string metric) => decl?.Metrics.FirstOrDefault(m => m.Name == metric)?.Range ?? MetricRange.Any;
        foreach (var (key, value) in req.Entries)
        {
            // Shorthand `require: { min: x }` bounds the check's primary metric.
            if (value is PolicyScalar shorthand && shorthand.IsNumber)
            {
                string metric = decl?.PrimaryMetric ?? key.Value;
                BoundWarning(metric, Range(metric), key.Value, shorthand, warn);
            }
            else if (value is PolicyMapping bound)
                foreach (var (bk, bv) in bound.Entries)
                    if (bv is PolicyScalar b && b.IsNumber) BoundWarning(key.Value, Range(key.Value), bk.Value, b, warn);
        }
    }

    private static void BoundWarning(string metric, MetricRange range, string side, PolicyScalar value, Action<PolicyNode, string> warn)
    {
        double v = value.AsDouble();
        bool fraction = range == MetricRange.Fraction, nonNegative = range != MetricRange.Any;
        if (side == "min" && nonNegative && v <= 0)
            warn(value, $"min {value.Value} on {metric} is vacuous: {metric} is never below 0, so this requirement always holds");
        if (side == "max" && fraction && v >= 1)
            warn(value, $"max {value.Value} on {metric} is vacuous: {metric} is a fraction and never above 1, so this requirement always holds");
    }

    /// <summary>
    /// The budget must cover every sample's work, by the check type's own cost model (<see cref="CheckDeclaration.Cost"/>,
    /// defaults included): a smaller budget runs out before the last samples are reached.
    /// </summary>
    private static void BudgetWarning(DeploymentPolicy policy, CheckSpec c, BudgetCost cost, Action<PolicyNode, string> warn)
    {
        long? samples = cost.Samples ?? DatasetRows(policy, c.Dataset);
        if (samples is not long n || cost.PerSample <= 0) return;
        long perSample = cost.PerSample * cost.Rounds;
        long needed = n * perSample;
        if (cost.Limit >= needed) return;
        string rounds = cost.Rounds > 1 ? $" × {cost.Rounds} ε points" : "";
        warn(cost.Budget, $"{cost.Budget.Path[(c.Path.Length + 1)..]} {cost.Limit} cannot reach every sample: {n} samples × {cost.PerSample} {cost.Unit} per sample ({cost.PerSampleSource}){rounds} = {needed}; " +
                          $"the budget runs out after about {cost.Limit / perSample} samples and the rest are never attacked");
    }

    /// <summary>Rows in a dataset's inputs file, read from the .npy header; null when it cannot be read (lint does not need it).</summary>
    private static long? DatasetRows(DeploymentPolicy policy, string? dataset)
    {
        if (dataset is null || !policy.Spec.Datasets.TryGetValue(dataset, out var ds) || !File.Exists(ds.InputsPath)) return null;
        try
        {
            var bytes = Npy.ReadBytes(ds.InputsPath);
            var x = Npy.IsNpz(bytes) ? Npy.ParseNpz(bytes, ds.InputsPath).Values.First() : Npy.Parse(bytes, ds.InputsPath);
            return x.Shape is { Length: > 0 } shape ? shape[0] : null;
        }
        catch (GateInputException) { return null; }
    }
}
