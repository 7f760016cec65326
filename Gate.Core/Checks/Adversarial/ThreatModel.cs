using System.Globalization;

namespace Gate.Core.Checks.Adversarial;

public enum PerturbationNorm { Linf, L2 }

/// <summary>
/// The set an adversary may search: inputs within <see cref="Epsilon"/> of the clean input in the given norm, and
/// inside the declared input range. <see cref="Project"/> and <see cref="Admits"/> use the same float32 arithmetic,
/// so a projected point is always admitted: a counterexample never rests on rounding outside the ball.
/// </summary>
/// <param name="PixelSpace">The perturbed input is decoded image pixels in [0, 1] with preprocessing composed into the
/// graph, so ε reads as levels of an 8-bit channel.</param>
public sealed record ThreatModel(PerturbationNorm Norm, double Epsilon, double Min, double Max, bool PixelSpace = false)
{
    public ThreatModel WithEpsilon(double epsilon) => this with { Epsilon = epsilon };

    public string NormName => Norm == PerturbationNorm.Linf ? "L∞" : "L2";
    public string Describe() => $"{NormName} ε={Epsilon.ToString("G4", CultureInfo.InvariantCulture)}";

    /// <summary>ε as a share of the declared input range, or null when the range is not finite.</summary>
    public double? RangeFraction => double.IsFinite(Max - Min) && Max > Min ? Epsilon / (Max - Min) : null;

    /// <summary>The set in words for reviewers: "L∞ ε = 0.05 (5% of the input range [0, 1])".</summary>
    public string Words()
    {
        static string N(double v) => v.ToString("0.####", CultureInfo.InvariantCulture);
        if (PixelSpace) return $"{NormName} ε = {N(Epsilon)} (= {N(Epsilon * 255)}/255 per pixel: {N(Epsilon * 255)} levels of an 8-bit channel, before preprocessing)";
        return $"{NormName} ε = {N(Epsilon)}" + (RangeFraction is { } f ? $" ({N(f * 100)}% of the input range [{N(Min)}, {N(Max)}])" : "");
    }

    /// <summary>Distance in the threat's norm, computed in double from the float32 values actually fed to the model.</summary>
    public double Distance(ReadOnlySpan<float> clean, ReadOnlySpan<float> x)
    {
        double acc = 0;
        for (int i = 0; i < x.Length; i++)
        {
            double d = (double)x[i] - clean[i];
            if (Norm == PerturbationNorm.Linf) acc = Math.Max(acc, Math.Abs(d));
            else acc += d * d;
        }
        return Norm == PerturbationNorm.Linf ? acc : Math.Sqrt(acc);
    }

    /// <summary>True when x is inside the ε-ball around clean and inside the input range (NaN never is).</summary>
    public bool Admits(ReadOnlySpan<float> clean, ReadOnlySpan<float> x)
    {
        for (int i = 0; i < x.Length; i++)
            if (!(x[i] >= Min && x[i] <= Max)) return false;
        return Distance(clean, x) <= Epsilon;
    }

    /// <summary>Moves x (in place) to the nearest admitted point: onto the ball, then into the range.</summary>
    public void Project(ReadOnlySpan<float> clean, Span<float> x)
    {
        if (Norm == PerturbationNorm.Linf)
        {
            for (int i = 0; i < x.Length; i++)
            {
                double lo = Math.Max(Min, clean[i] - Epsilon), hi = Math.Min(Max, clean[i] + Epsilon);
                if (lo > hi) { x[i] = clean[i]; continue; } // clean point outside the range: stay on it
                double v = double.IsNaN(x[i]) ? clean[i] : Math.Clamp((double)x[i], lo, hi);
                float f = (float)v;
                // float rounding may step just outside [lo, hi]; step back one ulp at a time.
                while (f > hi) f = MathF.BitDecrement(f);
                while (f < lo) f = MathF.BitIncrement(f);
                x[i] = f;
            }
            return;
        }
        double sq = 0;
        for (int i = 0; i < x.Length; i++)
        {
            if (float.IsNaN(x[i])) x[i] = clean[i];
            double d = (double)x[i] - clean[i];
            sq += d * d;
        }
        double norm = Math.Sqrt(sq);
        if (norm > Epsilon)
        {
            double scale = Epsilon / norm * (1 - 1e-6);
            for (int i = 0; i < x.Length; i++) x[i] = (float)(clean[i] + ((double)x[i] - clean[i]) * scale);
        }
        // Clipping to the range moves each coordinate toward the clean value, so it cannot leave the ball.
        for (int i = 0; i < x.Length; i++) x[i] = ClampToRange(x[i]);
        // Last guard against rounding: shrink toward the clean point until admitted.
        for (int guard = 0; guard < 64 && Distance(clean, x) > Epsilon; guard++)
            for (int i = 0; i < x.Length; i++) x[i] = ClampToRange((float)(clean[i] + ((double)x[i] - clean[i]) * 0.999));
    }

    private float ClampToRange(float v)
    {
        float f = (float)Math.Clamp((double)v, Min, Max);
        while (f > Max) f = MathF.BitDecrement(f);
        while (f < Min) f = MathF.BitIncrement(f);
        return f;
    }

    /// <summary>A uniformly random start inside the ball (L∞: uniform in the cube; L2: uniform in the ball), then projected.</summary>
    public void RandomStart(ReadOnlySpan<float> clean, Span<float> x, AttackRng rng)
    {
        if (Norm == PerturbationNorm.Linf)
        {
            for (int i = 0; i < x.Length; i++) x[i] = (float)(clean[i] + (2 * rng.NextDouble() - 1) * Epsilon);
        }
        else
        {
            var dir = new double[x.Length];
            double sq = 0;
            for (int i = 0; i < dir.Length; i++) { dir[i] = rng.NextGaussian(); sq += dir[i] * dir[i]; }
            double radius = Epsilon * Math.Pow(rng.NextDouble(), 1.0 / x.Length) / Math.Sqrt(Math.Max(sq, 1e-300));
            for (int i = 0; i < x.Length; i++) x[i] = (float)(clean[i] + dir[i] * radius);
        }
        Project(clean, x);
    }

    /// <summary>x += step · direction(g): sign(g) for L∞ (steepest ascent in L∞), g/‖g‖₂ for L2.</summary>
    public void AscentStep(Span<float> x, ReadOnlySpan<float> grad, double step)
    {
        if (Norm == PerturbationNorm.Linf)
        {
            for (int i = 0; i < x.Length; i++) x[i] = (float)(x[i] + step * Math.Sign(grad[i]));
            return;
        }
        double sq = 0;
        for (int i = 0; i < grad.Length; i++) sq += (double)grad[i] * grad[i];
        double n = Math.Sqrt(sq);
        if (n < 1e-12) return;
        for (int i = 0; i < x.Length; i++) x[i] = (float)(x[i] + step * grad[i] / n);
    }
}
