namespace Gate.Core.Numerics;

/// <summary>Dense symmetric-matrix routines on row-major double arrays (n×n): Gram matrices, Cholesky, eigenvalues.</summary>
public static class SymmetricMatrix
{
    /// <summary>
    /// The smaller Gram matrix of an n×d row-major sample matrix X: X Xᵀ (n×n) when n ≤ d, else Xᵀ X (d×d).
    /// Both share their non-zero eigenvalues (the squared singular values of X), which is all the callers need.
    /// </summary>
    public static (double[] Gram, int Size) SmallerGram(double[] x, int n, int d)
    {
        if (n <= d) return (RowGram(x, n, d), n);
        else
        {
            var g = new double[d * d];
            for (int r = 0; r < n; r++)
            {
                int off = r * d;
                for (int i = 0; i < d; i++)
                {
                    double xi = x[off + i];
                    if (xi == 0) continue;
                    for (int j = 0; j <= i; j++) g[i * d + j] += xi * x[off + j];
                }
            }
            for (int i = 0; i < d; i++) for (int j = 0; j < i; j++) g[j * d + i] = g[i * d + j];
            return (g, d);
        }
    }

    /// <summary>
    /// X Xᵀ (n×n) of an n×d row-major matrix: the rows' dot products, vectorised and spread over the cores. For wide
    /// activations (200 samples × 500k features) this O(n²d) product is the whole cost of the row-space methods that read them.
    /// </summary>
    public static double[] RowGram(double[] x, int n, int d)
    {
        var g = new double[n * n];
        // Column chunks outermost: one chunk of every row (n × 1024 doubles) stays in cache while all n²/2 pairs read it,
        // so the matrix streams from memory once instead of once per row.
        const int Chunk = 1024;
        for (int c0 = 0; c0 < d; c0 += Chunk)
        {
            int width = Math.Min(Chunk, d - c0), start = c0;
            Parallel.For(0, n, i =>
            {
                var xi = x.AsSpan(i * d + start, width);
                for (int j = 0; j <= i; j++) g[i * n + j] += System.Numerics.Tensors.TensorPrimitives.Dot(xi, x.AsSpan(j * d + start, width));
            });
        }
        for (int i = 0; i < n; i++) for (int j = 0; j < i; j++) g[j * n + i] = g[i * n + j];
        return g;
    }

    /// <summary>
    /// log det of a symmetric positive-definite matrix via Cholesky (A = L Lᵀ, log det = 2 Σ log L_ii).
    /// Throws if the matrix is not positive definite.
    /// </summary>
    public static double LogDetSpd(double[] a, int n)
    {
        var l = (double[])a.Clone();
        double logdet = 0;
        for (int j = 0; j < n; j++)
        {
            double s = l[j * n + j];
            for (int k = 0; k < j; k++) s -= l[j * n + k] * l[j * n + k];
            if (!(s > 0)) throw new ArithmeticException($"matrix is not positive definite (pivot {j} = {s})");
            double ljj = Math.Sqrt(s);
            l[j * n + j] = ljj;
            logdet += 2 * Math.Log(ljj);
            for (int i = j + 1; i < n; i++)
            {
                double t = l[i * n + j];
                for (int k = 0; k < j; k++) t -= l[i * n + k] * l[j * n + k];
                l[i * n + j] = t / ljj;
            }
        }
        return logdet;
    }

    /// <summary>
    /// Eigenvalues of a symmetric matrix by the cyclic Jacobi method (slow, O(n³) per sweep, but simple and
    /// accurate to machine precision; the matrices here are at most a few hundred wide). Sorted descending.
    /// </summary>
    public static double[] Eigenvalues(double[] a, int n, int maxSweeps = 60) => Jacobi(a, n, vectors: false, maxSweeps).Values;

    /// <summary>
    /// Eigenvalues (descending) and their unit eigenvectors, by the same Jacobi method: column k of the row-major n×n
    /// <c>Vectors</c> belongs to <c>Values[k]</c>, so A = V diag(λ) Vᵀ.
    /// </summary>
    public static (double[] Values, double[] Vectors) EigenDecomposition(double[] a, int n, int maxSweeps = 60)
    {
        var (values, vectors) = Jacobi(a, n, vectors: true, maxSweeps);
        return (values, vectors!);
    }

    private static (double[] Values, double[]? Vectors) Jacobi(double[] a, int n, bool vectors, int maxSweeps)
    {
        var m = (double[])a.Clone();
        double[]? v = null;
        if (vectors) { v = new double[n * n]; for (int i = 0; i < n; i++) v[i * n + i] = 1; }
        for (int sweep = 0; sweep < maxSweeps; sweep++)
        {
            double off = 0, diag = 0;
            for (int i = 0; i < n; i++)
            {
                diag += m[i * n + i] * m[i * n + i];
                for (int j = i + 1; j < n; j++) off += m[i * n + j] * m[i * n + j];
            }
            if (off <= 1e-30 * Math.Max(diag, 1e-300)) break;
            for (int p = 0; p < n - 1; p++)
                for (int q = p + 1; q < n; q++)
                {
                    double apq = m[p * n + q];
                    if (Math.Abs(apq) < 1e-300) continue;
                    double app = m[p * n + p], aqq = m[q * n + q];
                    double theta = (aqq - app) / (2 * apq);
                    double t = Math.Sign(theta) / (Math.Abs(theta) + Math.Sqrt(theta * theta + 1));
                    if (theta == 0) t = 1;
                    double c = 1 / Math.Sqrt(t * t + 1), s = t * c;
                    // Rotate rows/columns p and q (A ← Jᵀ A J), keeping the matrix symmetric; V ← V J.
                    for (int k = 0; k < n; k++)
                    {
                        double akp = m[k * n + p], akq = m[k * n + q];
                        m[k * n + p] = c * akp - s * akq;
                        m[k * n + q] = s * akp + c * akq;
                    }
                    for (int k = 0; k < n; k++)
                    {
                        double apk = m[p * n + k], aqk = m[q * n + k];
                        m[p * n + k] = c * apk - s * aqk;
                        m[q * n + k] = s * apk + c * aqk;
                    }
                    if (v is not null)
                        for (int k = 0; k < n; k++)
                        {
                            double vkp = v[k * n + p], vkq = v[k * n + q];
                            v[k * n + p] = c * vkp - s * vkq;
                            v[k * n + q] = s * vkp + c * vkq;
                        }
                }
        }
        var order = Enumerable.Range(0, n).OrderByDescending(i => m[i * n + i]).ToArray();
        var values = order.Select(i => m[i * n + i]).ToArray();
        if (v is null) return (values, null);
        var sorted = new double[n * n];
        for (int k = 0; k < n; k++)
            for (int r = 0; r < n; r++) sorted[r * n + k] = v[r * n + order[k]];
        return (values, sorted);
    }
}
