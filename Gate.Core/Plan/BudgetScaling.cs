using Gate.Core.Decision;

namespace Gate.Core.Plan;

/// <summary>
/// Default budgets that scale with the model (issue #17): on a large model the declared defaults (PGD's 40 steps on
/// every sample, the trojan scan's 300 steps per class and detector) can need hours, so a release policy that names
/// only its thresholds would never decide. Before the checks run, with the measured pass cost, the defaulted knobs of
/// every check are lowered by one factor so that the estimate fits <see cref="PlanEstimate.Headroom"/> of the
/// sandbox's timeout; a check that cannot fit even at its floors is INCONCLUSIVE without running (never APPROVE).
/// A check's defaulted own wall time is raised to its share of the sandbox's time. Whole jobs only: a shard runs
/// the budgets as bound (its estimate is only printed). The same function runs in the sandbox (which runs the
/// scaled checks) and on the host (which records the estimate), so both say the same.
/// </summary>
public static class BudgetScaling
{
    /// <summary>What the scaling did to one check.</summary>
    public sealed record Scaled(PlannedCheck Check, IReadOnlyList<ScaledDefault> Defaults, string? CannotFit);

    /// <summary>
    /// The checks with their defaults scaled to fit, by the largest factor f ≤ 1 at which the total estimate fits
    /// <see cref="PlanEstimate.Headroom"/> × <paramref name="wallTime"/> and every check with a budget of its own set
    /// by the policy fits that budget. A scalable check whose estimate at its floors alone exceeds what it may use is
    /// refused (<see cref="Scaled.CannotFit"/>); if the floors together still do not fit, the costliest is refused
    /// until they do. Unchanged when the model is small, the wall time unknown, or everything fits as declared.
    /// </summary>
    public static IReadOnlyList<Scaled> Apply(IReadOnlyList<PlannedCheck> checks, IReadOnlyDictionary<string, long> rows, int classes,
        PassCost cost, TimeSpan wallTime, long parameters)
    {
        var unchanged = checks.Select(c => new Scaled(c, [], null)).ToList();
        if (parameters < BudgetRule.MinParameters || wallTime <= TimeSpan.Zero) return unchanged;
        double limit = wallTime.TotalSeconds * PlanEstimate.Headroom;
        long Rows(PlannedCheck c) => c.Spec.Dataset is { } d && rows.TryGetValue(d, out var n) ? n : 0;
        double Seconds(object? options, PlannedCheck c) => options is IEstimatesWork w
            ? w.Work(Rows(c), classes) is var k ? k.Forward * cost.ForwardSecondsPerSample + k.Gradient * cost.GradientSecondsPerSample : 0 : 0;
        // Own budgets the policy set bind; a defaulted one gives way to the check's share of the sandbox (below).
        double? Own(PlannedCheck c) => c.Options is IScalesDefaults s && s.WithWallTimeShare(wallTime, classes) is not null ? null
            : (c.Options as IEstimatesWork)?.WallTimeBudget(classes)?.TotalSeconds * PlanEstimate.Headroom;
        bool Runs(PlannedCheck c) => c.Runnable && c.Options is IEstimatesWork;

        var scalable = checks.Where(c => Runs(c) && c.Options is IScalesDefaults).ToList();
        (object Options, IReadOnlyList<ScaledDefault> Scaled) At(PlannedCheck c, double f) => ((IScalesDefaults)c.Options!).ScaleDefaults(f, Rows(c), classes);
        bool Fits(PlannedCheck c, double seconds) => seconds <= Math.Min(limit, Own(c) ?? double.PositiveInfinity);
        if (checks.Where(Runs).Sum(c => Seconds(c.Options, c)) <= limit && checks.Where(Runs).All(c => Fits(c, Seconds(c.Options, c))))
            return unchanged;

        // Refused: alone at its floors it exceeds what it may use; then, while the floors together do not fit, the costliest.
        var refused = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var c in scalable)
            if (Seconds(At(c, 0).Options, c) is var s0 && !Fits(c, s0))
                refused[c.Spec.Id] = Refusal(s0, Math.Min(limit, Own(c) ?? double.PositiveInfinity), "alone");
        var fixedSeconds = checks.Where(c => Runs(c) && c.Options is not IScalesDefaults).Sum(c => Seconds(c.Options, c));
        double Total(double f) => fixedSeconds + scalable.Where(c => !refused.ContainsKey(c.Spec.Id)).Sum(c => Seconds(At(c, f).Options, c));
        while (Total(0) > limit && scalable.Where(c => !refused.ContainsKey(c.Spec.Id)).MaxBy(c => Seconds(At(c, 0).Options, c)) is { } worst)
            refused[worst.Spec.Id] = Refusal(Seconds(At(worst, 0).Options, worst), limit - (Total(0) - Seconds(At(worst, 0).Options, worst)), "beside the other checks");

        bool Ok(double f) => Total(f) <= limit && scalable.Where(c => !refused.ContainsKey(c.Spec.Id)).All(c => Fits(c, Seconds(At(c, f).Options, c)));
        double lo = 0, hi = 1;
        if (Ok(1)) lo = 1;
        else for (int i = 0; i < 40; i++) { double mid = (lo + hi) / 2; if (Ok(mid)) lo = mid; else hi = mid; }

        var scaled = checks.ToDictionary(c => c.Spec.Id, c => (Options: c.Options, Defaults: (IReadOnlyList<ScaledDefault>)[]), StringComparer.Ordinal);
        foreach (var c in scalable.Where(c => !refused.ContainsKey(c.Spec.Id)))
            scaled[c.Spec.Id] = At(c, lo);
        // Each check's share of ShareOfWallTime of the timeout (more than the 80% the estimates fit: a check may
        // overrun its estimate), in proportion to its scaled estimate: a defaulted wall time rises to it.
        double total = checks.Where(c => Runs(c) && !refused.ContainsKey(c.Spec.Id)).Sum(c => Seconds(scaled[c.Spec.Id].Options, c));
        foreach (var c in scalable.Where(c => !refused.ContainsKey(c.Spec.Id)))
        {
            var (options, defaults) = scaled[c.Spec.Id];
            double share = (total > 0 ? Seconds(options, c) / total : 1) * wallTime.TotalSeconds * PlanEstimate.ShareOfWallTime;
            if (((IScalesDefaults)options!).WithWallTimeShare(TimeSpan.FromSeconds(Math.Ceiling(share)), classes) is { } raised)
                scaled[c.Spec.Id] = (raised.Options, defaults.Append(raised.Scaled).ToList());
        }
        return checks.Select(c => refused.TryGetValue(c.Spec.Id, out var why)
            ? new Scaled(c with { NotRunReason = why }, [], why)
            : new Scaled(c with { Options = scaled[c.Spec.Id].Options }, scaled[c.Spec.Id].Defaults, null)).ToList();
    }

    private static string Refusal(double floorSeconds, double available, string how) =>
        $"cannot fit: at the floors of its defaulted budgets it is estimated at {PlanEstimate.Seconds(floorSeconds)}, " +
        $"but {how} it has {PlanEstimate.Seconds(Math.Max(0, available))} of the sandbox's time ({PlanEstimate.Headroom:P0} of sandbox.limits.timeout, or its own budget.wallTime); " +
        "not run — raise sandbox.limits.timeout, or set its samples/steps explicitly";
}
