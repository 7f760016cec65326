namespace Gate.Core.Numerics;

/// <summary>
/// Coordinates of samples in the row space of a training subset, computed from the Gram matrix alone.
/// <para>
/// Why: an L2-regularised linear model fitted on m training rows of width d ≫ m (a probe on a convolution's
/// activations: 160 rows × 65,536 features) has its optimal weights in the span of those rows — any part outside adds
/// to the penalty and changes no training logit. With the training rows X = U Σ Vᵀ (r non-zero singular values), the
/// fit on Z = X V = U Σ (m × r) with the same objective has the same optimum, and a test row x maps to x V =
/// K(x, X) U Σ⁻¹. L-BFGS started at zero is invariant under that orthogonal change of basis, so the iterates and the
/// stopping rule are those of the fit on X; only the cost changes: O(m² d) once for the Gram matrix instead of
/// O(m d k) per objective evaluation.
/// </para>
/// </summary>
public static class RowSpace
{
    /// <summary>
    /// Directions whose squared singular value is below this share of the largest carry nothing but rounding
    /// (a rank-deficient activation, e.g. a ReLU that is zero on most samples) and are left out.
    /// </summary>
    public const double RelativeTolerance = 1e-12;

    /// <summary>
    /// Row-space coordinates of the <paramref name="train"/> rows (m × r, row-major) and of the <paramref name="test"/>
    /// rows (t × r), from the n×n Gram matrix of all rows.
    /// </summary>
    public static (double[] Train, double[] Test, int Rank) Coordinates(double[] gram, int n, IReadOnlyList<int> train, IReadOnlyList<int> test)
    {
        int m = train.Count;
        var k = new double[m * m];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++) k[i * m + j] = gram[train[i] * n + train[j]];
        return Cholesky(k, m) is { } l ? ViaCholesky(gram, n, train, test, l) : ViaEigenvectors(gram, n, train, test, k);
    }

    /// <summary>
    /// Full rank (distinct samples, the usual case): K = L Lᵀ, so Z = L are coordinates in the orthonormal basis
    /// V = Xᵀ L⁻ᵀ (Vᵀ V = L⁻¹ K L⁻ᵀ = I), and a test row's are L⁻¹ K(X, x). m³/3 operations instead of Jacobi's ~60 m³.
    /// </summary>
    private static (double[], double[], int) ViaCholesky(double[] gram, int n, IReadOnlyList<int> train, IReadOnlyList<int> test, double[] l)
    {
        int m = train.Count;
        var zTest = new double[test.Count * m];
        for (int t = 0; t < test.Count; t++)
            for (int i = 0; i < m; i++) // forward substitution: L y = K(X, x)
            {
                double s = gram[test[t] * n + train[i]];
                for (int j = 0; j < i; j++) s -= l[i * m + j] * zTest[t * m + j];
                zTest[t * m + i] = s / l[i * m + i];
            }
        return (l, zTest, m);
    }

    /// <summary>Rank-deficient (duplicated samples, dead units): the eigenvectors of K, dropping the null directions.</summary>
    private static (double[], double[], int) ViaEigenvectors(double[] gram, int n, IReadOnlyList<int> train, IReadOnlyList<int> test, double[] k)
    {
        int m = train.Count;
        var (values, u) = SymmetricMatrix.EigenDecomposition(k, m);
        double cutoff = Math.Max(values.Length == 0 ? 0 : values[0], 0) * RelativeTolerance * Math.Max(1, m);
        int r = values.TakeWhile(v => v > cutoff).Count();
        var sigma = values.Take(r).Select(Math.Sqrt).ToArray();
        var zTrain = new double[m * r];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < r; j++) zTrain[i * r + j] = u[i * m + j] * sigma[j];
        var zTest = new double[test.Count * r];
        for (int t = 0; t < test.Count; t++)
            for (int j = 0; j < r; j++)
            {
                double s = 0;
                for (int i = 0; i < m; i++) s += gram[test[t] * n + train[i]] * u[i * m + j];
                zTest[t * r + j] = s / sigma[j];
            }
        return (zTrain, zTest, r);
    }

    /// <summary>
    /// The lower Cholesky factor of K (row-major, zeros above the diagonal), or null when a pivot falls below the
    /// rank tolerance relative to K's largest diagonal entry (then K is treated as rank-deficient).
    /// </summary>
    private static double[]? Cholesky(double[] k, int m)
    {
        double largest = 0;
        for (int i = 0; i < m; i++) largest = Math.Max(largest, k[i * m + i]);
        double floor = largest * RelativeTolerance * Math.Max(1, m);
        var l = new double[m * m];
        for (int j = 0; j < m; j++)
        {
            double s = k[j * m + j];
            for (int p = 0; p < j; p++) s -= l[j * m + p] * l[j * m + p];
            if (!(s > floor)) return null;
            double ljj = Math.Sqrt(s);
            l[j * m + j] = ljj;
            for (int i = j + 1; i < m; i++)
            {
                double t = k[i * m + j];
                for (int p = 0; p < j; p++) t -= l[i * m + p] * l[j * m + p];
                l[i * m + j] = t / ljj;
            }
        }
        return l;
    }
}
