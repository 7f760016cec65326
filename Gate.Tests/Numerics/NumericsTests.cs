using Gate.Core.Checks.Representation;
using Gate.Core.Checks.Surrogate;
using Gate.Core.Checks.TrojanScan;
using Gate.Core.Numerics;
using Xunit;

namespace Gate.Tests.Numerics;

/// <summary>Every metric against an independent hand computation on a small case.</summary>
public class NumericsTests
{
    [Fact]
    public void Robust_z_score_finds_a_planted_outlier()
    {
        // median 3, |deviations| = [2,1,0,1,97] → MAD 1, so z(100) = 97 / 1.4826.
        var (z, at) = RobustStats.MaxRobustZ([1, 2, 3, 4, 100]);
        Assert.Equal(4, at);
        Assert.Equal(97 / 1.4826, z, 9);

        var rng = new Random(5);
        var w = Enumerable.Range(0, 1000).Select(_ => rng.NextDouble() - 0.5).ToArray();
        w[417] = 40;
        var (z2, at2) = RobustStats.MaxRobustZ(w);
        Assert.Equal(417, at2);
        Assert.True(z2 > 50, $"planted outlier z = {z2}");
        w[417] = 0.1;
        Assert.True(RobustStats.MaxRobustZ(w).Score < 4, "uniform weights have no extreme value");
    }

    [Fact]
    public void Robust_z_score_scale_is_floored_by_the_trimmed_deviation_then_falls_back_to_mean_deviation()
    {
        // MAD = 0 (over half zeros), so the trimmed deviation sets the scale: drop one value at each end →
        // [0,0,0,0,1,1]: mean 1/3, sample variance (4·1/9 + 2·4/9)/5 = 4/15.
        var (z, at) = RobustStats.MaxRobustZ([0, 0, 0, 0, 0, 1, 1, 2]);
        Assert.Equal(7, at);
        Assert.Equal(2 / Math.Sqrt(4.0 / 15), z, 9);
        // MAD = 0 and the trimmed middle is constant: scale = 1.2533 · mean|v − 0| = 1.2533 · 5/9.
        var (z2, at2) = RobustStats.MaxRobustZ([0, 0, 0, 0, 0, 0, 0, 0, 5]);
        Assert.Equal(8, at2);
        Assert.Equal(5 / (1.253314 * 5 / 9), z2, 9);
        Assert.Equal(0, RobustStats.MaxRobustZ([3, 3, 3]).Score);
    }

    [Fact]
    public void Anomaly_index_matches_the_definition()
    {
        // norms 1,10,11,12,13: median 11, |dev| = [10,1,0,1,2] → MAD 1 → (11 − 1)/1.4826.
        Assert.Equal(10 / 1.4826, TrojanScanCheck.AnomalyIndex([10, 1, 11, 12, 13]), 9);
        Assert.Equal(0, TrojanScanCheck.AnomalyIndex([5, 5, 5, 5]));
    }

    [Fact]
    public void Jacobi_eigenvalues_match_a_known_spectrum()
    {
        Assert.Equal([3.0, 1.0], SymmetricMatrix.Eigenvalues([2, 1, 1, 2], 2).Select(v => Math.Round(v, 10)));
        // Q diag(5,2,−1) Qᵀ for a random orthogonal Q (Gram–Schmidt of a seeded matrix).
        var q = Orthonormal(3, new Random(3));
        double[] lambda = [5, 2, -1];
        var a = new double[9];
        for (int i = 0; i < 3; i++) for (int j = 0; j < 3; j++) for (int k = 0; k < 3; k++) a[i * 3 + j] += q[i, k] * lambda[k] * q[j, k];
        var ev = SymmetricMatrix.Eigenvalues(a, 3);
        for (int k = 0; k < 3; k++) Assert.Equal(lambda[k], ev[k], 9);
    }

    [Fact]
    public void Effective_rank_matches_a_known_spectrum()
    {
        Assert.Equal(4, RepresentationMetrics.EffectiveRank([2, 2, 2, 2, 0]), 12);
        double h = -(0.75 * Math.Log(0.75) + 0.25 * Math.Log(0.25));
        Assert.Equal(Math.Exp(h), RepresentationMetrics.EffectiveRank([3, 1]), 12);
        // End to end: samples [3,0],[0,1] have singular values 3 and 1.
        var z = new SampleMatrix([3, 0, 0, 1], 2, 2);
        Assert.Equal([3.0, 1.0], RepresentationMetrics.SingularValues(z).Select(v => Math.Round(v, 10)));
        Assert.Equal(Math.Exp(h), RepresentationMetrics.EffectiveRank(RepresentationMetrics.SingularValues(z)), 10);
    }

    [Fact]
    public void Coding_rate_matches_a_hand_computed_determinant()
    {
        // n = 3 samples of d = 2 units (rows): [1,2], [0,1], [3,−1]; ε = 0.5 → α = d/(n ε²) = 2/0.75.
        var z = new SampleMatrix([1, 2, 0, 1, 3, -1], 3, 2);
        double alpha = 2 / (3 * 0.25);
        // Z Zᵀ (d×d, Z = units × samples) = [[1+0+9, 2+0−3], [2+0−3, 4+1+1]] = [[10,−1],[−1,6]].
        double a = 1 + alpha * 10, b = alpha * -1, d = 1 + alpha * 6;
        double expected = 0.5 * Math.Log(a * d - b * b);
        Assert.Equal(expected, RepresentationMetrics.CodingRate(z, 0.5), 10);
        // More units than samples takes the other Gram branch (Sylvester): one sample [1,2,2] → ½ log(1 + 3/(ε²)·9).
        var wide = new SampleMatrix([1, 2, 2], 1, 3);
        Assert.Equal(0.5 * Math.Log(1 + 3 / 0.25 * 9), RepresentationMetrics.CodingRate(wide, 0.5), 10);
    }

    [Fact]
    public void Sparsity_counts_small_entries()
    {
        var z = new SampleMatrix([0, 1e-9, -0.5, 2, 0, 3], 2, 3);
        Assert.Equal(3 / 6.0, RepresentationMetrics.Sparsity(z, 1e-6), 12);
    }

    [Fact]
    public void Cholesky_log_determinant_matches_the_product_of_eigenvalues()
    {
        double[] m = [4, 2, 0.6, 2, 5, 1, 0.6, 1, 3];
        double logdet = SymmetricMatrix.Eigenvalues(m, 3).Sum(Math.Log);
        Assert.Equal(logdet, SymmetricMatrix.LogDetSpd(m, 3), 10);
        Assert.Throws<ArithmeticException>(() => SymmetricMatrix.LogDetSpd([1, 2, 2, 1], 2));
    }

    [Fact]
    public void Logistic_regression_matches_the_closed_form_of_a_symmetric_toy()
    {
        // x = −1 (y 0) and +1 (y 1), C = 1: by symmetry b = 0 and the optimum solves w = 2(1 − σ(w)).
        var model = LogisticRegression.Fit([-1, 1], 2, 1, [0, 1], 2, 1.0);
        double lo = 0, hi = 2;
        for (int i = 0; i < 100; i++) { double mid = (lo + hi) / 2; if (mid - 2 * (1 - 1 / (1 + Math.Exp(-mid))) < 0) lo = mid; else hi = mid; }
        Assert.Equal(lo, model.Weight(0, 0), 5);
        Assert.Equal(0, model.Bias(0), 5);
    }

    [Fact]
    public void Logistic_regression_separates_separable_toys_and_satisfies_optimality()
    {
        var rng = new Random(11);
        int n = 60;
        var x = new double[n * 2]; var y = new int[n];
        for (int i = 0; i < n; i++)
        {
            y[i] = i % 2;
            x[i * 2] = (y[i] == 1 ? 2 : -2) + rng.NextDouble() - 0.5;
            x[i * 2 + 1] = rng.NextDouble() * 4 - 2;
        }
        var m = LogisticRegression.Fit(x, n, 2, y, 2, 1.0);
        Assert.All(Enumerable.Range(0, n), i => Assert.Equal(y[i], m.Predict(x.AsSpan(i * 2, 2))));
        // Stationarity of ½‖w‖² + C Σ logloss: w_k + Σ (p_i − y_i) x_ik = 0 and Σ (p_i − y_i) = 0.
        double[] g = [m.Weight(0, 0), m.Weight(0, 1)]; double gb = 0;
        for (int i = 0; i < n; i++)
        {
            double p = 1 / (1 + Math.Exp(-(m.Bias(0) + m.Weight(0, 0) * x[i * 2] + m.Weight(0, 1) * x[i * 2 + 1])));
            g[0] += (p - y[i]) * x[i * 2]; g[1] += (p - y[i]) * x[i * 2 + 1]; gb += p - y[i];
        }
        Assert.True(Math.Abs(g[0]) < 1e-4 && Math.Abs(g[1]) < 1e-4 && Math.Abs(gb) < 1e-4, $"gradient {g[0]}, {g[1]}, {gb}");

        // Three separable clusters: the multinomial model classifies them all.
        var x3 = new double[90]; var y3 = new int[45];
        double[][] centres = [[0, 3], [3, -2], [-3, -2]];
        for (int i = 0; i < 45; i++) { y3[i] = i % 3; x3[i * 2] = centres[y3[i]][0] + rng.NextDouble() - 0.5; x3[i * 2 + 1] = centres[y3[i]][1] + rng.NextDouble() - 0.5; }
        var m3 = LogisticRegression.Fit(x3, 45, 2, y3, 3, 1.0);
        Assert.All(Enumerable.Range(0, 45), i => Assert.Equal(y3[i], m3.Predict(x3.AsSpan(i * 2, 2))));
    }

    [Fact]
    public void Stratified_folds_keep_class_proportions_and_test_every_sample_once()
    {
        var labels = Enumerable.Range(0, 24).Select(i => i < 12 ? 1 : 0).ToArray();
        var folds = StratifiedKFold.Assign(labels, 5, new Random(0));
        for (int f = 0; f < 5; f++)
        {
            var members = Enumerable.Range(0, 24).Where(i => folds[i] == f).ToList();
            Assert.InRange(members.Count, 4, 5);
            Assert.InRange(members.Count(i => labels[i] == 1), 2, 3);
        }
        Assert.Equal(folds, StratifiedKFold.Assign(labels, 5, new Random(0)));
    }

    [Fact]
    public void Cart_finds_the_hand_built_split()
    {
        // Feature 1 decides the class (≤ 0.4 → 0, ≥ 0.6 → 1); feature 0 is noise.
        var rng = new Random(2);
        int n = 40;
        var data = new double[n * 2]; var y = new int[n];
        for (int i = 0; i < n; i++) { y[i] = i % 2; data[i * 2] = rng.NextDouble(); data[i * 2 + 1] = y[i] == 0 ? 0.4 * rng.NextDouble() : 0.6 + 0.4 * rng.NextDouble(); }
        var x = new SampleMatrix(data, n, 2);
        var tree = DecisionTree.Fit(x, y, 2, maxDepth: 3, minSamplesLeaf: 1);
        Assert.Equal(1, tree.Root.Feature);
        double maxClass0 = Enumerable.Range(0, n).Where(i => y[i] == 0).Max(i => data[i * 2 + 1]);
        double minClass1 = Enumerable.Range(0, n).Where(i => y[i] == 1).Min(i => data[i * 2 + 1]);
        Assert.Equal((maxClass0 + minClass1) / 2, tree.Root.Threshold, 12);
        Assert.Equal(1, tree.Depth);
        Assert.Equal(0.5, tree.Root.Impurity, 12); // Gini of a 50/50 node
        Assert.Contains("if x1 <= ", tree.ToText(f => $"x{f}", c => $"class {c}"));
    }

    [Fact]
    public void Cart_respects_depth_and_leaf_size_and_gini_is_hand_computed()
    {
        Assert.Equal(1 - (0.25 * 0.25 + 0.75 * 0.75), DecisionTree.Gini([1, 3], 4), 12);
        // XOR needs depth 2; at depth 1 the best split leaves 3/4 at most.
        var x = new SampleMatrix([0, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 1, 1, 0, 1, 1], 8, 2);
        int[] y = [0, 1, 1, 0, 0, 1, 1, 0];
        var deep = DecisionTree.Fit(x, y, 2, 2, 1);
        Assert.All(Enumerable.Range(0, 8), i => Assert.Equal(y[i], deep.Predict(x.Row(i))));
        Assert.True(DecisionTree.Fit(x, y, 2, 5, 5).Depth == 0, "a leaf size of 5 forbids splitting 8 samples");
    }

    [Fact]
    public void Jacobi_eigenvectors_reconstruct_the_matrix_and_are_orthonormal()
    {
        var rng = new Random(11);
        const int n = 7;
        var b = Enumerable.Range(0, n * n).Select(_ => rng.NextDouble() - 0.5).ToArray();
        var a = new double[n * n]; // BᵀB + a rank-deficient part: symmetric, with a repeated zero direction or two
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) for (int k = 0; k < n - 2; k++) a[i * n + j] += b[k * n + i] * b[k * n + j];
        var (values, v) = SymmetricMatrix.EigenDecomposition(a, n);
        for (int k = 1; k < n; k++) Assert.True(values[k - 1] >= values[k], "descending");
        Assert.Equal(SymmetricMatrix.Eigenvalues(a, n), values);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                double back = 0, dot = 0;
                for (int k = 0; k < n; k++) { back += v[i * n + k] * values[k] * v[j * n + k]; dot += v[k * n + i] * v[k * n + j]; }
                Assert.Equal(a[i * n + j], back, 10);
                Assert.Equal(i == j ? 1 : 0, dot, 10);
            }
    }

    [Fact]
    public void Row_gram_is_the_rows_dot_products_across_column_chunks()
    {
        var rng = new Random(12);
        int n = 5, d = 2500; // two and a half chunks
        var x = Enumerable.Range(0, n * d).Select(_ => rng.NextDouble() - 0.5).ToArray();
        var g = SymmetricMatrix.RowGram(x, n, d);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                Assert.Equal(Enumerable.Range(0, d).Sum(k => x[i * d + k] * x[j * d + k]), g[i * n + j], 9);
    }

    /// <summary>
    /// The row-space fit of a wide probe (<see cref="RowSpace"/>) is the direct fit: same logits on held-out rows, for
    /// two and for three classes, also when the training rows are rank-deficient (a duplicated row, a zero column block).
    /// </summary>
    [Theory]
    [InlineData(2, false)]
    [InlineData(3, false)]
    [InlineData(2, true)]
    [InlineData(3, true)]
    public void Fitting_in_the_row_space_gives_the_direct_fits_logits(int classes, bool duplicateRow)
    {
        var rng = new Random(20 + classes);
        int n = 40, d = 300, test = 10;
        var x = new double[n * d];
        var y = new int[n];
        for (int i = 0; i < n; i++)
        {
            y[i] = i % classes;
            for (int k = 0; k < d; k++) x[i * d + k] = k < 50 ? 0 : rng.NextDouble() - 0.5 + (k % classes == y[i] ? 0.15 : 0);
        }
        if (duplicateRow) { Array.Copy(x, 0, x, 1 * d, d); y[1] = y[0]; } // rank below the row count: the eigenvector path
        var train = Enumerable.Range(0, n - test).ToArray();
        var held = Enumerable.Range(n - test, test).ToArray();
        double c = 0.5;
        var direct = LogisticRegression.Fit(x[..((n - test) * d)], n - test, d, y[..(n - test)], classes, c);
        var gram = SymmetricMatrix.RowGram(x, n, d);
        var (zTrain, zTest, rank) = RowSpace.Coordinates(gram, n, train, held);
        Assert.Equal(n - test - (duplicateRow ? 1 : 0), rank);
        var inRowSpace = LogisticRegression.Fit(zTrain, n - test, rank, y[..(n - test)], classes, c);
        Assert.True(direct.Converged && inRowSpace.Converged);
        int heads = classes == 2 ? 1 : classes;
        for (int t = 0; t < test; t++)
            for (int j = 0; j < heads; j++)
            {
                double a = direct.Bias(j), b = inRowSpace.Bias(j);
                for (int k = 0; k < d; k++) a += direct.Weight(j, k) * x[held[t] * d + k];
                for (int k = 0; k < rank; k++) b += inRowSpace.Weight(j, k) * zTest[t * rank + k];
                Assert.True(Math.Abs(a - b) < 1e-4 * Math.Max(1, Math.Abs(a)), $"row {t}, head {j}: direct {a}, row space {b}");
            }
    }

    private static double[,] Orthonormal(int n, Random rng)
    {
        var q = new double[n, n];
        for (int j = 0; j < n; j++)
        {
            var v = Enumerable.Range(0, n).Select(_ => rng.NextDouble() - 0.5).ToArray();
            for (int k = 0; k < j; k++)
            {
                double dot = 0; for (int i = 0; i < n; i++) dot += v[i] * q[i, k];
                for (int i = 0; i < n; i++) v[i] -= dot * q[i, k];
            }
            double norm = Math.Sqrt(v.Sum(t => t * t));
            for (int i = 0; i < n; i++) q[i, j] = v[i] / norm;
        }
        return q;
    }
}
