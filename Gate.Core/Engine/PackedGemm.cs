using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Gate.Core.Engine;

/// <summary>
/// GEMM for large shapes (the convolutions of ResNet-sized models, forward and input gradient): C[M, N] (ldc) =
/// A · B (+ a bias per row of C), or C += A · B. A is packed once into <see cref="PackedA"/> (a convolution's
/// weights, cached by the caller); B is packed per call into K×NR strips, so the micro-kernel reads both operands
/// sequentially. Loop order: columns in NC blocks, K in KC panels (B's block packed once per panel, in L2), rows in MC
/// blocks of A (in L2), then each KC×NR strip of B (in L1) against every MR-row micro-panel of A. The 6×32 micro-kernel
/// keeps twelve 512-bit accumulators in registers (the 32 vector registers of AVX-512); without AVX-512 (AVX2 + FMA)
/// the same packed strip is done as two 6×16 halves with twelve 256-bit accumulators (15 of AVX2's 16 registers), so
/// one packing serves both. Edge tiles run the kernel into a scratch tile, so C is never touched outside [M, N]. The unpacked blocked GEMM in <see cref="Kernels"/>
/// reads B in place from L2 with strided rows, which held these shapes to about 40 GFLOP/s on two cores.
/// </summary>
internal static class PackedGemm
{
    public const int MR = 6, NR = 32, KC = 128, MC = 384, NC = 512;

    /// <summary>Whether this CPU runs the 512-bit kernel; else the 256-bit one.</summary>
    public static bool Wide => Vector512.IsHardwareAccelerated;

    /// <summary>The kernels need AVX-512 or AVX2 with FMA; elsewhere callers keep the blocked GEMM.</summary>
    public static bool IsSupported => Wide || (Vector256.IsHardwareAccelerated && Fma.IsSupported);

    /// <summary>
    /// A [M, K] packed as K panels of KC; within a panel, MR-row tiles (rows past M zero), each [kc, MR] contiguous.
    /// </summary>
    public sealed class PackedA
    {
        public int M { get; }
        public int K { get; }
        internal readonly float[] Data;
        internal int Tiles => (M + MR - 1) / MR;

        /// <summary>Packs A with element (i, p) at a[i·rowStride + p·colStride]: (k, 1) for row-major A, (1, m) for the transpose of a row-major [K, M] matrix.</summary>
        public PackedA(ReadOnlySpan<float> a, int m, int k, int rowStride, int colStride)
        {
            if (m <= 0 || k <= 0) throw new ArgumentException("PackedA needs M, K > 0");
            if ((long)(m - 1) * rowStride + (long)(k - 1) * colStride >= a.Length) throw new ArgumentException("A is smaller than its strides say");
            (M, K) = (m, k);
            int tiles = Tiles;
            Data = new float[(long)tiles * MR * k > int.MaxValue ? throw new ArgumentException("A too large to pack") : tiles * MR * k];
            for (int p0 = 0; p0 < k; p0 += KC)
            {
                int kc = Math.Min(KC, k - p0), panel = p0 * tiles * MR;
                for (int t = 0; t < tiles; t++)
                {
                    int dst = panel + t * kc * MR;
                    for (int r = 0; r < MR; r++)
                    {
                        int i = t * MR + r;
                        if (i >= m) continue;   // Data is zero there
                        for (int p = 0; p < kc; p++) Data[dst + p * MR + r] = a[i * rowStride + (p0 + p) * colStride];
                    }
                }
            }
        }

        internal int PanelOffset(int p0) => p0 * Tiles * MR;
    }

    /// <summary>
    /// C[i, j] (at c[i·ldc + j], i &lt; M, j &lt; n) = Σ_p A[i, p] · B[p, j] (+ rowBias[i]), or += with
    /// <paramref name="accumulate"/>; B[p, j] is at b[p·ldb + j]. With <paramref name="parallel"/> the columns are
    /// split across the cores (for a batch of one, where the caller has no samples to split).
    /// </summary>
    /// <param name="wide">the 512-bit kernel (true) or the 256-bit one (false); null: this CPU's (<see cref="Wide"/>)</param>
    public static void Multiply(PackedA a, ReadOnlySpan<float> b, int ldb, Span<float> c, int ldc, int n, bool accumulate, ReadOnlySpan<float> rowBias, bool parallel,
        bool? wide = null)
    {
        int m = a.M, k = a.K;
        if (!IsSupported) throw new PlatformNotSupportedException("PackedGemm needs AVX-512, or AVX2 with FMA");
        bool w = wide ?? Wide;
        if (w && !Wide) throw new PlatformNotSupportedException("this CPU has no 512-bit vectors");
        if (n <= 0) return;
        if (ldb < n || ldc < n) throw new ArgumentException("ldb and ldc must be at least N");
        if ((long)(k - 1) * ldb + n > b.Length) throw new ArgumentException("B is smaller than K·ldb");
        if ((long)(m - 1) * ldc + n > c.Length) throw new ArgumentException("C is smaller than M·ldc");
        if (accumulate && !rowBias.IsEmpty) throw new ArgumentException("a row bias cannot be combined with accumulate");
        if (!rowBias.IsEmpty && rowBias.Length < m) throw new ArgumentException("row bias shorter than M");
        // Columns split across the cores where there are enough NR strips for each, else row tiles (each
        // core then packs the same B, which is cheap beside M·K·N when M is large); small products stay serial.
        int cores = parallel && (long)m * k * n >= ParallelWork ? Environment.ProcessorCount : 1;
        int strips = (n + NR - 1) / NR, tiles = a.Tiles;
        bool byColumns = strips >= 4 * cores;
        int threads = byColumns ? cores : Math.Min(cores, tiles / 2);
        if (threads <= 1) { Columns(a, b, ldb, c, ldc, 0, n, 0, tiles, accumulate, rowBias, w); return; }
        unsafe
        {
            fixed (float* pb = b, pc = c, pbias = rowBias)
            {
                var (ib, ic, ibias) = ((nint)pb, (nint)pc, (nint)pbias);
                int lb = b.Length, lc = c.Length, lbias = rowBias.Length;
                ForkJoin.For(threads, t =>
                {
                    // Column ranges in whole NR strips, so only the last one has a ragged edge.
                    int j0 = 0, j1 = n, t0 = 0, t1 = tiles;
                    if (byColumns) { j0 = Math.Min(n, (int)((long)strips * t / threads) * NR); j1 = Math.Min(n, (int)((long)strips * (t + 1) / threads) * NR); }
                    else { t0 = (int)((long)tiles * t / threads); t1 = (int)((long)tiles * (t + 1) / threads); }
                    if (j0 < j1 && t0 < t1)
                        Columns(a, new ReadOnlySpan<float>((float*)ib, lb), ldb, new Span<float>((float*)ic, lc), ldc, j0, j1, t0, t1, accumulate, new ReadOnlySpan<float>((float*)ibias, lbias), w);
                });
            }
        }
    }

    /// <summary>Multiply-adds below which a product stays on one thread.</summary>
    private const long ParallelWork = 1 << 20;

    /// <summary>Columns [j0, j1) of row tiles [tBegin, tEnd) of C, on the calling thread, with its own pack of B.</summary>
    private static void Columns(PackedA a, ReadOnlySpan<float> b, int ldb, Span<float> c, int ldc, int j0, int j1, int tBegin, int tEnd, bool accumulate, ReadOnlySpan<float> rowBias,
        bool wide)
    {
        int m = a.M, k = a.K;
        var bp = System.Buffers.ArrayPool<float>.Shared.Rent(KC * NC);
        try
        {
            for (int jc = j0; jc < j1; jc += NC)
            {
                int nc = Math.Min(NC, j1 - jc), strips = (nc + NR - 1) / NR;
                for (int p0 = 0; p0 < k; p0 += KC)
                {
                    int kc = Math.Min(KC, k - p0);
                    PackB(b, ldb, p0, kc, jc, nc, bp);
                    // The first panel writes C (bias or zero start) unless accumulating; later panels add onto it.
                    bool load = accumulate || p0 > 0;
                    var bias = load ? default : rowBias;
                    int panel = a.PanelOffset(p0);
                    for (int t0 = tBegin; t0 < tEnd; t0 += MC / MR)
                    {
                        int t1 = Math.Min(tEnd, t0 + MC / MR);
                        for (int s = 0; s < strips; s++)
                        {
                            int j = jc + s * NR, cols = Math.Min(NR, j1 - j);
                            for (int t = t0; t < t1; t++)
                            {
                                int i = t * MR, rows = Math.Min(MR, m - i);
                                Tile(a.Data, panel + t * kc * MR, bp, s * kc * NR, kc, c, i, j, ldc, rows, cols, load, bias, wide);
                            }
                        }
                    }
                }
            }
        }
        finally { System.Buffers.ArrayPool<float>.Shared.Return(bp); }
    }

    /// <summary>B[p0 .. p0+kc, jc .. jc+nc) into NR-wide strips [kc, NR], zero past nc.</summary>
    private static void PackB(ReadOnlySpan<float> b, int ldb, int p0, int kc, int jc, int nc, float[] bp)
    {
        for (int s = 0, strips = (nc + NR - 1) / NR; s < strips; s++)
        {
            int j = s * NR, w = Math.Min(NR, nc - j), dst = s * kc * NR;
            for (int p = 0; p < kc; p++)
            {
                var src = b.Slice((p0 + p) * ldb + jc + j, w);
                var d = bp.AsSpan(dst + p * NR, NR);
                src.CopyTo(d);
                if (w < NR) d[w..].Clear();
            }
        }
    }

    /// <summary>One MR×NR tile: straight into C when whole, else through a scratch tile holding only C's valid part.</summary>
    [SkipLocalsInit]
    private static void Tile(float[] ap, int aOff, float[] bp, int bOff, int kc, Span<float> c, int i, int j, int ldc, int rows, int cols, bool load, ReadOnlySpan<float> bias,
        bool wide)
    {
        ref float ra = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(ap), aOff);
        ref float rb = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(bp), bOff);
        Span<float> b6 = stackalloc float[MR];
        if (!bias.IsEmpty) { b6.Clear(); bias.Slice(i, rows).CopyTo(b6); }
        if (rows == MR && cols == NR)
        {
            Kernel(ref ra, ref rb, kc, ref c[i * ldc + j], ldc, load, bias.IsEmpty ? ReadOnlySpan<float>.Empty : b6, wide);
            return;
        }
        Span<float> t = stackalloc float[MR * NR];
        if (load)
        {
            t.Clear();
            for (int r = 0; r < rows; r++) c.Slice((i + r) * ldc + j, cols).CopyTo(t.Slice(r * NR, cols));
        }
        Kernel(ref ra, ref rb, kc, ref t[0], NR, load, bias.IsEmpty ? ReadOnlySpan<float>.Empty : b6, wide);
        for (int r = 0; r < rows; r++) t.Slice(r * NR, cols).CopyTo(c.Slice((i + r) * ldc + j, cols));
    }

    /// <summary>C[6, 32] (+)= A-panel [kc, 6] · B-strip [kc, 32], by the 512-bit kernel or as two 16-column halves by the 256-bit one.</summary>
    private static void Kernel(ref float a, ref float b, int kc, ref float c, int ldc, bool load, ReadOnlySpan<float> bias, bool wide)
    {
        if (wide) { Kernel512(ref a, ref b, kc, ref c, ldc, load, bias); return; }
        Kernel256(ref a, ref b, kc, ref c, ldc, load, bias);
        Kernel256(ref a, ref Unsafe.Add(ref b, NR / 2), kc, ref Unsafe.Add(ref c, NR / 2), ldc, load, bias);
    }

    /// <summary>C[6, 32] (+)= A-panel [kc, 6] · B-strip [kc, 32]: twelve accumulators, two B vectors and one broadcast per row per step.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel512(ref float a, ref float b, int kc, ref float c, int ldc, bool load, ReadOnlySpan<float> bias)
    {
        ref float c0 = ref c;
        ref float c1 = ref Unsafe.Add(ref c0, ldc);
        ref float c2 = ref Unsafe.Add(ref c1, ldc);
        ref float c3 = ref Unsafe.Add(ref c2, ldc);
        ref float c4 = ref Unsafe.Add(ref c3, ldc);
        ref float c5 = ref Unsafe.Add(ref c4, ldc);
        Vector512<float> x00, x01, x10, x11, x20, x21, x30, x31, x40, x41, x50, x51;
        if (load)
        {
            x00 = Vector512.LoadUnsafe(ref c0); x01 = Vector512.LoadUnsafe(ref c0, 16);
            x10 = Vector512.LoadUnsafe(ref c1); x11 = Vector512.LoadUnsafe(ref c1, 16);
            x20 = Vector512.LoadUnsafe(ref c2); x21 = Vector512.LoadUnsafe(ref c2, 16);
            x30 = Vector512.LoadUnsafe(ref c3); x31 = Vector512.LoadUnsafe(ref c3, 16);
            x40 = Vector512.LoadUnsafe(ref c4); x41 = Vector512.LoadUnsafe(ref c4, 16);
            x50 = Vector512.LoadUnsafe(ref c5); x51 = Vector512.LoadUnsafe(ref c5, 16);
        }
        else if (!bias.IsEmpty)
        {
            x00 = x01 = Vector512.Create(bias[0]);
            x10 = x11 = Vector512.Create(bias[1]);
            x20 = x21 = Vector512.Create(bias[2]);
            x30 = x31 = Vector512.Create(bias[3]);
            x40 = x41 = Vector512.Create(bias[4]);
            x50 = x51 = Vector512.Create(bias[5]);
        }
        else x00 = x01 = x10 = x11 = x20 = x21 = x30 = x31 = x40 = x41 = x50 = x51 = Vector512<float>.Zero;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector512.LoadUnsafe(ref b); var b1 = Vector512.LoadUnsafe(ref b, 16);
            var s = Vector512.Create(a);
            x00 = Vector512.FusedMultiplyAdd(s, b0, x00); x01 = Vector512.FusedMultiplyAdd(s, b1, x01);
            s = Vector512.Create(Unsafe.Add(ref a, 1));
            x10 = Vector512.FusedMultiplyAdd(s, b0, x10); x11 = Vector512.FusedMultiplyAdd(s, b1, x11);
            s = Vector512.Create(Unsafe.Add(ref a, 2));
            x20 = Vector512.FusedMultiplyAdd(s, b0, x20); x21 = Vector512.FusedMultiplyAdd(s, b1, x21);
            s = Vector512.Create(Unsafe.Add(ref a, 3));
            x30 = Vector512.FusedMultiplyAdd(s, b0, x30); x31 = Vector512.FusedMultiplyAdd(s, b1, x31);
            s = Vector512.Create(Unsafe.Add(ref a, 4));
            x40 = Vector512.FusedMultiplyAdd(s, b0, x40); x41 = Vector512.FusedMultiplyAdd(s, b1, x41);
            s = Vector512.Create(Unsafe.Add(ref a, 5));
            x50 = Vector512.FusedMultiplyAdd(s, b0, x50); x51 = Vector512.FusedMultiplyAdd(s, b1, x51);
            a = ref Unsafe.Add(ref a, MR);
            b = ref Unsafe.Add(ref b, NR);
        }
        x00.StoreUnsafe(ref c0); x01.StoreUnsafe(ref c0, 16);
        x10.StoreUnsafe(ref c1); x11.StoreUnsafe(ref c1, 16);
        x20.StoreUnsafe(ref c2); x21.StoreUnsafe(ref c2, 16);
        x30.StoreUnsafe(ref c3); x31.StoreUnsafe(ref c3, 16);
        x40.StoreUnsafe(ref c4); x41.StoreUnsafe(ref c4, 16);
        x50.StoreUnsafe(ref c5); x51.StoreUnsafe(ref c5, 16);
    }

    /// <summary>
    /// C[6, 16] (+)= A-panel [kc, 6] · 16 columns of a B-strip [kc, 32] (rows NR apart): the AVX2 kernel, twelve
    /// 256-bit accumulators, two B vectors and one broadcast per row per step. It mirrors <see cref="Kernel512"/> line
    /// for line: .NET 10 has no public interface over Vector256 and Vector512 to write one generic kernel with, and
    /// the twelve accumulators must stay named locals for the JIT to keep them in registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel256(ref float a, ref float b, int kc, ref float c, int ldc, bool load, ReadOnlySpan<float> bias)
    {
        ref float c0 = ref c;
        ref float c1 = ref Unsafe.Add(ref c0, ldc);
        ref float c2 = ref Unsafe.Add(ref c1, ldc);
        ref float c3 = ref Unsafe.Add(ref c2, ldc);
        ref float c4 = ref Unsafe.Add(ref c3, ldc);
        ref float c5 = ref Unsafe.Add(ref c4, ldc);
        Vector256<float> x00, x01, x10, x11, x20, x21, x30, x31, x40, x41, x50, x51;
        if (load)
        {
            x00 = Vector256.LoadUnsafe(ref c0); x01 = Vector256.LoadUnsafe(ref c0, 8);
            x10 = Vector256.LoadUnsafe(ref c1); x11 = Vector256.LoadUnsafe(ref c1, 8);
            x20 = Vector256.LoadUnsafe(ref c2); x21 = Vector256.LoadUnsafe(ref c2, 8);
            x30 = Vector256.LoadUnsafe(ref c3); x31 = Vector256.LoadUnsafe(ref c3, 8);
            x40 = Vector256.LoadUnsafe(ref c4); x41 = Vector256.LoadUnsafe(ref c4, 8);
            x50 = Vector256.LoadUnsafe(ref c5); x51 = Vector256.LoadUnsafe(ref c5, 8);
        }
        else if (!bias.IsEmpty)
        {
            x00 = x01 = Vector256.Create(bias[0]);
            x10 = x11 = Vector256.Create(bias[1]);
            x20 = x21 = Vector256.Create(bias[2]);
            x30 = x31 = Vector256.Create(bias[3]);
            x40 = x41 = Vector256.Create(bias[4]);
            x50 = x51 = Vector256.Create(bias[5]);
        }
        else x00 = x01 = x10 = x11 = x20 = x21 = x30 = x31 = x40 = x41 = x50 = x51 = Vector256<float>.Zero;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector256.LoadUnsafe(ref b); var b1 = Vector256.LoadUnsafe(ref b, 8);
            var s = Vector256.Create(a);
            x00 = Vector256.FusedMultiplyAdd(s, b0, x00); x01 = Vector256.FusedMultiplyAdd(s, b1, x01);
            s = Vector256.Create(Unsafe.Add(ref a, 1));
            x10 = Vector256.FusedMultiplyAdd(s, b0, x10); x11 = Vector256.FusedMultiplyAdd(s, b1, x11);
            s = Vector256.Create(Unsafe.Add(ref a, 2));
            x20 = Vector256.FusedMultiplyAdd(s, b0, x20); x21 = Vector256.FusedMultiplyAdd(s, b1, x21);
            s = Vector256.Create(Unsafe.Add(ref a, 3));
            x30 = Vector256.FusedMultiplyAdd(s, b0, x30); x31 = Vector256.FusedMultiplyAdd(s, b1, x31);
            s = Vector256.Create(Unsafe.Add(ref a, 4));
            x40 = Vector256.FusedMultiplyAdd(s, b0, x40); x41 = Vector256.FusedMultiplyAdd(s, b1, x41);
            s = Vector256.Create(Unsafe.Add(ref a, 5));
            x50 = Vector256.FusedMultiplyAdd(s, b0, x50); x51 = Vector256.FusedMultiplyAdd(s, b1, x51);
            a = ref Unsafe.Add(ref a, MR);
            b = ref Unsafe.Add(ref b, NR);
        }
        x00.StoreUnsafe(ref c0); x01.StoreUnsafe(ref c0, 8);
        x10.StoreUnsafe(ref c1); x11.StoreUnsafe(ref c1, 8);
        x20.StoreUnsafe(ref c2); x21.StoreUnsafe(ref c2, 8);
        x30.StoreUnsafe(ref c3); x31.StoreUnsafe(ref c3, 8);
        x40.StoreUnsafe(ref c4); x41.StoreUnsafe(ref c4, 8);
        x50.StoreUnsafe(ref c5); x51.StoreUnsafe(ref c5, 8);
    }
}
