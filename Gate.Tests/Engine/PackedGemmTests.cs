using Gate.Core.Engine;

namespace Gate.Tests.Engine;

/// <summary>
/// The packed GEMM (large convolutions, forward and input gradient) against a naive float64 triple loop, on sizes that
/// are not multiples of its blocks (MR 6, NR 32, KC 128, MC 384, NC 512), in its three modes, with padded leading
/// dimensions whose padding must stay untouched, and with A packed from its transpose — by the 256-bit (AVX2) kernel
/// and, where the CPU has AVX-512, the 512-bit one.
/// </summary>
public class PackedGemmTests
{
    [Theory]
    [InlineData(1, 1, 1, false)]
    [InlineData(6, 128, 32, false)]       // exactly one tile and one K panel
    [InlineData(7, 129, 33, false)]       // one past each: a one-row tile, a one-deep panel, a one-column strip
    [InlineData(5, 3, 2, false)]          // smaller than one tile in every direction
    [InlineData(13, 257, 97, true)]       // primes across two K panels; parallel flag on a small product (stays serial)
    [InlineData(97, 300, 1031, true)]     // N past two NC blocks, split by columns across the cores
    [InlineData(401, 131, 70, true)]      // M past one MC block, few columns: split by row tiles across the cores
    [InlineData(64, 576, 1024, true)]     // ResNet's 64-channel 3×3 layer, one sample
    [InlineData(2, 1, 1000, false)]       // K = 1
    public void Packed_gemm_matches_naive_product(int m, int k, int n, bool parallel)
    {
        if (!PackedGemm.IsSupported) Assert.Skip("the packed GEMM needs AVX-512 or AVX2 with FMA; this machine's convolutions use the blocked GEMM");
        var r = new Random(m * 7919 + k * 31 + n);
        float F() => (float)(r.NextDouble() * 2 - 1);
        int ldb = n + 3, ldc = n + 5;
        var a = Enumerable.Range(0, m * k).Select(_ => F()).ToArray();
        var aT = new float[k * m];
        for (int i = 0; i < m; i++) for (int p = 0; p < k; p++) aT[p * m + i] = a[i * k + p];
        var b = Enumerable.Range(0, k * ldb).Select(_ => F()).ToArray();
        var c0 = Enumerable.Range(0, m * ldc).Select(_ => F()).ToArray();
        var bias = Enumerable.Range(0, m).Select(_ => F()).ToArray();
        foreach (var wide in PackedGemm.Wide ? new[] { true, false } : [false])
        foreach (var transposed in new[] { false, true })
        {
            var packed = transposed ? new PackedGemm.PackedA(aT, m, k, 1, m) : new PackedGemm.PackedA(a, m, k, k, 1);
            foreach (var (accumulate, withBias) in new[] { (false, false), (true, false), (false, true) })
            {
                var c = (float[])c0.Clone();
                PackedGemm.Multiply(packed, b, ldb, c, ldc, n, accumulate, withBias ? bias : default, parallel, wide);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < ldc; j++)
                    {
                        if (j >= n)
                        {
                            Assert.True(c[i * ldc + j] == c0[i * ldc + j], $"C[{i},{j}] past N was written");
                            continue;
                        }
                        double s = accumulate ? c0[i * ldc + j] : withBias ? bias[i] : 0;
                        for (int p = 0; p < k; p++) s += (double)a[i * k + p] * b[p * ldb + j];
                        Assert.True(Math.Abs(c[i * ldc + j] - s) <= 1e-4 * (1 + Math.Sqrt(k)), $"C[{i},{j}] = {c[i * ldc + j]}, expected {s} (accumulate={accumulate}, bias={withBias}, transposed={transposed}, wide={wide})");
                    }
            }
        }
    }

    [Fact]
    public void Operands_smaller_than_their_shape_are_refused()
    {
        if (!PackedGemm.IsSupported) Assert.Skip("the packed GEMM needs AVX-512 or AVX2 with FMA");
        var packed = new PackedGemm.PackedA(new float[12], 3, 4, 4, 1);
        Assert.Throws<ArgumentException>(() => PackedGemm.Multiply(packed, new float[4 * 5 - 1], 5, new float[3 * 5], 5, 5, false, default, false));
        Assert.Throws<ArgumentException>(() => PackedGemm.Multiply(packed, new float[4 * 5], 5, new float[3 * 5 - 1], 5, 5, false, default, false));
        Assert.Throws<ArgumentException>(() => PackedGemm.Multiply(packed, new float[4 * 5], 5, new float[3 * 5], 5, 5, false, new float[2], false));
        Assert.Throws<ArgumentException>(() => new PackedGemm.PackedA(new float[11], 3, 4, 4, 1));
    }
}
