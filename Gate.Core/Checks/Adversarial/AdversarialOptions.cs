using Gate.Core.Decision;
using Gate.Core.Policy;

namespace Gate.Core.Checks.Adversarial;

/// <summary>
/// A bound <c>type: adversarial</c> check: threat model (the shared <see cref="ThreatModel"/>, with the declared range
/// of the input it perturbs), goal, samples, methods, budgets, statistics.
/// </summary>
public sealed record AdversarialOptions(
    string Dataset, int? Samples, long[]? Indices, string? Input,
    ThreatModel Threat, AttackGoal Goal,
    IReadOnlyList<MethodSpec> Search, long? QueryBudget, TimeSpan? WallTime,
    double? Confidence, double[] Sweep) : IScalesDefaults
{
    /// <summary>Samples attacked when the policy names neither samples nor indices: down to this floor (a robust accuracy on 100 samples is ±10% at 95%).</summary>
    public const int SamplesFloor = 100;
    public const string SamplesFloorText = "min(100, the dataset's samples)";

    /// <summary>
    /// Samples first (every sample attacked costs its whole search), down to <see cref="SamplesFloor"/>; then each
    /// method's defaulted steps or queries by the factor left, down to the method's floor (<see cref="IAttackMethod.DefaultBudget"/>).
    /// </summary>
    public (object Options, IReadOnlyList<ScaledDefault> Scaled) ScaleDefaults(double factor, long rows, int classes)
    {
        if (factor >= 1) return (this, []);
        var scaled = new List<ScaledDefault>();
        double left = factor;
        int? samples = Samples;
        if (Samples is null && Indices is null && rows > 0)
        {
            var (v, l) = BudgetRule.Lower(rows, SamplesFloor, factor);
            left = l;
            if (v != rows) { samples = (int)v; scaled.Add(new("samples", $"{v}", $"every sample ({rows})", BudgetRule.RuleWithFloor(SamplesFloorText))); }
        }
        var search = Search.Select((m, i) =>
        {
            if (AttackMethods.Find(m.Method)?.DefaultBudget is not { } knob) return m;
            int? given = knob.Key == "steps" ? m.Steps : m.Queries;
            if (given is not null) return m;
            var (v, _) = BudgetRule.Lower(knob.Default, knob.Floor, left);
            if (v == knob.Default) return m;
            scaled.Add(new($"search[{i}].{knob.Key}", $"{v}", $"{knob.Default}", BudgetRule.RuleWithFloor($"{knob.Floor} for {m.Method}")));
            return knob.Key == "steps" ? m with { Steps = (int)v } : m with { Queries = (int)v };
        }).ToList();
        return (this with { Samples = samples, Search = search }, scaled);
    }

    /// <summary>
    /// Every attacked sample runs every method's queries (its own cost model) at every ε of the sweep; counted as
    /// gradient passes, an upper bound for the black-box methods, whose queries are forward passes.
    /// </summary>
    public Gate.Core.Decision.CheckWork Work(long rows, int classes)
    {
        long samples = Indices?.Length ?? Math.Min(Samples ?? rows, rows);
        long perSample = Search.Sum(m => AttackMethods.Find(m.Method)?.QueriesPerSample(m) ?? 0);
        int rounds = Sweep.Append(Threat.Epsilon).Distinct().Count();
        // The query budget, when set, caps the whole search (QueryBudget): no more passes than it allows.
        return new(samples, Math.Min(samples * perSample * rounds, QueryBudget ?? long.MaxValue));
    }


    /// <summary>The policy's <c>budget.wallTime</c>, if any.</summary>
    public TimeSpan? WallTimeBudget(int classes) => WallTime;

    public static AdversarialOptions Bind(CheckSpec spec, DeploymentPolicy policy)
    {
        var node = spec.Node;
        var errors = new List<PolicyError>();
        var threat = (PolicyMapping)node["threat"]!;
        string? input = Str(threat["input"]);
        if (input is not null && policy.Spec.Model.Inputs.Count > 0 && policy.Spec.Model.Inputs.All(i => i.Name != input))
            errors.Add(new PolicyError(threat["input"]!.Location, threat["input"]!.Path,
                $"'{input}' is not declared in spec.model.inputs (declared: {string.Join(", ", policy.Spec.Model.Inputs.Select(i => i.Name))})"));

        var goal = AttackGoal.Untargeted;
        if (node["goal"] is PolicyMapping g)
        {
            bool targeted = Str(g["type"]) == "targeted";
            var target = g["targetClass"] as PolicyScalar;
            if (targeted && target is null) errors.Add(new PolicyError(g.Location, g.Path, "a targeted goal needs targetClass (the class the adversary must reach)"));
            else if (!targeted && target is not null) errors.Add(new PolicyError(target.Location, target.Path, "targetClass applies only to goal type: targeted"));
            else if (targeted) goal = new AttackGoal((int)target!.AsLong());
        }

        var search = new List<MethodSpec>();
        foreach (var item in ((PolicySequence)node["search"]!).Items.Cast<PolicyMapping>())
        {
            var m = new MethodSpec(Str(item["method"])!, Int(item["steps"]), Int(item["restarts"]), Dbl(item["stepSize"]),
                Int(item["queries"]), Dbl(item["pInit"]), item);
            var impl = AttackMethods.Find(m.Method);
            if (impl is null) { errors.Add(new PolicyError(item.Location, item.Path, $"unknown method '{m.Method}' (known: {string.Join(", ", AttackMethods.Names)})")); continue; }
            if (impl.WhiteBox && m.Queries is not null)
                errors.Add(new PolicyError(item["queries"]!.Location, item["queries"]!.Path, $"{m.Method} is budgeted by steps × restarts; 'queries' applies to score-based methods (square)"));
            if (impl.WhiteBox && m.PInit is not null)
                errors.Add(new PolicyError(item["pInit"]!.Location, item["pInit"]!.Path, $"pInit applies to square, not {m.Method}"));
            try { impl.Validate(m); } catch (PolicyException e) { errors.AddRange(e.Errors); }
            search.Add(m);
        }

        long? queries = null; TimeSpan? wall = null;
        if (node["budget"] is PolicyMapping b)
        {
            if (b["queries"] is PolicyScalar q) queries = q.AsLong();
            if (b["wallTime"] is PolicyScalar wt)
                try { wall = PolicyLoader.ParseDuration(wt); } catch (PolicyException e) { errors.AddRange(e.Errors); }
        }
        long[]? indices = node["indices"] is PolicySequence seq ? seq.Items.Select(i => ((PolicyScalar)i).AsLong()).ToArray() : null;
        if (indices is not null && node["samples"] is { } both)
            errors.Add(new PolicyError(both.Location, both.Path, "give either samples (the first N) or indices, not both"));
        var sweep = node["sweep"] is PolicySequence sw ? sw.Items.Select(i => ((PolicyScalar)i).AsDouble()).ToArray() : [];
        foreach (var key in spec.Require.Keys)
            if (key is not ("robustAccuracy" or "attackSuccessRate" or "counterexamples"))
                errors.Add(new PolicyError(spec.Require[key].Location, spec.Path + ".require", $"adversarial checks measure robustAccuracy, attackSuccessRate and counterexamples, not '{key}'"));
        if (errors.Count > 0) throw new PolicyException(errors);
        return new AdversarialOptions(spec.Dataset!, Int(node["samples"]), indices, input, ThreatOptions.Bind(threat, policy), goal, search, queries, wall, Dbl(node["confidence"]), sweep);
    }

    private static string? Str(PolicyNode? n) => (n as PolicyScalar)?.Value;
    private static int? Int(PolicyNode? n) => n is PolicyScalar s ? (int)Math.Min(s.AsLong(), int.MaxValue) : null;
    private static double? Dbl(PolicyNode? n) => n is PolicyScalar s ? s.AsDouble() : null;
}
