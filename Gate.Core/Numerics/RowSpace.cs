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
}
