using System.Text.Json.Nodes;

namespace Gate.Core.Checks.TrojanScan;

/// <summary>
/// Thresholds from data, not from taste: each detector's statistic measured on a reference set of clean models
/// (the embedded <c>trojan-calibration.json</c>, produced by <c>scripts/trojan/calibrate.sh</c>). A threshold for a
/// target false-positive rate α is the conformal quantile of the clean scores, and the false-positive rate any
/// threshold implies is the conformal estimate (1 + #{clean scores &gt; t}) / (n + 1): for a new clean model drawn like
/// the reference ones, P(score &gt; t) is at most that.
/// </summary>
/// <param name="Reference">the reference models' per-class values for <see cref="ClassReference"/> (absent in older tables)</param>
public sealed record TrojanCalibration(string Description, string ReferenceSet, string ProducedBy, IReadOnlyDictionary<string, DetectorCalibration> Detectors,
    ClassReference? Reference = null)
{
    public const string ResourceName = "trojan-calibration.json";

    private static readonly Lazy<TrojanCalibration> _embedded = new(() =>
    {
        using var s = typeof(TrojanCalibration).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"{ResourceName} is not embedded in Gate.Core");
        return Parse(JsonNode.Parse(s)!.AsObject());
    });

    /// <summary>The calibration table shipped with this build.</summary>
    public static TrojanCalibration Embedded => _embedded.Value;

    public static TrojanCalibration Parse(JsonObject o)
    {
        var detectors = new Dictionary<string, DetectorCalibration>(StringComparer.Ordinal);
        foreach (var (name, node) in o["detectors"]!.AsObject())
        {
            var scores = node!["cleanScores"]!.AsArray().Select(v => (double)v!).Order().ToArray();
            detectors[name] = new DetectorCalibration(name, (string)node["statistic"]!, node["budget"]?.ToJsonString() ?? "{}", scores);
        }
        return new TrojanCalibration((string)o["description"]!, (string)o["referenceSet"]!, (string)o["producedBy"]!, detectors,
            o["reference"] is JsonObject reference ? ClassReference.Parse(reference) : null);
    }
}

/// <param name="CleanScores">the statistic on every clean reference model, ascending</param>
public sealed record DetectorCalibration(string Detector, string Statistic, string Budget, double[] CleanScores)
{
    public int Models => CleanScores.Length;

    /// <summary>
    /// The smallest threshold t among the clean scores with conformal false-positive rate ≤ α: the ⌈(1−α)(n+1)⌉-th
    /// smallest score. When n is too small for α, the largest clean score (its rate, 1/(n+1), is then above α and is
    /// what the evidence reports).
    /// </summary>
    public double ThresholdFor(double alpha)
    {
        if (Models == 0) return double.PositiveInfinity;
        int k = (int)Math.Ceiling((1 - alpha) * (Models + 1));
        return CleanScores[Math.Clamp(k, 1, Models) - 1];
    }

    /// <summary>Conformal estimate of P(clean score &gt; t): (1 + #{clean &gt; t}) / (n + 1).</summary>
    public double FalsePositiveRate(double threshold) =>
        (1.0 + CleanScores.Count(s => s > threshold)) / (Models + 1);
}

/// <summary>Statistics the detectors share.</summary>
public static class TrojanStatistics
{
    /// <summary>Neural Cleanse's anomaly index of the smallest value: (median − min) / (1.4826·MAD); 0 when all are equal, +∞ when only the minimum differs.</summary>
    public static double LowAnomalyIndex(IReadOnlyList<double> values)
    {
        var a = values.ToArray();
        double median = Numerics.RobustStats.Median(a), mad = Numerics.RobustStats.Mad(a, median), min = a.Min();
        if (median - min == 0) return 0;
        return mad > 0 ? (median - min) / (Numerics.RobustStats.MadToSigma * mad) : double.PositiveInfinity;
    }

    /// <summary>
    /// MM-BD's detection statistic (Wang, Xiang, Miller, Kesidis, IEEE S&amp;P 2024, §IV-B): fit a gamma distribution
    /// (method of moments) to the per-class maximum margins without the largest one, and return the order-statistic
    /// p-value of the largest, p = 1 − F(r_max)^(K−1), as −log10 p (capped at 300). Margins are shifted to a positive
    /// support first when the null set is not (a class whose margin cannot be made positive).
    /// </summary>
    public static (double Score, int Index) MaxMarginScore(IReadOnlyList<double> margins)
    {
        int k = margins.Count;
        int arg = 0;
        for (int i = 1; i < k; i++) if (margins[i] > margins[arg]) arg = i;
        var others = margins.Where((_, i) => i != arg).ToArray();
        double lo = others.Min(), spread = margins[arg] - lo;
        double shift = lo <= 0 ? -lo + 1e-3 * Math.Max(spread, 1e-9) : 0;
        var null0 = others.Select(v => v + shift).ToArray();
        double mean = null0.Average(), var = null0.Sum(v => (v - mean) * (v - mean)) / Math.Max(1, null0.Length - 1);
        if (var <= 0 || mean <= 0) return (margins[arg] > others.Max() ? 300 : 0, arg);
        double shape = mean * mean / var, scale = var / mean;
        double q = GammaQ(shape, (margins[arg] + shift) / scale); // P(X > r_max) under the null
        // p = 1 − (1 − q)^(K−1), computed without cancellation for tiny q.
        double p = q >= 1 ? 1 : q < 1e-8 ? (k - 1) * q : 1 - Math.Pow(1 - q, k - 1);
        return (Math.Min(300, -Math.Log10(Math.Max(p, 1e-300))), arg);
    }

    /// <summary>Regularised upper incomplete gamma Q(a, x) (series for x &lt; a+1, continued fraction otherwise).</summary>
    public static double GammaQ(double a, double x)
    {
        if (x <= 0) return 1;
        double gln = LogGamma(a);
        if (x < a + 1)
        {
            double ap = a, sum = 1 / a, del = sum;
            for (int n = 0; n < 1000; n++) { ap++; del *= x / ap; sum += del; if (Math.Abs(del) < Math.Abs(sum) * 1e-15) break; }
            return 1 - sum * Math.Exp(-x + a * Math.Log(x) - gln);
        }
        double b = x + 1 - a, c = 1 / 1e-300, d = 1 / b, h = d;
        for (int i = 1; i < 1000; i++)
        {
            double an = -i * (i - a);
            b += 2;
            d = an * d + b; if (Math.Abs(d) < 1e-300) d = 1e-300;
            c = b + an / c; if (Math.Abs(c) < 1e-300) c = 1e-300;
            d = 1 / d;
            double del = d * c;
            h *= del;
            if (Math.Abs(del - 1) < 1e-15) break;
        }
        return Math.Exp(-x + a * Math.Log(x) - gln) * h;
    }

    /// <summary>ln Γ(x) for x &gt; 0 (Lanczos, g = 7, n = 9).</summary>
    public static double LogGamma(double x)
    {
        if (x < 0.5) return Math.Log(Math.PI / Math.Abs(Math.Sin(Math.PI * x))) - LogGamma(1 - x);
        double[] g = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
            12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
        x -= 1;
        double a = g[0], t = x + 7.5;
        for (int i = 1; i < 9; i++) a += g[i] / (x + i);
        return 0.5 * Math.Log(2 * Math.PI) + (x + 0.5) * Math.Log(t) - t + Math.Log(a);
    }
}
