using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
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
    public static void MatMul(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n, bool accumulate = false) =>
        MatMul(a, b, c, m, k, n, accumulate, default);

    /// <summary>
    /// C[M,N] = A · B + <paramref name="columnBias"/> (one value per column, broadcast over rows), or, with
    /// <paramref name="accumulate"/>, C += A · B. C is never cleared first: the first K panel starts its register
    /// sums from zero or the bias, so C's old contents are never read unless accumulating.
    /// </summary>
    public static void MatMul(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n, bool accumulate, ReadOnlySpan<float> columnBias)
    {
        if (accumulate && !columnBias.IsEmpty) throw new ArgumentException("a column bias cannot be combined with accumulate");
        if (!columnBias.IsEmpty && columnBias.Length < n) throw new ArgumentException("column bias shorter than N");
        if (c.Length < m * n) throw new ArgumentException("C is smaller than M·N");
        if (m == 0 || n == 0) return;
        if (k == 0)
        {
            if (accumulate) return;
            for (int i = 0; i < m; i++)
                if (columnBias.IsEmpty) c.Slice(i * n, n).Clear(); else columnBias[..n].CopyTo(c.Slice(i * n, n));
            return;
        }
        long work = (long)m * k * n;
        int rowBlocks = (m + RowsPerTask - 1) / RowsPerTask;
        // Few rows but many columns (a batched convolution): split the columns across threads instead.
        int colStrips = rowBlocks >= Environment.ProcessorCount ? 1 : Math.Max(1, Math.Min((n + NBlock - 1) / NBlock, 4 * Environment.ProcessorCount));
        // Every row block shares the whole column range when the columns are not split, so B's narrow column tail
        // (a 10-class head) is packed once here rather than once per block.
        float[]? tailPack = colStrips == 1 ? PackTail(b, k, n, 0, n) : null;
        if (work < ParallelThreshold || rowBlocks * colStrips == 1)
        {
            Blocked(a, b, c, 0, m, k, n, 0, n, tailPack, accumulate, columnBias);
            ReturnPack(tailPack);
            return;
        }
        var biasCopy = columnBias.IsEmpty ? null : columnBias[..n].ToArray();
        int stripWidth = (n + colStrips - 1) / colStrips;
        unsafe
        {
            fixed (float* pa = a, pb = b, pc = c)
            {
                var (ia, ib, ic) = ((nint)pa, (nint)pb, (nint)pc);
                int la = a.Length, lb = b.Length, lc = c.Length;
                ForkJoin.For(rowBlocks * colStrips, tile =>
                {
                    int blk = tile / colStrips, strip = tile % colStrips;
                    int r0 = blk * RowsPerTask, r1 = Math.Min(m, r0 + RowsPerTask);
                    int j0 = strip * stripWidth, j1 = Math.Min(n, j0 + stripWidth);
                    if (j0 < j1) Blocked(new ReadOnlySpan<float>((float*)ia, la), new ReadOnlySpan<float>((float*)ib, lb), new Span<float>((float*)ic, lc), r0, r1, k, n, j0, j1, tailPack, accumulate, biasCopy);
                });
            }
        }
        ReturnPack(tailPack);
    }

    /// <summary>Rows per parallel task: a multiple of both register tiles' heights (6 and 4).</summary>
    private const int KBlock = 256, NBlock = 512, RowsPerTask = 24;

    /// <summary>
    /// Columns of B past the last full two-vector strip within [jStart, jEnd) (NBlock is a multiple of the strip, so
    /// these are the last N block's tail), packed for all K as [k, 2 vectors] and zero beyond the tail, so that
    /// narrow outputs still run a register kernel. Null when there is no tail.
    /// </summary>
    private static float[]? PackTail(ReadOnlySpan<float> b, int k, int n, int jStart, int jEnd)
    {
        int step = 2 * Vector<float>.Count, width = jEnd - jStart, tail = width % step;
        if (tail == 0) return null;
        var bt = System.Buffers.ArrayPool<float>.Shared.Rent(k * step);
        int j0 = jStart + width - tail;
        // Element by element: the rows are a few floats, too short for span copies to pay.
        for (int p = 0; p < k; p++)
        {
            int src = p * n + j0, dst = p * step;
            for (int j = 0; j < tail; j++) bt[dst + j] = b[src + j];
            for (int j = tail; j < step; j++) bt[dst + j] = 0f;
        }
        return bt;
    }

    private static void ReturnPack(float[]? pack)
    {
        if (pack is not null) System.Buffers.ArrayPool<float>.Shared.Return(pack);
    }

    /// <summary>Rows [r0, r1) and columns [jStart, jEnd) of C += A·B, blocked over K and N.</summary>
    private static void Blocked(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int r0, int r1, int k, int n, int jStart, int jEnd, float[]? tailPack, bool accumulate, ReadOnlySpan<float> bias)
    {
        // A caller's pack covers the whole column range; a column strip packs its own.
        var pack = tailPack is not null && jStart == 0 && jEnd == n ? tailPack : PackTail(b, k, n, jStart, jEnd);
        try { BlockedPacked(a, b, c, r0, r1, k, n, jStart, jEnd, pack, accumulate, bias); }
        finally { if (!ReferenceEquals(pack, tailPack)) ReturnPack(pack); }
    }

    private static void BlockedPacked(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int r0, int r1, int k, int n, int jStart, int jEnd, float[]? pack, bool accumulate, ReadOnlySpan<float> bias)
    {
        for (int p0 = 0; p0 < k; p0 += KBlock)
        {
            int kc = Math.Min(KBlock, k - p0);
            // Later K panels add onto what the first one wrote; the first reads C only when accumulating.
            bool loadC = accumulate || p0 > 0;
            for (int j0 = jStart; j0 < jEnd; j0 += NBlock)
            {
                int nc = Math.Min(NBlock, jEnd - j0);
                int step = 2 * Vector<float>.Count, ncVec = nc - nc % step, tail = nc - ncVec;
                int i = r0;
                if (i + 4 <= r1)
                {
                    // The column tail (only in the last N block) runs the register kernel on the packed strip.
                    bool hasTail = tail > 0 && pack is not null && j0 + nc == jEnd;
                    // Six-row tiles (twelve accumulators) keep both FMA pipes busy through their latency where the
                    // machine has the registers; the four-row kernel takes the rest and any column tail.
                    if (tail == 0 && Vector.IsHardwareAccelerated && Avx512F.IsSupported)
                        for (; i + 6 <= r1; i += 6) MicroKernel6(a, b, c, i, p0, kc, j0, ncVec, k, n, loadC, bias);
                    for (; i + 4 <= r1; i += 4)
                    {
                        MicroKernel4(a, b, c, i, p0, kc, j0, ncVec, k, n, loadC, bias);
                        if (hasTail) TailKernel4(a, pack!, c, i, p0, kc, j0 + ncVec, tail, k, n, loadC, bias);
                    }
                }
                for (; i < r1; i++)
                {
                    if (!loadC)
                    {
                        var row = c.Slice(i * n + j0, nc);
                        if (bias.IsEmpty) row.Clear(); else bias.Slice(j0, nc).CopyTo(row);
                    }
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
    }

    /// <summary>Six rows of C over columns [j0, j0+nc), nc a multiple of two vectors: twelve vector accumulators (needs the 32 vector registers of AVX-512 hardware).</summary>
    private static void MicroKernel6(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int i, int p0, int kc, int j0, int nc, int k, int n, bool loadC, ReadOnlySpan<float> bias)
    {
        if (!loadC && nc > 0 && bias.Length > 0 && bias.Length < j0 + nc) throw new ArgumentException("bias shorter than the columns");
        int vl = Vector<float>.Count, step = 2 * vl;
        ref float ra = ref MemoryMarshal.GetReference(a);
        ref float rb = ref MemoryMarshal.GetReference(b);
        ref float rc = ref MemoryMarshal.GetReference(c);
        for (int j = j0, jEnd = j0 + nc; j + step <= jEnd; j += step)
        {
            ref float c0 = ref Unsafe.Add(ref rc, i * n + j);
            ref float c1 = ref Unsafe.Add(ref c0, n);
            ref float c2 = ref Unsafe.Add(ref c1, n);
            ref float c3 = ref Unsafe.Add(ref c2, n);
            ref float c4 = ref Unsafe.Add(ref c3, n);
            ref float c5 = ref Unsafe.Add(ref c4, n);
            Vector<float> x00, x01, x10, x11, x20, x21, x30, x31, x40, x41, x50, x51;
            if (loadC)
            {
                x00 = Vector.LoadUnsafe(ref c0); x01 = Vector.LoadUnsafe(ref c0, (nuint)vl);
                x10 = Vector.LoadUnsafe(ref c1); x11 = Vector.LoadUnsafe(ref c1, (nuint)vl);
                x20 = Vector.LoadUnsafe(ref c2); x21 = Vector.LoadUnsafe(ref c2, (nuint)vl);
                x30 = Vector.LoadUnsafe(ref c3); x31 = Vector.LoadUnsafe(ref c3, (nuint)vl);
                x40 = Vector.LoadUnsafe(ref c4); x41 = Vector.LoadUnsafe(ref c4, (nuint)vl);
                x50 = Vector.LoadUnsafe(ref c5); x51 = Vector.LoadUnsafe(ref c5, (nuint)vl);
            }
            else if (!bias.IsEmpty)
            {
                ref float bj = ref Unsafe.Add(ref MemoryMarshal.GetReference(bias), j);
                x00 = x10 = x20 = x30 = x40 = x50 = Vector.LoadUnsafe(ref bj);
                x01 = x11 = x21 = x31 = x41 = x51 = Vector.LoadUnsafe(ref bj, (nuint)vl);
            }
            else x00 = x01 = x10 = x11 = x20 = x21 = x30 = x31 = x40 = x41 = x50 = x51 = Vector<float>.Zero;
            ref float a0 = ref Unsafe.Add(ref ra, i * k + p0);
            for (int p = 0; p < kc; p++)
            {
                ref float bp = ref Unsafe.Add(ref rb, (p0 + p) * n + j);
                var b0 = Vector.LoadUnsafe(ref bp); var b1 = Vector.LoadUnsafe(ref bp, (nuint)vl);
                var s0 = new Vector<float>(Unsafe.Add(ref a0, p));
                x00 = Vector.FusedMultiplyAdd(s0, b0, x00); x01 = Vector.FusedMultiplyAdd(s0, b1, x01);
                var s1 = new Vector<float>(Unsafe.Add(ref a0, k + p));
                x10 = Vector.FusedMultiplyAdd(s1, b0, x10); x11 = Vector.FusedMultiplyAdd(s1, b1, x11);
                var s2 = new Vector<float>(Unsafe.Add(ref a0, 2 * k + p));
                x20 = Vector.FusedMultiplyAdd(s2, b0, x20); x21 = Vector.FusedMultiplyAdd(s2, b1, x21);
                var s3 = new Vector<float>(Unsafe.Add(ref a0, 3 * k + p));
                x30 = Vector.FusedMultiplyAdd(s3, b0, x30); x31 = Vector.FusedMultiplyAdd(s3, b1, x31);
                var s4 = new Vector<float>(Unsafe.Add(ref a0, 4 * k + p));
                x40 = Vector.FusedMultiplyAdd(s4, b0, x40); x41 = Vector.FusedMultiplyAdd(s4, b1, x41);
                var s5 = new Vector<float>(Unsafe.Add(ref a0, 5 * k + p));
                x50 = Vector.FusedMultiplyAdd(s5, b0, x50); x51 = Vector.FusedMultiplyAdd(s5, b1, x51);
            }
            x00.StoreUnsafe(ref c0); x01.StoreUnsafe(ref c0, (nuint)vl);
            x10.StoreUnsafe(ref c1); x11.StoreUnsafe(ref c1, (nuint)vl);
            x20.StoreUnsafe(ref c2); x21.StoreUnsafe(ref c2, (nuint)vl);
            x30.StoreUnsafe(ref c3); x31.StoreUnsafe(ref c3, (nuint)vl);
            x40.StoreUnsafe(ref c4); x41.StoreUnsafe(ref c4, (nuint)vl);
            x50.StoreUnsafe(ref c5); x51.StoreUnsafe(ref c5, (nuint)vl);
        }
    }

    /// <summary>Four rows of C over columns [j0, j0+nc), nc a multiple of two vectors: 8 vector accumulators held in registers across the K panel.</summary>
    private static void MicroKernel4(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int i, int p0, int kc, int j0, int nc, int k, int n, bool loadC, ReadOnlySpan<float> bias) =>
        MicroKernel4(a, b, n, c, i * n, n, i, p0, kc, j0, nc, k, loadC, bias);

    /// <summary>
    /// The four-row kernel with explicit strides: B rows <paramref name="ldb"/> apart, C's first row at
    /// <paramref name="cOffset"/> and its rows <paramref name="ldc"/> apart (the column tail computes into a
    /// two-vector-wide scratch this way).
    /// </summary>
    private static void MicroKernel4(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int ldb, Span<float> c, int cOffset, int ldc, int i, int p0, int kc, int j0, int nc, int k, bool loadC, ReadOnlySpan<float> bias)
    {
        if (!loadC && nc > 0 && bias.Length > 0 && bias.Length < j0 + nc) throw new ArgumentException("bias shorter than the columns");
        if (c.Length < cOffset + 3 * ldc + j0 + nc || b.Length < (p0 + kc - 1) * ldb + j0 + nc) throw new ArgumentException("micro-kernel operands too small");
        int vl = Vector<float>.Count, step = 2 * vl;
        ref float ra = ref MemoryMarshal.GetReference(a);
        ref float rb = ref MemoryMarshal.GetReference(b);
        ref float rc = ref MemoryMarshal.GetReference(c);
        int j = j0, jEnd = j0 + nc;
        for (; j + step <= jEnd; j += step)
        {
            ref float c0 = ref Unsafe.Add(ref rc, cOffset + j);
            ref float c1 = ref Unsafe.Add(ref c0, ldc);
            ref float c2 = ref Unsafe.Add(ref c1, ldc);
            ref float c3 = ref Unsafe.Add(ref c2, ldc);
            Vector<float> x00, x01, x10, x11, x20, x21, x30, x31;
            if (loadC)
            {
                x00 = Vector.LoadUnsafe(ref c0); x01 = Vector.LoadUnsafe(ref c0, (nuint)vl);
                x10 = Vector.LoadUnsafe(ref c1); x11 = Vector.LoadUnsafe(ref c1, (nuint)vl);
                x20 = Vector.LoadUnsafe(ref c2); x21 = Vector.LoadUnsafe(ref c2, (nuint)vl);
                x30 = Vector.LoadUnsafe(ref c3); x31 = Vector.LoadUnsafe(ref c3, (nuint)vl);
            }
            else if (!bias.IsEmpty)
            {
                ref float bj = ref Unsafe.Add(ref MemoryMarshal.GetReference(bias), j);
                x00 = x10 = x20 = x30 = Vector.LoadUnsafe(ref bj);
                x01 = x11 = x21 = x31 = Vector.LoadUnsafe(ref bj, (nuint)vl);
            }
            else x00 = x01 = x10 = x11 = x20 = x21 = x30 = x31 = Vector<float>.Zero;
            ref float a0 = ref Unsafe.Add(ref ra, i * k + p0);
            for (int p = 0; p < kc; p++)
            {
                ref float bp = ref Unsafe.Add(ref rb, (p0 + p) * ldb + j);
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
    /// Four rows of C over the <paramref name="tail"/> (&lt; two vectors) columns from <paramref name="jt"/>: the
    /// four-row kernel runs from zero on the packed strip <paramref name="bt"/> ([k, 2 vectors], zero beyond the
    /// tail) into a two-vector-wide scratch, whose first <paramref name="tail"/> columns are then added onto C (or
    /// written with the bias), so C is never read or written past its row (a 10-class head is such a tail).
    /// </summary>
    [SkipLocalsInit]
    private static void TailKernel4(ReadOnlySpan<float> a, float[] bt, Span<float> c, int i, int p0, int kc, int jt, int tail, int k, int n, bool loadC, ReadOnlySpan<float> bias)
    {
        int step = 2 * Vector<float>.Count;
        Span<float> sums = stackalloc float[4 * step];
        MicroKernel4(a, bt, step, sums, 0, step, i, p0, kc, 0, step, k, loadC: false, bias: default);
        for (int r = 0; r < 4; r++)
        {
            var row = c.Slice((i + r) * n + jt, tail);
            var add = sums.Slice(r * step, tail);
            if (loadC) for (int j = 0; j < row.Length; j++) row[j] += add[j];
            else if (bias.IsEmpty) add.CopyTo(row);
            else for (int j = 0; j < row.Length; j++) row[j] = bias[jt + j] + add[j];
        }
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
