using Gate.Core.Numerics;

namespace Gate.Core.Numerics;

/// <summary>
/// L2-regularised logistic regression fitted by L-BFGS, with scikit-learn's objective so that probe numbers are
/// comparable with theirs: minimise ½‖W‖² + C·Σᵢ logloss(xᵢ, yᵢ), intercepts unpenalised. Two classes use one
/// weight vector (sigmoid); more classes use the multinomial (softmax) model with one vector per class.
/// </summary>
public sealed class LogisticRegression
{
    private readonly double[] _w; // binary: [d weights, bias]; multinomial: K × [d weights, bias]
    public int Classes { get; }
    public int Features { get; }
    public bool Converged { get; }

    private LogisticRegression(double[] w, int classes, int features, bool converged)
    { _w = w; Classes = classes; Features = features; Converged = converged; }

    /// <summary>Fits on rows of x (n×d, row-major) with labels 0..classes−1.</summary>
    public static LogisticRegression Fit(double[] x, int n, int d, int[] y, int classes, double c, int maxIterations = 10000)
    {
        if (classes < 2) throw new ArgumentException("logistic regression needs at least two classes", nameof(classes));
        if (classes == 2)
        {
            var r = Lbfgs.Minimize((w, g) => BinaryObjective(w, g, x, n, d, y, c), new double[d + 1], maxIterations, 1e-6);
            return new LogisticRegression(r.X, 2, d, r.Converged);
        }
        var rm = Lbfgs.Minimize((w, g) => MultinomialObjective(w, g, x, n, d, y, classes, c), new double[classes * (d + 1)], maxIterations, 1e-6);
        return new LogisticRegression(rm.X, classes, d, rm.Converged);
    }

    private static double BinaryObjective(double[] w, double[] g, double[] x, int n, int d, int[] y, double c)
    {
        double f = 0;
        for (int k = 0; k < d; k++) { f += 0.5 * w[k] * w[k]; g[k] = w[k]; }
        g[d] = 0;
        for (int i = 0; i < n; i++)
        {
            double z = w[d];
            for (int k = 0; k < d; k++) z += w[k] * x[i * d + k];
            double t = y[i] == 1 ? 1 : -1;
            // logloss = log(1 + exp(−t z)), computed stably.
            double m = -t * z;
            f += c * (m > 0 ? m + double.LogP1(Math.Exp(-m)) : double.LogP1(Math.Exp(m)));
            double p = 1 / (1 + Math.Exp(-z)); // P(y = 1)
            double r = c * (p - (y[i] == 1 ? 1 : 0));
            for (int k = 0; k < d; k++) g[k] += r * x[i * d + k];
            g[d] += r;
        }
        return f;
    }

    private static double MultinomialObjective(double[] w, double[] g, double[] x, int n, int d, int[] y, int kc, double c)
    {
        int stride = d + 1;
        double f = 0;
        Array.Clear(g);
        for (int j = 0; j < kc; j++)
            for (int k = 0; k < d; k++) { f += 0.5 * w[j * stride + k] * w[j * stride + k]; g[j * stride + k] = w[j * stride + k]; }
        var z = new double[kc];
        for (int i = 0; i < n; i++)
        {
            double max = double.NegativeInfinity;
            for (int j = 0; j < kc; j++)
            {
                double s = w[j * stride + d];
                for (int k = 0; k < d; k++) s += w[j * stride + k] * x[i * d + k];
                z[j] = s; max = Math.Max(max, s);
            }
            double sum = 0;
            for (int j = 0; j < kc; j++) sum += Math.Exp(z[j] - max);
            double lse = max + Math.Log(sum);
            f += c * (lse - z[y[i]]);
            for (int j = 0; j < kc; j++)
            {
                double r = c * (Math.Exp(z[j] - lse) - (j == y[i] ? 1 : 0));
                for (int k = 0; k < d; k++) g[j * stride + k] += r * x[i * d + k];
                g[j * stride + d] += r;
            }
        }
        return f;
    }

    /// <summary>Weight of feature k for class j (binary: j is ignored; the single vector scores class 1).</summary>
    public double Weight(int j, int k) => Classes == 2 ? _w[k] : _w[j * (Features + 1) + k];
    public double Bias(int j) => Classes == 2 ? _w[Features] : _w[j * (Features + 1) + Features];

    public int Predict(ReadOnlySpan<double> row)
    {
        if (Classes == 2)
        {
            double z = _w[Features];
            for (int k = 0; k < Features; k++) z += _w[k] * row[k];
            return z > 0 ? 1 : 0;
        }
        int best = 0; double bestZ = double.NegativeInfinity;
        for (int j = 0; j < Classes; j++)
        {
            double s = Bias(j);
            for (int k = 0; k < Features; k++) s += _w[j * (Features + 1) + k] * row[k];
            if (s > bestZ) { bestZ = s; best = j; }
        }
        return best;
    }
}
