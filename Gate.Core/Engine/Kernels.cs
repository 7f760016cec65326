using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Gate.Core.Tensors;

namespace Gate.Core.Engine;

/// <summary>Numeric building blocks shared by several operators (matrix products, broadcasting, reductions).</summary>
public static class Kernels
{
    /// <summary>Work below this many multiply-adds stays on one thread: scheduling costs more than it saves.</summary>
    private const long ParallelThreshold = 1 << 16;

    /// <summary>
    /// C[M,N] (+)= A[M,K] · B[K,N], all row-major and contiguous. Cache-blocked: K is cut into panels of
    /// <see cref="KBlock"/> rows of B and N into strips of <see cref="NBlock"/> columns, so a B panel stays in L2
    /// while every row block of A streams past it. Inside, a 4×(2 vectors) register-blocked SIMD micro-kernel does
    /// the multiply-adds; the column edge runs the same kernel on a zero-padded copy, and leftover rows fall back to a
    /// SIMD axpy. Row blocks run in parallel.
    /// </summary>
    public static void MatMul(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n, bool accumulate = false)
    {
        if (!accumulate) c[..(m * n)].Clear();
        if (m == 0 || n == 0 || k == 0) return;
        long work = (long)m * k * n;
        int rowBlocks = (m + RowsPerTask - 1) / RowsPerTask;
        // Few rows but many columns (a batched convolution): split the columns across threads instead.
        int colStrips = rowBlocks >= Environment.ProcessorCount ? 1 : Math.Max(1, Math.Min((n + NBlock - 1) / NBlock, 4 * Environment.ProcessorCount));
        if (work < ParallelThreshold || rowBlocks * colStrips == 1)
        {
            Blocked(a, b, c, 0, m, k, n, 0, n);
            return;
        }
        int stripWidth = (n + colStrips - 1) / colStrips;
        unsafe
        {
            fixed (float* pa = a, pb = b, pc = c)
            {
                var (ia, ib, ic) = ((nint)pa, (nint)pb, (nint)pc);
                int la = a.Length, lb = b.Length, lc = c.Length;
                Parallel.For(0, rowBlocks * colStrips, tile =>
                {
                    int blk = tile / colStrips, strip = tile % colStrips;
                    int r0 = blk * RowsPerTask, r1 = Math.Min(m, r0 + RowsPerTask);
                    int j0 = strip * stripWidth, j1 = Math.Min(n, j0 + stripWidth);
                    if (j0 < j1) Blocked(new ReadOnlySpan<float>((float*)ia, la), new ReadOnlySpan<float>((float*)ib, lb), new Span<float>((float*)ic, lc), r0, r1, k, n, j0, j1);
                });
            }
        }
    }

    private const int KBlock = 256, NBlock = 512, RowsPerTask = 32;

    /// <summary>Rows [r0, r1) and columns [jStart, jEnd) of C += A·B, blocked over K and N.</summary>
    private static void Blocked(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int r0, int r1, int k, int n, int jStart, int jEnd)
    {
        for (int p0 = 0; p0 < k; p0 += KBlock)
        {
            int kc = Math.Min(KBlock, k - p0);
            for (int j0 = jStart; j0 < jEnd; j0 += NBlock)
            {
                int nc = Math.Min(NBlock, jEnd - j0);
                int step = 2 * Vector<float>.Count, ncVec = nc - nc % step, tail = nc - ncVec;
                int i = r0;
                if (i + 4 <= r1)
                {
                    // Columns past the last full two-vector strip: B's tail packed once into a zero-padded strip so
                    // that narrow outputs (a 10-class head, 16-pixel conv planes) still run the register kernel.
                    float[]? bt = null;
                    if (tail > 0)
                    {
                        bt = System.Buffers.ArrayPool<float>.Shared.Rent(kc * step);
                        for (int p = 0; p < kc; p++)
                        {
                            var dst = bt.AsSpan(p * step, step);
                            b.Slice((p0 + p) * n + j0 + ncVec, tail).CopyTo(dst);
                            dst[tail..].Clear();
                        }
                    }
                    for (; i + 4 <= r1; i += 4)
                    {
                        MicroKernel4(a, b, c, i, p0, kc, j0, ncVec, k, n);
                        if (bt is not null) TailKernel4(a, bt, c, i, p0, kc, j0 + ncVec, tail, k, n);
                    }
                    if (bt is not null) System.Buffers.ArrayPool<float>.Shared.Return(bt);
                }
                for (; i < r1; i++)
                    for (int p = p0; p < p0 + kc; p++)
                    {
                        float s = a[i * k + p];
                        if (s == 0f) continue;
                        var cRow = c.Slice(i * n + j0, nc);
                        TensorPrimitives.MultiplyAdd(b.Slice(p * n + j0, nc), s, cRow, cRow);
                    }
            }
        }
    }

    /// <summary>Four rows of C over columns [j0, j0+nc), nc a multiple of two vectors: 8 vector accumulators held in registers across the K panel.</summary>
    private static void MicroKernel4(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int i, int p0, int kc, int j0, int nc, int k, int n)
    {
        int vl = Vector<float>.Count, step = 2 * vl;
        ref float ra = ref MemoryMarshal.GetReference(a);
        ref float rb = ref MemoryMarshal.GetReference(b);
        ref float rc = ref MemoryMarshal.GetReference(c);
        int j = j0, jEnd = j0 + nc;
        for (; j + step <= jEnd; j += step)
        {
            ref float c0 = ref Unsafe.Add(ref rc, i * n + j);
            ref float c1 = ref Unsafe.Add(ref c0, n);
            ref float c2 = ref Unsafe.Add(ref c1, n);
            ref float c3 = ref Unsafe.Add(ref c2, n);
            Vector<float> x00 = Vector.LoadUnsafe(ref c0), x01 = Vector.LoadUnsafe(ref c0, (nuint)vl);
            Vector<float> x10 = Vector.LoadUnsafe(ref c1), x11 = Vector.LoadUnsafe(ref c1, (nuint)vl);
            Vector<float> x20 = Vector.LoadUnsafe(ref c2), x21 = Vector.LoadUnsafe(ref c2, (nuint)vl);
            Vector<float> x30 = Vector.LoadUnsafe(ref c3), x31 = Vector.LoadUnsafe(ref c3, (nuint)vl);
            ref float a0 = ref Unsafe.Add(ref ra, i * k + p0);
            for (int p = 0; p < kc; p++)
            {
                ref float bp = ref Unsafe.Add(ref rb, (p0 + p) * n + j);
                var b0 = Vector.LoadUnsafe(ref bp); var b1 = Vector.LoadUnsafe(ref bp, (nuint)vl);
                var s0 = new Vector<float>(Unsafe.Add(ref a0, p));
                var s1 = new Vector<float>(Unsafe.Add(ref a0, k + p));
                var s2 = new Vector<float>(Unsafe.Add(ref a0, 2 * k + p));
                var s3 = new Vector<float>(Unsafe.Add(ref a0, 3 * k + p));
                x00 = Vector.FusedMultiplyAdd(s0, b0, x00); x01 = Vector.FusedMultiplyAdd(s0, b1, x01);
                x10 = Vector.FusedMultiplyAdd(s1, b0, x10); x11 = Vector.FusedMultiplyAdd(s1, b1, x11);
                x20 = Vector.FusedMultiplyAdd(s2, b0, x20); x21 = Vector.FusedMultiplyAdd(s2, b1, x21);
                x30 = Vector.FusedMultiplyAdd(s3, b0, x30); x31 = Vector.FusedMultiplyAdd(s3, b1, x31);
            }
            x00.StoreUnsafe(ref c0); x01.StoreUnsafe(ref c0, (nuint)vl);
            x10.StoreUnsafe(ref c1); x11.StoreUnsafe(ref c1, (nuint)vl);
            x20.StoreUnsafe(ref c2); x21.StoreUnsafe(ref c2, (nuint)vl);
            x30.StoreUnsafe(ref c3); x31.StoreUnsafe(ref c3, (nuint)vl);
        }
    }

    /// <summary>
    /// Four rows of C over the <paramref name="tail"/> (&lt; two vectors) columns from <paramref name="jt"/>, reading B
    /// from the packed strip <paramref name="bt"/> ([kc, 2 vectors], zero beyond the tail) and C through a padded copy.
    /// </summary>
    private static void TailKernel4(ReadOnlySpan<float> a, float[] bt, Span<float> c, int i, int p0, int kc, int jt, int tail, int k, int n)
    {
        int vl = Vector<float>.Count, step = 2 * vl;
        Span<float> cp = stackalloc float[4 * step];
        cp.Clear();
        for (int r = 0; r < 4; r++) c.Slice((i + r) * n + jt, tail).CopyTo(cp.Slice(r * step, tail));
        ref float rc = ref MemoryMarshal.GetReference(cp);
        Vector<float> x00 = Vector.LoadUnsafe(ref rc), x01 = Vector.LoadUnsafe(ref rc, (nuint)vl);
        Vector<float> x10 = Vector.LoadUnsafe(ref rc, (nuint)step), x11 = Vector.LoadUnsafe(ref rc, (nuint)(step + vl));
        Vector<float> x20 = Vector.LoadUnsafe(ref rc, (nuint)(2 * step)), x21 = Vector.LoadUnsafe(ref rc, (nuint)(2 * step + vl));
        Vector<float> x30 = Vector.LoadUnsafe(ref rc, (nuint)(3 * step)), x31 = Vector.LoadUnsafe(ref rc, (nuint)(3 * step + vl));
        ref float a0 = ref Unsafe.Add(ref MemoryMarshal.GetReference(a), i * k + p0);
        ref float rb = ref MemoryMarshal.GetArrayDataReference(bt);
        for (int p = 0; p < kc; p++)
        {
            ref float bp = ref Unsafe.Add(ref rb, p * step);
            var b0 = Vector.LoadUnsafe(ref bp); var b1 = Vector.LoadUnsafe(ref bp, (nuint)vl);
            var s0 = new Vector<float>(Unsafe.Add(ref a0, p));
            var s1 = new Vector<float>(Unsafe.Add(ref a0, k + p));
            var s2 = new Vector<float>(Unsafe.Add(ref a0, 2 * k + p));
            var s3 = new Vector<float>(Unsafe.Add(ref a0, 3 * k + p));
            x00 = Vector.FusedMultiplyAdd(s0, b0, x00); x01 = Vector.FusedMultiplyAdd(s0, b1, x01);
            x10 = Vector.FusedMultiplyAdd(s1, b0, x10); x11 = Vector.FusedMultiplyAdd(s1, b1, x11);
            x20 = Vector.FusedMultiplyAdd(s2, b0, x20); x21 = Vector.FusedMultiplyAdd(s2, b1, x21);
            x30 = Vector.FusedMultiplyAdd(s3, b0, x30); x31 = Vector.FusedMultiplyAdd(s3, b1, x31);
        }
        x00.StoreUnsafe(ref rc); x01.StoreUnsafe(ref rc, (nuint)vl);
        x10.StoreUnsafe(ref rc, (nuint)step); x11.StoreUnsafe(ref rc, (nuint)(step + vl));
        x20.StoreUnsafe(ref rc, (nuint)(2 * step)); x21.StoreUnsafe(ref rc, (nuint)(2 * step + vl));
        x30.StoreUnsafe(ref rc, (nuint)(3 * step)); x31.StoreUnsafe(ref rc, (nuint)(3 * step + vl));
        for (int r = 0; r < 4; r++) cp.Slice(r * step, tail).CopyTo(c.Slice((i + r) * n + jt, tail));
    }

    /// <summary>Row-major transpose of an [rows, cols] matrix.</summary>
    public static float[] Transpose(ReadOnlySpan<float> src, int rows, int cols)
    {
        var dst = new float[rows * cols];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                dst[c * rows + r] = src[r * cols + c];
        return dst;
    }

    public static Tensor AddSameShape(Tensor x, Tensor y)
    {
        if (x.Floats is not null && y.Floats is not null)
        {
            var r = new float[x.Length];
            TensorPrimitives.Add(x.Floats.AsSpan(0, x.Length), y.Floats.AsSpan(0, y.Length), r);
            return Tensor.FromFloats(x.Shape, r, x.Type);
        }
        if (x.Doubles is not null && y.Doubles is not null)
        {
            var r = new double[x.Length];
            TensorPrimitives.Add(x.Doubles.AsSpan(0, x.Length), y.Doubles.AsSpan(0, y.Length), r);
            return Tensor.FromDoubles(x.Shape, r);
        }
        throw new InvalidOperationException($"cannot add gradients of types {x.Type} and {y.Type}");
    }

    public static float[] Floats(Tensor t, OpContext ctx, string what)
    {
        if (t.Floats is null) throw new OperatorException($"{ctx.Where}: {what} must be a float tensor, got {t.Type.OnnxName()}");
        return t.Floats;
    }
}

/// <summary>ONNX multidirectional (numpy-style) broadcasting.</summary>
public static class Broadcast
{
    public static int[] Shape(int[] a, int[] b, string where)
    {
        int r = Math.Max(a.Length, b.Length);
        var s = new int[r];
        for (int i = 0; i < r; i++)
        {
            int da = i - (r - a.Length) >= 0 ? a[i - (r - a.Length)] : 1;
            int db = i - (r - b.Length) >= 0 ? b[i - (r - b.Length)] : 1;
            if (da != db && da != 1 && db != 1)
                throw new OperatorException($"{where}: shapes [{string.Join(",", a)}] and [{string.Join(",", b)}] cannot be broadcast");
            s[i] = da == 1 ? db : da;
        }
        return s;
    }

    /// <summary>For each output element, the index of the source element it reads (stride 0 on broadcast axes).</summary>
    public static int[] SourceIndex(int[] src, int[] outShape)
    {
        int n = Tensor.ElementCount(outShape);
        var idx = new int[n];
        int r = outShape.Length, off = r - src.Length;
        var strides = new int[r];
        int st = 1;
        for (int i = r - 1; i >= 0; i--)
        {
            int d = i - off >= 0 ? src[i - off] : 1;
            strides[i] = d == 1 ? 0 : st;
            st *= d;
        }
        var counter = new int[r];
        int cur = 0;
        for (int e = 0; e < n; e++)
        {
            idx[e] = cur;
            for (int ax = r - 1; ax >= 0; ax--)
            {
                counter[ax]++;
                cur += strides[ax];
                if (counter[ax] < outShape[ax]) break;
                cur -= strides[ax] * counter[ax];
                counter[ax] = 0;
            }
        }
        return idx;
    }

    /// <summary>Sums a gradient of the broadcast shape back down to an operand's shape.</summary>
    public static Tensor ReduceTo(Tensor grad, int[] shape)
    {
        if (grad.Shape.SequenceEqual(shape)) return grad;
        var idx = SourceIndex(shape, grad.Shape);
        int n = Tensor.ElementCount(shape);
        if (grad.Doubles is not null)
        {
            var r = new double[n];
            for (int e = 0; e < idx.Length; e++) r[idx[e]] += grad.Doubles[e];
            return Tensor.FromDoubles(shape, r);
        }
        var f = new float[n];
        var g = grad.Floats!;
        for (int e = 0; e < idx.Length; e++) f[idx[e]] += g[e];
        return Tensor.FromFloats(shape, f);
    }
}
