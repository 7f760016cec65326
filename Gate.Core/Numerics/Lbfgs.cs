namespace Gate.Core.Numerics;

/// <summary>
/// Limited-memory BFGS for smooth unconstrained minimisation, with a backtracking (Armijo) line search.
/// Deterministic: same start, same iterates.
/// </summary>
public static class Lbfgs
{
    /// <summary>An objective: writes the gradient at x into grad and returns the value.</summary>
    public delegate double Objective(double[] x, double[] grad);

    public sealed record Result(double[] X, double Value, int Iterations, bool Converged);

    public static Result Minimize(Objective f, double[] x0, int maxIterations = 1000, double gradTolerance = 1e-6, int memory = 10)
    {
        int n = x0.Length;
        var x = (double[])x0.Clone();
        var g = new double[n];
        double fx = f(x, g);
        var s = new List<double[]>(); var y = new List<double[]>(); var rho = new List<double>();
        var d = new double[n]; var xNew = new double[n]; var gNew = new double[n];
        var alpha = new double[memory];
        for (int iter = 0; iter < maxIterations; iter++)
        {
            if (MaxAbs(g) <= gradTolerance) return new Result(x, fx, iter, true);
            // Two-loop recursion: d = −H g.
            Array.Copy(g, d, n);
            for (int i = s.Count - 1; i >= 0; i--) { alpha[i] = rho[i] * Dot(s[i], d); Axpy(-alpha[i], y[i], d); }
            if (s.Count > 0) { double gamma = Dot(s[^1], y[^1]) / Dot(y[^1], y[^1]); for (int k = 0; k < n; k++) d[k] *= gamma; }
            for (int i = 0; i < s.Count; i++) { double b = rho[i] * Dot(y[i], d); Axpy(alpha[i] - b, s[i], d); }
            for (int k = 0; k < n; k++) d[k] = -d[k];
            double slope = Dot(g, d);
            if (slope >= 0) { for (int k = 0; k < n; k++) d[k] = -g[k]; slope = -Dot(g, g); s.Clear(); y.Clear(); rho.Clear(); }

            double step = s.Count == 0 ? Math.Min(1.0, 1.0 / Math.Max(MaxAbs(g), 1e-12)) : 1.0;
            double fNew = double.NaN;
            bool accepted = false;
            for (int ls = 0; ls < 60; ls++)
            {
                for (int k = 0; k < n; k++) xNew[k] = x[k] + step * d[k];
                fNew = f(xNew, gNew);
                if (double.IsFinite(fNew) && fNew <= fx + 1e-4 * step * slope) { accepted = true; break; }
                step *= 0.5;
            }
            if (!accepted) return new Result(x, fx, iter, MaxAbs(g) <= gradTolerance * 100);
            var sk = new double[n]; var yk = new double[n];
            for (int k = 0; k < n; k++) { sk[k] = xNew[k] - x[k]; yk[k] = gNew[k] - g[k]; }
            double sy = Dot(sk, yk);
            if (sy > 1e-12 * Math.Sqrt(Dot(sk, sk) * Dot(yk, yk)))
            {
                if (s.Count == memory) { s.RemoveAt(0); y.RemoveAt(0); rho.RemoveAt(0); }
                s.Add(sk); y.Add(yk); rho.Add(1 / sy);
            }
            bool tinyChange = Math.Abs(fx - fNew) <= 1e-12 * Math.Max(1, Math.Abs(fx));
            Array.Copy(xNew, x, n); Array.Copy(gNew, g, n); fx = fNew;
            if (tinyChange && MaxAbs(g) <= Math.Max(gradTolerance, 1e-6)) return new Result(x, fx, iter + 1, true);
        }
        return new Result(x, fx, maxIterations, MaxAbs(g) <= gradTolerance);
    }

    private static double Dot(double[] a, double[] b) { double s = 0; for (int i = 0; i < a.Length; i++) s += a[i] * b[i]; return s; }
    private static void Axpy(double a, double[] x, double[] y) { for (int i = 0; i < x.Length; i++) y[i] += a * x[i]; }
    private static double MaxAbs(double[] a) { double m = 0; foreach (var v in a) m = Math.Max(m, Math.Abs(v)); return m; }
}
