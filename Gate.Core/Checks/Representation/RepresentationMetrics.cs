using Gate.Core.Numerics;

namespace Gate.Core.Checks.Representation;

/// <summary>One layer's representation statistics.</summary>
public sealed record LayerRepresentation(string Layer, int Samples, int Units, double Sparsity, double EffectiveRank, double CodingRate);

/// <summary>The representation metrics, each a pure function of a sample matrix (rows = samples, columns = units).</summary>
public static class RepresentationMetrics
{
    /// <summary>Fraction of activation entries with |a| &lt; τ.</summary>
    public static double Sparsity(SampleMatrix z, double tau)
    {
        if (z.Data.Length == 0) return double.NaN;
        long small = 0;
        foreach (var v in z.Data) if (Math.Abs(v) < tau) small++;
        return (double)small / z.Data.Length;
    }

    /// <summary>Singular values of the sample matrix (descending), from the eigenvalues of its smaller Gram matrix.</summary>
    public static double[] SingularValues(SampleMatrix z)
    {
        var (g, size) = SymmetricMatrix.SmallerGram(z.Data, z.Rows, z.Columns);
        return SymmetricMatrix.Eigenvalues(g, size).Select(l => Math.Sqrt(Math.Max(0, l))).ToArray();
    }

    /// <summary>
    /// Effective rank of Roy and Vetterli (2007): exp(H(p)) with p_i = σ_i / Σσ the normalised singular values of the
    /// (uncentred) activation matrix and H the Shannon entropy in nats. It is k for k equal non-zero singular values
    /// and 0 for an all-zero layer.
    /// </summary>
    public static double EffectiveRank(IReadOnlyList<double> singularValues)
    {
        double sum = singularValues.Sum();
        if (sum <= 0) return 0;
        double h = 0;
        foreach (var s in singularValues)
        {
            double p = s / sum;
            if (p > 0) h -= p * Math.Log(p);
        }
        return Math.Exp(h);
    }

    /// <summary>
    /// Coding rate R(Z, ε) = ½ log det(I_d + d/(n ε²) Z Zᵀ) in nats, with Z the d×n matrix whose columns are the n
    /// samples (Ma et al. 2007; Yu et al. 2020, 2023). Computed as ½ log det(I + α G) with G the smaller of Z Zᵀ and ZᵀZ
    /// (Sylvester's determinant identity) by Cholesky, since I + αG is positive definite.
    /// </summary>
    public static double CodingRate(SampleMatrix z, double epsilon)
    {
        int n = z.Rows, d = z.Columns;
        if (n == 0 || d == 0) return 0;
        var (g, size) = SymmetricMatrix.SmallerGram(z.Data, n, d);
        double alpha = d / (n * epsilon * epsilon);
        for (int i = 0; i < g.Length; i++) g[i] *= alpha;
        for (int i = 0; i < size; i++) g[i * size + i] += 1;
        return 0.5 * SymmetricMatrix.LogDetSpd(g, size);
    }

    public static LayerRepresentation Measure(string layer, SampleMatrix z, double tau, double epsilon) =>
        new(layer, z.Rows, z.Columns, Sparsity(z, tau), EffectiveRank(SingularValues(z)), CodingRate(z, epsilon));
}
