namespace Gate.Core.Decision;

/// <summary>A check's work in sample passes through the model: forward only, and forward + input gradient.</summary>
public readonly record struct CheckWork(long Forward, long Gradient)
{
    public static CheckWork operator +(CheckWork a, CheckWork b) => new(a.Forward + b.Forward, a.Gradient + b.Gradient);
}

/// <summary>
/// Bound options that can say, before anything runs, how many sample passes their check makes, from the bound
/// budgets (samples, steps, restarts, detectors) on a dataset of <c>rows</c> samples and a model of <c>classes</c>
/// output classes. The count is the check's own budget, not a measurement: it is the same on every host and shard.
/// </summary>
public interface IEstimatesWork
{
    CheckWork Work(long rows, int classes);

    /// <summary>The check's own wall-time budget on a model of <paramref name="classes"/> classes, or null when it has
    /// none (then the sandbox's timeout is its budget: a check estimated past it could not finish in any case).</summary>
    TimeSpan? WallTimeBudget(int classes) => null;

    /// <summary>Work of the check that is not model passes and so is not in the estimate, in words (null: none worth saying).</summary>
    string? NotEstimated => null;
}

/// <summary>What one sample pass costs on the backend that will run it, measured (or, in tests, given).</summary>
/// <param name="Source">How it was obtained, e.g. "measured: 1 batch of 32 on builtin".</param>
public sealed record PassCost(double ForwardSecondsPerSample, double GradientSecondsPerSample, string Source);

/// <summary>One check's estimated cost: its work times the measured pass cost, against its wall-time budget.</summary>
public sealed record CheckEstimate(string Id, string Type, CheckWork Work, double Seconds)
{
    /// <summary>The check's own wall-time budget, else the sandbox's timeout, in seconds (<see cref="IEstimatesWork.WallTimeBudget"/>).</summary>
    public double? BudgetSeconds { get; init; }
    /// <summary>What the budget is: "budget.wallTime" or "sandbox.limits.timeout".</summary>
    public string? BudgetSource { get; init; }
    /// <summary>The defaults <c>Plan.BudgetScaling</c> lowered (or whose wall time it raised) to fit the sandbox; the estimate is of the scaled check.</summary>
    public IReadOnlyList<ScaledDefault> Scaled { get; init; } = [];
    /// <summary>What the estimate leaves out (<see cref="IEstimatesWork.NotEstimated"/>), said with it.</summary>
    public string? NotEstimated { get; init; }
    /// <summary>Why the check cannot fit even at the floors of its defaults (<c>Plan.BudgetScaling</c>): INCONCLUSIVE without running.</summary>
    public string? CannotFit { get; init; }

    /// <summary>
    /// How far past its budget a check must be estimated to be refused before it runs. The estimate is an upper bound
    /// (every step of every search counted, early stops not; the pass measured on one batch of at most 8 where the
    /// checks run larger batches, classes in parallel), so a check estimated a little over may still finish: it runs,
    /// and its line says it may not fit. Measured: on the digits release policy under a load of ~30 on 2 cores the
    /// estimate was 7.5× (PGD + Square) and 8.3× (trojan scan) its budget while both checks finish well within it,
    /// so only an estimate beyond 20× is taken as "cannot finish".
    /// </summary>
    public const double RefuseFactor = 20;

    /// <summary>The estimate exceeds the budget by more than <see cref="RefuseFactor"/>: the check is INCONCLUSIVE before it runs (<see cref="OverBudgetReason"/>).</summary>
    public bool OverBudget => CannotFit is not null || BudgetSeconds is { } b && Seconds > b * RefuseFactor;

    /// <summary>The estimate exceeds the budget, but not by enough to refuse: the check runs and may run out of budget.</summary>
    public bool MayExceed => BudgetSeconds is { } b && Seconds > b && !OverBudget;

    /// <summary>Why the check did not run, e.g. "estimated 412 s > budget 300 s (budget.wallTime) …".</summary>
    public string? OverBudgetReason => CannotFit ?? (OverBudget
        ? $"estimated {Seconds:0.#} s > budget {BudgetSeconds:0.#} s ({BudgetSource}), more than {RefuseFactor:0.#}× over: {Work.Forward:N0} forward and {Work.Gradient:N0} gradient sample passes at the measured pass cost; " +
          "not run, so the budget was not spent on a search that could not finish — lower its samples or steps, or raise the budget"
        : null);

    /// <summary>The estimate in one line for a person.</summary>
    public string Line(string source) =>
        (Scaled.Count > 0 ? $"defaults scaled to fit the sandbox: {string.Join(", ", Scaled.Select(d => $"{d.Option} {d.Value} (default {d.DeclaredDefault})"))}; " : "") +
        (CannotFit is not null ? $"{CannotFit}; " : "") +
        $"~{PlanEstimate.Seconds(Seconds)} ({Work.Forward:N0} forward and {Work.Gradient:N0} gradient sample passes; {source}" +
        (NotEstimated is null ? ")" : $"; not counted: {NotEstimated})") +
        (BudgetSeconds is { } b ? $" against a budget of {PlanEstimate.Seconds(b)} ({BudgetSource})" + (OverBudget ? ": over budget, INCONCLUSIVE without running" : MayExceed ? ": may not fit its budget (runs; INCONCLUSIVE if the budget runs out)" : "") : "");
}

/// <summary>
/// The plan's estimate against the sandbox's wall time: per check, in total, whether it fits, and when it does not,
/// what to change (a record of an estimate, never a measured result: it stays out of what shards must reproduce).
/// </summary>
public sealed record PlanEstimate(PassCost Cost, IReadOnlyList<CheckEstimate> Checks, double TotalSeconds, double WallTimeSeconds)
{
    /// <summary>The share of the wall time the estimate may use: the rest is the sandbox's start, loading and noise.</summary>
    public const double Headroom = 0.8;

    /// <summary>
    /// The share of the wall time the checks' own time budgets may add up to when they are raised to fit the sandbox:
    /// more than <see cref="Headroom"/>, so a check may overrun its estimate, but not all of it — the runner's start,
    /// the pass-cost measurement and work outside the estimates (a probe's fitting, ~75 s on ResNet-18) need the rest.
    /// A check that used a share of the whole timeout ran the sandbox into its deadline, and a killed sandbox returns
    /// no check's result.
    /// </summary>
    public const double ShareOfWallTime = 0.9;

    public bool Fits => TotalSeconds <= WallTimeSeconds * Headroom;

    /// <summary>When the estimate does not fit: the budgets to scale and by how much, the costliest check first.</summary>
    public string? Advice => Fits ? null
        : $"the checks need about {Seconds(TotalSeconds)} but the sandbox's wall time is {Seconds(WallTimeSeconds)}: scale the budgets " +
          $"(samples, steps, restarts, classes) by about {WallTimeSeconds * Headroom / TotalSeconds:0.##}, starting with " +
          string.Join(", ", Checks.OrderByDescending(c => c.Seconds).Where(c => c.Seconds > 0).Take(2).Select(c => $"'{c.Id}' ({Seconds(c.Seconds)})")) +
          ", or raise sandbox.limits.timeout";

    /// <summary>The estimate for a person: one line per check, then the total against the wall time.</summary>
    public IEnumerable<string> Lines()
    {
        foreach (var c in Checks)
            yield return $"{c.Id} ({c.Type}): {c.Line(Cost.Source)}";
        yield return $"total ~{Seconds(TotalSeconds)} of {Seconds(WallTimeSeconds)} wall time ({Cost.Source}): " + (Fits ? "fits" : $"does not fit — {Advice}");
    }

    internal static string Seconds(double s) => s < 120 ? $"{s:0.#} s" : s < 7200 ? $"{s / 60:0.#} min" : $"{s / 3600:0.#} h";
}
