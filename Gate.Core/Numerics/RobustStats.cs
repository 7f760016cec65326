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
    /// Largest robust z-score |v − median| / scale of a set, and where it occurs. The scale is 1.4826·MAD, but never
    /// below the standard deviation of the central 98% of the values: weight decay can pin most weights of a
    /// tensor near zero (the gridworld agents' first layers), making MAD tiny and every weight the network really
    /// uses look like an outlier, while a handful of planted extreme values (≤ 1%) cannot inflate a trimmed scale.
    /// When both are 0 (over half the values identical) the scale falls back to 1.2533·mean absolute deviation
    /// (Iglewicz and Hoaglin); if all values are identical the score is 0.
    /// </summary>
    public static (double Score, int Index) MaxRobustZ(ReadOnlySpan<double> values)
    {
        if (values.Length == 0) return (0, -1);
        double med = Median(values), scale = Math.Max(MadToSigma * Mad(values, med), TrimmedStd(values, 0.01));
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

    /// <summary>Standard deviation after dropping the lowest and highest <paramref name="fraction"/> (at least one each when n ≥ 3).</summary>
    public static double TrimmedStd(ReadOnlySpan<double> values, double fraction)
    {
        var sorted = values.ToArray();
        Array.Sort(sorted);
        int cut = sorted.Length >= 3 ? Math.Max(1, (int)(sorted.Length * fraction)) : 0;
        var mid = sorted.AsSpan(cut, sorted.Length - 2 * cut);
        if (mid.Length < 2) return 0;
        double mean = 0;
        foreach (var v in mid) mean += v;
        mean /= mid.Length;
        double ss = 0;
        foreach (var v in mid) ss += (v - mean) * (v - mean);
        return Math.Sqrt(ss / (mid.Length - 1));
    }
}
