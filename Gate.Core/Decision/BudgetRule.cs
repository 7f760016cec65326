namespace Gate.Core.Decision;

/// <summary>One budget default the plan lowered (or a defaulted wall time it raised to the check's share) to fit the sandbox.</summary>
/// <param name="Option">the option's key as a policy writes it, e.g. <c>samples</c>, <c>tabor.steps</c>, <c>search[0].steps</c></param>
/// <param name="Value">what the check runs with</param>
/// <param name="DeclaredDefault">what the default would have been</param>
public sealed record ScaledDefault(string Option, string Value, string DeclaredDefault, string Rule);

/// <summary>
/// Bound options whose expensive budget knobs (samples, steps, queries) a policy may leave at their defaults, so the
/// plan may lower them to fit the sandbox (<c>Plan.BudgetScaling</c>). A value the policy wrote is never changed.
/// </summary>
public interface IScalesDefaults : IEstimatesWork
{
    /// <summary>
    /// The options with the defaulted knobs lowered so their work is about <paramref name="factor"/> (0..1] of the
    /// defaults' — samples before steps (samples mostly cost; steps decide whether a search converges), none below
    /// its floor — and what was lowered. Factor 1 (or nothing defaulted) returns these options, nothing scaled.
    /// </summary>
    (object Options, IReadOnlyList<ScaledDefault> Scaled) ScaleDefaults(double factor, long rows, int classes);

    /// <summary>
    /// When the check's own wall-time budget is a default: the options with it raised to <paramref name="share"/> (the
    /// check's share of the sandbox's time, when larger), and the record; null when the policy set it or it has none.
    /// </summary>
    (object Options, ScaledDefault Scaled)? WithWallTimeShare(TimeSpan share, int classes) => null;
}

/// <summary>
/// The words and arithmetic of default budgets that scale with the model (<c>Plan.BudgetScaling</c>
/// applies them to a plan): the size from which they scale, the rule review and diff print, and how one knob is lowered.
/// Here, below both the checks (which lower their own knobs) and the plan.
/// </summary>
public static class BudgetRule
{
    /// <summary>
    /// Models from this many parameters have their defaults scaled. Below it the defaults stand: the estimate is a
    /// loose upper bound on small models (7–8× on the digits release policy, <see cref="CheckEstimate.RefuseFactor"/>),
    /// which would lower budgets that in fact fit.
    /// </summary>
    public const long MinParameters = 1_000_000;

    /// <summary>The rule in words, recorded with every scaled value and shown by review and diff beside the default.</summary>
    public const string Rule = "lowered on models of ≥ 1M parameters so the plan's estimate fits 80% of the sandbox timeout (samples before steps, none below its floor)";

    /// <summary>The words review and diff print beside a default that this scaling may lower, with its floor.</summary>
    public static string RuleWithFloor(string floor) => $"{Rule}; floor {floor}";

    /// <summary>
    /// A defaulted knob lowered by <paramref name="factor"/> but not below <paramref name="floor"/> (nor raised to it),
    /// and the factor left for the next knob (1 when this one absorbed all of it).
    /// </summary>
    public static (long Value, double Left) Lower(long value, long floor, double factor)
    {
        if (factor >= 1 || value <= 0) return (value, Math.Min(1, factor));
        long v = Math.Max(Math.Min(value, floor), (long)Math.Ceiling(value * factor));
        return (v, Math.Min(1, factor * value / v));
    }

}
