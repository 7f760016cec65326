using Gate.Core.Decision;
using Gate.Core.Policy;
using static Gate.Core.Policy.ReviewWords;

namespace Gate.Core.Checks.Adversarial;

/// <summary>
/// The <c>type: adversarial</c> options, metrics and meaning, declared once. The threat block is the same
/// perturbation set (<see cref="ThreatOptions"/>) that formal checks prove over.
/// </summary>
public static class AdversarialDeclaration
{
    public static readonly CheckDeclaration Value = new()
    {
        Type = "adversarial", Rank = 30,
        Purpose = "Searches, within an explicit perturbation budget, for small input changes that flip the model's decision; " +
                  "reports robust accuracy with a confidence interval, saves every confirmed counterexample, and states exactly what was searched.",
        Why = "A model whose answer flips under changes a person would not notice can be steered by anyone who controls its input.",
        NotCovered = "No blocking adversarial search: robustness to small input perturbations is not tested.",
        UsesDataset = true, NeedsDataset = true, NeedsLabels = true, ClassLabels = true,
        Units = new("samples", "One attacked sample (the first N or the listed indices, in order): every method at every ε of the sweep, " +
            "on random streams keyed by the policy seed and the sample's index. A shard gets its share of the query budget in proportion to its samples; " +
            "the wall-time budget applies to each shard."),
        Options =
        [
            Opt.Samples("Samples to attack (the first N of the dataset).") with { ScaledWith = BudgetRule.RuleWithFloor(AdversarialOptions.SamplesFloorText) },
            Opt.Names("indices", "The dataset rows to attack, instead of the first N.") with
                { Type = new() { ["type"] = "array", ["minItems"] = 1, ["items"] = new System.Text.Json.Nodes.JsonObject { ["type"] = "integer", ["minimum"] = 0, ["maximum"] = int.MaxValue } } },
            ThreatOptions.Threat("threat", "The perturbation set the adversary may search: norm, radius ε and (optionally) which input.", withInput: true) with { Required = true },
            Opt.Mapping("goal", "What counts as a successful attack: any change of class (untargeted), or reaching targetClass.",
                Opt.Enum("type", "untargeted or targeted.", "untargeted", "targeted"),
                Opt.Int("targetClass", "The class a targeted adversary must reach.", min: 0)),
            Opt.ListOf("search", "Attack methods run in turn on every sample, each with its per-sample budget.", "method",
                Opt.Enum("method", "Attack method.", AttackMethods.Names.ToArray()) with { Required = true },
                Opt.Int("steps", "Gradient steps per run (pgd default 40, apgd default 100).") with { Strength = Strength.HigherIsStronger, Unit = "steps", ScaledWith = BudgetRule.RuleWithFloor("20") },
                Opt.Int("restarts", "Random restarts (0: one run from the clean input).", min: 0) with { Strength = Strength.HigherIsStronger, Unit = "runs" },
                Opt.Number("stepSize", "Step size α (default 5ε/steps for pgd).", exclusiveMin: 0) with { Strength = Strength.Neutral },
                Opt.Int("queries", "Model queries per sample for score-based methods (square default 1000).") with { Strength = Strength.HigherIsStronger, Unit = "queries", ScaledWith = BudgetRule.RuleWithFloor("200") },
                Opt.Number("pInit", "Square attack's initial window share (default 0.3).", exclusiveMin: 0, max: 1) with { Strength = Strength.Neutral })
                with { Required = true, Type = new() { ["minItems"] = 1 } },
            Opt.Mapping("budget", "The check's global cap; when it runs out the undecided samples make the check INCONCLUSIVE, never a pass.",
                Opt.Int("queries", "Most model queries in all.") with { Type = new() { ["type"] = "integer", ["minimum"] = 1 }, Strength = Strength.HigherIsStronger, Unit = "queries" },
                Opt.Duration("wallTime", "Most wall-clock time.")),
            Opt.Number("confidence", "Confidence level of the reported intervals; with it, a requirement judges the pessimistic end of the interval unless it names a bound.",
                exclusiveMin: 0, exclusiveMax: 1) with { Strength = Strength.HigherIsStronger },
            new OptionDecl("sweep", "Further ε values searched for the robustness curve (the plot in report.html); they do not change the verdict.")
                { Type = new() { ["type"] = "array", ["minItems"] = 1, ["items"] = new System.Text.Json.Nodes.JsonObject { ["type"] = "number", ["exclusiveMinimum"] = 0 } }, Strength = Strength.Neutral },
        ],
        Metrics =
        [
            new("robustAccuracy", "robust accuracy (fraction of attacked inputs still classified correctly)", MetricRange.Fraction) { Estimated = true },
            new("attackSuccessRate", "attack success rate (fraction of inputs an attack flipped)", MetricRange.Fraction) { Estimated = true },
            new("counterexamples", "number of confirmed counterexamples", MetricRange.NonNegative),
        ],
        RequireMandatory = true,
        Cost = Cost,
        Warnings = spec => ((spec.Node["search"] as PolicySequence)?.Items ?? []).OfType<PolicyMapping>()
            .Select(m => m["restarts"]).OfType<PolicyScalar>().Where(r => r.IsNumber && r.AsLong() == 0)
            .Select(r => ((PolicyNode)r, "zero restarts: a single start of a gradient attack often stalls in a local optimum, so attacks that exist are missed")),
        Review = Review,
    };

    /// <summary>
    /// The search's real cost, from the methods' own cost model (<see cref="IAttackMethod.QueriesPerSample"/>, defaults
    /// included): every sample is searched by every method at every ε point of the sweep.
    /// </summary>
    private static BudgetCost? Cost(CheckSpec spec, DeploymentPolicy policy)
    {
        if ((spec.Node["budget"] as PolicyMapping)?["queries"] is not PolicyScalar { IsNumber: true } budget) return null;
        AdversarialOptions o;
        try { o = AdversarialOptions.Bind(spec, policy); }
        catch (PolicyException) { return null; } // lint reports the binding errors themselves
        long perSample = o.Search.Sum(m => AttackMethods.Find(m.Method)!.QueriesPerSample(m));
        int rounds = o.Sweep.Append(o.Threat.Epsilon).Distinct().Count();
        return new BudgetCost(budget, budget.AsLong(), perSample, rounds, o.Indices?.Length ?? o.Samples, "queries", "the search list");
    }

    /// <summary>Review: what the search budget buys within the bound threat set, the goal, the cap, and what a pass means.</summary>
    private static IEnumerable<string> Review(CheckSpec c, DeploymentPolicy p)
    {
        var n = c.Node;
        var threat = ThreatOptions.At(n, "threat.epsilon", p);
        var methods = (n["search"] as PolicySequence)?.Items.OfType<PolicyMapping>().Select(MethodWords).ToList() ?? [];
        yield return $"What the budget buys: {Data(p, c, Value, "test inputs")}, each attacked by {string.Join(", then ", methods)}, within {threat?.Words() ?? "the declared threat"}.";
        var goal = n["goal"] as PolicyMapping;
        yield return Raw(goal, "type") == "targeted" ? $"Goal: targeted, pushing inputs to class {Raw(goal, "targetClass")}." : "Goal: untargeted (any change of the predicted class counts).";
        if (n["budget"] is PolicyMapping b)
            yield return $"Budget cap: {(Int(b, "queries") is long q ? $"{N(q)} model queries" : "no query cap")}{(Raw(b, "wallTime") is { } wt ? $", {wt} wall time" : "")}; when it runs out the check is INCONCLUSIVE, never a pass.";
        foreach (var line in Confidence(n)) yield return line;
        yield return "Search finds attacks but cannot prove there are none: a pass means no attack was found within this budget.";
    }

    private static string MethodWords(PolicyMapping m)
    {
        string method = Raw(m, "method") ?? "?";
        long? steps = Int(m, "steps"), restarts = Int(m, "restarts"), queries = Int(m, "queries");
        return method switch
        {
            "pgd" or "apgd" => $"{(method == "pgd" ? "PGD" : "APGD")} {(steps is long s ? $"{N(s)} steps" : "default steps")}{restarts switch { 0 => " from a single start (no restarts)", long r => $" × {N(r)} restarts", null => "" }}",
            "square" => $"Square attack {(queries is long q ? $"{N(q)} queries" : "default queries")}",
            _ => method,
        };
    }
}
