using System.Diagnostics;
using Gate.Core.Checks;
using Gate.Core.Decision;
using Gate.Core.Engine;
using Gate.Core.Evidence;
using Gate.Core.Runtime;
using Gate.Core.Tensors;

namespace Gate.Core.Plan;

/// <summary>Estimates a plan's cost from its checks' work (<see cref="IEstimatesWork"/>) and a measured pass cost.</summary>
public static class CostEstimator
{
    /// <param name="rows">The samples of each dataset, by name (<see cref="CheckPlan.Datasets"/>).</param>
    /// <param name="classes">The model's output classes (the last axis of its primary output).</param>
    /// <param name="parameters">The model's parameter count: from <see cref="BudgetRule.MinParameters"/> the defaulted budgets are scaled to fit (whole jobs only).</param>
    public static PlanEstimate Estimate(IEnumerable<PlannedCheck> checks, IReadOnlyDictionary<string, long> rows, int classes, PassCost cost, TimeSpan wallTime,
        long parameters = 0, bool whole = true) =>
        Estimate(Scale(checks.ToList(), rows, classes, cost, wallTime, parameters, whole), rows, classes, cost, wallTime);

    private static IReadOnlyList<BudgetScaling.Scaled> Scale(IReadOnlyList<PlannedCheck> checks, IReadOnlyDictionary<string, long> rows, int classes,
        PassCost cost, TimeSpan wallTime, long parameters, bool whole) =>
        whole ? BudgetScaling.Apply(checks, rows, classes, cost, wallTime, parameters) : checks.Select(c => new BudgetScaling.Scaled(c, [], null)).ToList();

    private static PlanEstimate Estimate(IReadOnlyList<BudgetScaling.Scaled> scaled, IReadOnlyDictionary<string, long> rows, int classes, PassCost cost, TimeSpan wallTime)
    {
        var list = new List<CheckEstimate>();
        foreach (var (c, defaults, cannotFit) in scaled)
        {
            var w = c.Options as IEstimatesWork;
            var work = w?.Work(c.Spec.Dataset is { } d && rows.TryGetValue(d, out var n) ? n : 0, classes) ?? default;
            // No budget of its own: the sandbox's wall time, when known (a plan without it judges nothing).
            var own = w?.WallTimeBudget(classes);
            var budget = own ?? (wallTime > TimeSpan.Zero ? (TimeSpan?)wallTime : null);
            list.Add(new CheckEstimate(c.Spec.Id, c.Spec.Type, work, work.Forward * cost.ForwardSecondsPerSample + work.Gradient * cost.GradientSecondsPerSample)
            {
                // Only checks whose work is estimated are judged against a budget: the rest say nothing either way.
                BudgetSeconds = w is null ? null : budget?.TotalSeconds,
                BudgetSource = w is null || budget is null ? null : own is null ? "sandbox.limits.timeout" : "budget.wallTime",
                Scaled = defaults, CannotFit = cannotFit, NotEstimated = w?.NotEstimated,
            });
        }
        // A check refused up front does not run: it takes none of the wall time.
        return new PlanEstimate(cost, list, list.Where(c => c.CannotFit is null).Sum(c => c.Seconds), wallTime.TotalSeconds);
    }

    /// <summary>The plan's estimate for <paramref name="checks"/> on the sandbox's measured pass cost, against its wall time.</summary>
    public static PlanEstimate Estimate(CheckPlan plan, IEnumerable<PlannedCheck> checks, PassCost cost, bool whole = true) =>
        Estimate(checks, plan.Datasets.ToDictionary(d => d.Name, d => (long)d.Samples, StringComparer.Ordinal), Classes(plan.Model, plan.Policy),
            cost, plan.Policy.Spec.Sandbox.Limits.Timeout, plan.Model.Graph.ParameterCount, whole);

    /// <summary>
    /// Inside the sandbox, before any check runs: the defaulted budgets scaled to fit the sandbox (<see cref="BudgetScaling"/>,
    /// whole jobs only), the estimate on the measured pass cost, told to the user through <paramref name="progress"/>
    /// (one <see cref="ProgressPhase.Estimated"/> update per check, with what was scaled), and the checks that cannot
    /// fit or are estimated past their wall-time budget marked not to run (INCONCLUSIVE with the reason, the budget
    /// unspent). In a shard the work is a share of the check's, so the estimate is told but nothing is scaled or marked.
    /// </summary>
    public static (IReadOnlyList<PlannedCheck> Checks, PlanEstimate Estimate) BeforeRun(CheckContext ctx, IReadOnlyList<PlannedCheck> checks, PassCost cost,
        TimeSpan wallTime, bool whole)
    {
        var rows = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var d in checks.Where(c => c.Runnable && c.Options is IEstimatesWork).Select(c => c.Spec.Dataset).OfType<string>().Distinct())
            rows[d] = ctx.LoadDataset(d).Count;
        int classes = Classes(ctx.Model, ctx.Policy);
        var scaled = Scale(checks, rows, classes, cost, wallTime, ctx.Model.Graph.ParameterCount, whole);
        checks = scaled.Select(s => s.Defaults.Count > 0 ? s.Check with { ScaledDefaults = s.Defaults } : s.Check).ToList();
        var estimate = Estimate(scaled, rows, classes, cost, wallTime);
        var byId = estimate.Checks.ToDictionary(e => e.Id, StringComparer.Ordinal);
        foreach (var c in checks.Where(c => (c.Runnable || byId[c.Spec.Id].CannotFit is not null) && c.Options is IEstimatesWork))
            ctx.Progress.Report(ProgressUpdate.Estimated(c.Spec.Id, byId[c.Spec.Id].Line(cost.Source), byId[c.Spec.Id].Seconds, byId[c.Spec.Id].BudgetSeconds ?? 0));
        if (!whole) return (checks, estimate);
        return (checks.Select(c => c.Runnable && byId[c.Spec.Id].OverBudgetReason is { } why ? c with { NotRunReason = why } : c).ToList(), estimate);
    }

    /// <summary>The model's output classes: the last axis of its primary output when the graph declares it, else 10.</summary>
    public static int Classes(Gate.Core.Model.OnnxModel model, Gate.Core.Policy.DeploymentPolicy policy)
    {
        var name = policy.Spec.Model.Output ?? model.Graph.Outputs[0].Name;
        var shape = model.Graph.Outputs.FirstOrDefault(o => o.Name == name)?.Shape;
        return shape is { Length: > 0 } && shape[^1].Value is long k and > 0 and < int.MaxValue ? (int)k : 10;
    }

    /// <summary>A pass cost from the sandbox (untrusted): used only when its numbers are finite and non-negative.</summary>
    public static PassCost? Accept(PassCost? claimed) =>
        claimed is { } c && double.IsFinite(c.ForwardSecondsPerSample) && double.IsFinite(c.GradientSecondsPerSample)
            && c.ForwardSecondsPerSample >= 0 && c.GradientSecondsPerSample >= 0
            ? c with { Source = new string((c.Source ?? "").Take(200).Select(ch => char.IsControl(ch) ? '?' : ch).ToArray()) } : null;

    /// <summary>
    /// Measures the pass cost in a sandbox before its checks run: one small batch (at most 8 samples) of the first
    /// dataset a work-estimating check reads. Null when there is nothing to measure or the pass fails (the checks
    /// then report their own errors); never a reason for the job to fail.
    /// </summary>
    public static PassCost? TryMeasure(CheckContext ctx, IEnumerable<PlannedCheck> checks)
    {
        try
        {
            // Only where a check takes gradients anyway: measuring must not bring up a white-box engine (and change
            // what the decision records about it) for a plan that would never use one.
            var dataset = checks.FirstOrDefault(c => c.Options is IEstimatesWork w && c.Spec.Dataset is not null && w.Work(1, 1).Gradient > 0)?.Spec.Dataset;
            if (dataset is null) return null;
            var inputs = ctx.LoadDataset(dataset).Inputs;
            if (inputs.Shape[0] == 0) return null;
            int n = Math.Min(FixedBatch.BatchFor(ctx.Model, WhiteBoxEngines.MeasuredBatch), inputs.Shape[0]);
            string input = ctx.Engine.InputNames.Contains(ctx.PrimaryInput.Name) ? ctx.PrimaryInput.Name : ctx.Engine.InputNames[0];
            return Measure(ctx.Engine, input, ctx.PrimaryOutput, inputs.SliceBatch(0, n), ctx.EngineChoice?.Engine ?? "builtin");
        }
        catch (Exception e) when (e is not OperationCanceledException) { return null; }
    }

    /// <summary>
    /// Times a forward and a forward + input-gradient pass of <paramref name="batch"/> on the white-box engine, three
    /// times after a warm-up pass, and returns the median cost per sample. Runs the model: call it only inside the sandbox.
    /// </summary>
    public static PassCost Measure(IWhiteBoxEngine engine, string input, string output, Tensor batch, string engineName)
    {
        int n = Math.Max(1, batch.Shape[0]);
        var feeds = new Dictionary<string, Tensor> { [input] = batch };
        var warm = engine.Forward(feeds, [output]); // warm-up: first-call allocation and JIT are not the steady cost
        var seed = new Dictionary<string, Tensor> { [output] = Tensor.FromFloats(warm[output].Shape, Enumerable.Repeat(1f, warm[output].Length).ToArray()) };
        engine.Backward(engine.Forward(feeds, [output], recordForBackward: true), seed, [input]); // and the backward's first call
        // The median of three timings: on a shared machine one pass can take 2–3× another a minute later (ResNet-18
        // under a load of ~15 on 2 cores: 18.5 and 51 ms per sample-gradient), and the budgets are now scaled on it.
        var forwards = new double[3]; var gradients = new double[3];
        for (int i = 0; i < 3; i++)
        {
            var sw = Stopwatch.StartNew();
            engine.Forward(feeds, [output]);
            forwards[i] = sw.Elapsed.TotalSeconds / n;
            sw.Restart();
            engine.Backward(engine.Forward(feeds, [output], recordForBackward: true), seed, [input]);
            gradients[i] = sw.Elapsed.TotalSeconds / n;
        }
        Array.Sort(forwards); Array.Sort(gradients);
        return new PassCost(forwards[1], gradients[1], $"measured: median of 3 batches of {n} on {engineName}");
    }

}
