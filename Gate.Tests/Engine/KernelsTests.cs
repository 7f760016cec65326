using Gate.Core.Engine;

namespace Gate.Tests.Engine;

/// <summary>The blocked SIMD GEMM against a naive float64 triple loop, on sizes that exercise every edge path.</summary>
public class KernelsTests
{
    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(3, 5, 7)]          // fewer than 4 rows: axpy path only
    [InlineData(4, 3, 16)]         // exactly one micro-kernel tile (for 8-wide vectors)
    [InlineData(9, 17, 37)]        // row and column tails
    [InlineData(70, 300, 40)]      // K crosses a 256 panel; several parallel row blocks
    [InlineData(33, 20, 530)]      // N crosses a 512 strip
    [InlineData(8, 9, 2000)]       // few rows, many columns: column strips run in parallel
    [InlineData(5, 72, 1531)]      // column strips with row and column tails
    public void Blocked_gemm_matches_naive_product(int m, int k, int n)
    {
        var r = new Random(m * 1000 + k * 10 + n);
        var a = Enumerable.Range(0, m * k).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray();
        var b = Enumerable.Range(0, k * n).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray();
        var c0 = Enumerable.Range(0, m * n).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray();
        foreach (bool accumulate in new[] { false, true })
        {
            var c = (float[])c0.Clone();
            Kernels.MatMul(a, b, c, m, k, n, accumulate);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double s = accumulate ? c0[i * n + j] : 0;
                    for (int p = 0; p < k; p++) s += (double)a[i * k + p] * b[p * n + j];
                    Assert.True(Math.Abs(c[i * n + j] - s) <= 1e-4 * (1 + Math.Abs(s)), $"C[{i},{j}] = {c[i * n + j]}, expected {s} (accumulate={accumulate})");
                }
        }
    }
}
