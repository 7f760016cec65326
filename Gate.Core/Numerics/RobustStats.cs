namespace Gate.Core.Numerics;

/// <summary>Outlier statistics that a single planted value cannot drag: median, MAD and the z-score built on them.</summary>
public static class RobustStats
{
    /// <summary>1.4826·MAD estimates the standard deviation for normally distributed data.</summary>
    public const double MadToSigma = 1.4826;

    public static double Median(ReadOnlySpan<double> values)
    {
        if (values.Length == 0) return double.NaN;
        var copy = values.ToArray();
        Array.Sort(copy);
        int n = copy.Length;
        return n % 2 == 1 ? copy[n / 2] : 0.5 * (copy[n / 2 - 1] + copy[n / 2]);
    }

    /// <summary>Median absolute deviation from the median (unscaled).</summary>
    public static double Mad(ReadOnlySpan<double> values, double median)
    {
        var dev = new double[values.Length];
        for (int i = 0; i < dev.Length; i++) dev[i] = Math.Abs(values[i] - median);
        return Median(dev);
    }

    /// <summary>
    /// Largest robust z-score |v − median| / (1.4826·MAD) of a set, and where it occurs. When MAD is 0 (over half
    /// the values identical, e.g. a pruned weight tensor) the scale falls back to 1.2533·mean absolute deviation
    /// (Iglewicz and Hoaglin), so sparsity alone does not make every non-zero an infinite outlier; if all values
    /// are identical the score is 0.
    /// </summary>
    public static (double Score, int Index) MaxRobustZ(ReadOnlySpan<double> values)
    {
        if (values.Length == 0) return (0, -1);
        double med = Median(values), scale = MadToSigma * Mad(values, med);
        if (scale == 0)
        {
            double meanAbs = 0;
            foreach (var v in values) meanAbs += Math.Abs(v - med);
            scale = 1.253314 * meanAbs / values.Length;
        }
        double best = 0; int at = -1;
        for (int i = 0; i < values.Length; i++)
        {
            double d = Math.Abs(values[i] - med);
            double z = scale > 0 ? d / scale : d > 0 ? double.PositiveInfinity : 0;
            if (z > best || at < 0) { best = z; at = i; }
        }
        return (best, at);
    }
}
