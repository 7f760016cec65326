namespace Gate.Core.Checks.Adversarial;

/// <summary>
/// What counts as a violation: any wrong top-1 class (untargeted) or a chosen class (targeted, e.g. "classify as 0"
/// or a forbidden action). The losses are written so that every method always maximises.
/// </summary>
public sealed record AttackGoal(int? TargetClass)
{
    public static AttackGoal Untargeted { get; } = new((int?)null);
    public bool Targeted => TargetClass is not null;
    public string Describe() => Targeted ? $"targeted (class {TargetClass})" : "untargeted";

    /// <summary>Top-1 class, first index on ties (the convention of every check here).</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int arg = 0;
        for (int k = 1; k < logits.Length; k++) if (logits[k] > logits[arg]) arg = k;
        return arg;
    }

    /// <summary>True when the outputs violate the goal. Non-finite outputs never count as a counterexample.</summary>
    public bool IsMet(ReadOnlySpan<float> logits, long label)
    {
        foreach (var z in logits) if (!float.IsFinite(z)) return false;
        return Targeted ? ArgMax(logits) == TargetClass : ArgMax(logits) != label;
    }

    /// <summary>
    /// Cross-entropy objective to maximise and its gradient with respect to the logits: CE(label) when untargeted,
    /// −CE(target) when targeted. Computed in double through a stable log-sum-exp.
    /// </summary>
    public double CrossEntropy(ReadOnlySpan<float> logits, long label, Span<float> dLogits)
    {
        double max = double.NegativeInfinity;
        foreach (var z in logits) max = Math.Max(max, z);
        double sum = 0;
        foreach (var z in logits) sum += Math.Exp(z - max);
        double lse = max + Math.Log(sum);
        int k = Targeted ? TargetClass!.Value : (int)label;
        double sign = Targeted ? -1 : 1;
        for (int j = 0; j < logits.Length; j++)
        {
            double p = Math.Exp(logits[j] - lse);
            dLogits[j] = (float)(sign * (p - (j == k ? 1 : 0)));
        }
        return sign * (lse - logits[k]);
    }

    /// <summary>
    /// Margin that is negative exactly when the goal is met (ties aside): z_label − max_{j≠label} z_j when untargeted,
    /// max_{j≠target} z_j − z_target when targeted. Score-based methods minimise it.
    /// </summary>
    public double Margin(ReadOnlySpan<float> logits, long label)
    {
        int k = Targeted ? TargetClass!.Value : (int)label;
        double other = double.NegativeInfinity;
        for (int j = 0; j < logits.Length; j++) if (j != k) other = Math.Max(other, logits[j]);
        return Targeted ? other - logits[k] : logits[k] - other;
    }
}
