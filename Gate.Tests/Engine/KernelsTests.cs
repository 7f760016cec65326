using Gate.Core.Engine;

namespace Gate.Tests.Engine;

/// <summary>The blocked SIMD GEMM against a naive float64 triple loop, on sizes that exercise every edge path.</summary>
public class KernelsTests
{
    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(6, 0, 5)]          // K = 0: C is the bias (or zero), or unchanged when accumulating
    [InlineData(3, 5, 7)]          // fewer than 4 rows: axpy path only
    [InlineData(4, 3, 16)]         // exactly one micro-kernel tile (for 8-wide vectors)
    [InlineData(9, 17, 37)]        // row and column tails
    [InlineData(70, 300, 40)]      // K crosses a 256 panel; several parallel row blocks
    [InlineData(33, 20, 530)]      // N crosses a 512 strip
    [InlineData(8, 9, 2000)]       // few rows, many columns: column strips run in parallel
    [InlineData(5, 72, 1531)]      // column strips with row and column tails
    [InlineData(27, 40, 32)]       // no column tail: six-row tiles (AVX-512 machines), then a four-row tile and a row
    [InlineData(50, 300, 48)]      // six-row tiles across two K panels and parallel row blocks
    [InlineData(256, 32, 10)]      // a class head: only a column tail, packed once and shared by parallel row blocks
    [InlineData(40, 300, 10)]      // the shared tail pack read from the second K panel
    [InlineData(64, 300, 530)]     // shared tail pack in the last of two N blocks, across two K panels
    public void Blocked_gemm_matches_naive_product(int m, int k, int n)
    {
        var r = new Random(m * 1000 + k * 10 + n);
        var a = Enumerable.Range(0, m * k).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray();
        var b = Enumerable.Range(0, k * n).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray();
        var c0 = Enumerable.Range(0, m * n).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray();
        var bias = Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray();
        // Overwrite (C's old contents must not leak in), accumulate, and overwrite with a column bias.
        foreach (var (accumulate, withBias) in new[] { (false, false), (true, false), (false, true) })
        {
            var c = (float[])c0.Clone();
            Kernels.MatMul(a, b, c, m, k, n, accumulate, withBias ? bias : default);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double s = accumulate ? c0[i * n + j] : withBias ? bias[j] : 0;
                    for (int p = 0; p < k; p++) s += (double)a[i * k + p] * b[p * n + j];
                    Assert.True(Math.Abs(c[i * n + j] - s) <= 1e-4 * (1 + Math.Abs(s)), $"C[{i},{j}] = {c[i * n + j]}, expected {s} (accumulate={accumulate}, bias={withBias})");
                }
        }
    }
}
