using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Gate.Core.Tensors;

namespace Gate.Core.Engine;

/// <summary>Numeric building blocks shared by several operators (matrix products, broadcasting, reductions).</summary>
public static class Kernels
{
    /// <summary>Work below this many multiply-adds stays on one thread: scheduling costs more than it saves.</summary>
    private const long ParallelThreshold = 1 << 16;

    /// <summary>
    /// C[M,N] (+)= A[M,K] · B[K,N], all row-major and contiguous. Rows of C are independent, so they are split
    /// across threads; the inner loop is a SIMD axpy over a row of B, which streams memory in order.
    /// </summary>
    public static void MatMul(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n, bool accumulate = false)
    {
        if (!accumulate) c[..(m * n)].Clear();
        if ((long)m * k * n < ParallelThreshold || m == 1)
        {
            for (int i = 0; i < m; i++) RowTimesMatrix(a.Slice(i * k, k), b, c.Slice(i * n, n), k, n);
            return;
        }
        unsafe
        {
            fixed (float* pa = a, pb = b, pc = c)
            {
                var (ia, ib, ic) = ((nint)pa, (nint)pb, (nint)pc);
                int la = a.Length, lb = b.Length, lc = c.Length;
                Parallel.For(0, m, i =>
                {
                    var sa = new ReadOnlySpan<float>((float*)ia, la);
                    var sb = new ReadOnlySpan<float>((float*)ib, lb);
                    var sc = new Span<float>((float*)ic, lc);
                    RowTimesMatrix(sa.Slice(i * k, k), sb, sc.Slice(i * n, n), k, n);
                });
            }
        }
    }

    private static void RowTimesMatrix(ReadOnlySpan<float> aRow, ReadOnlySpan<float> b, Span<float> cRow, int k, int n)
    {
        for (int p = 0; p < k; p++)
        {
            float s = aRow[p];
            if (s == 0f) continue;
            TensorPrimitives.MultiplyAdd(b.Slice(p * n, n), s, cRow, cRow);
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
