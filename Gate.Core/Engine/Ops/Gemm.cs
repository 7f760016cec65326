using Gate.Core.Tensors;
using Gate.Core.Engine.Bounds;

namespace Gate.Core.Engine.Ops;

/// <summary>Y = alpha · op(A) · op(B) + beta · C, with op = optional transpose and C unidirectionally broadcast.</summary>
public sealed class GemmOp : Operator
{
    public override string OpType => "Gemm";

    /// <summary>
    /// Transposed copies of weight matrices used with transB=1, keyed by the weight array itself (tensors are
    /// immutable once handed to the engine) and released with it, so repeated calls skip the transposition.
    /// </summary>
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<float[], float[]> TransposedWeights = new();

    private static (int m, int k, int n) Dims(OpContext ctx, int[] a, int[] b)
    {
        bool ta = ctx.Node.GetInt("transA", 0) != 0, tb = ctx.Node.GetInt("transB", 0) != 0;
        if (a.Length != 2 || b.Length != 2) throw new OperatorException($"{ctx.Where}: Gemm needs 2-D A and B, got [{string.Join(",", a)}] and [{string.Join(",", b)}]");
        int m = ta ? a[1] : a[0], k = ta ? a[0] : a[1];
        int kb = tb ? b[1] : b[0], n = tb ? b[0] : b[1];
        if (k != kb) throw new OperatorException($"{ctx.Where}: inner dimensions differ: A gives {k}, B gives {kb}");
        return (m, k, n);
    }

    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s)
    {
        if (s[0] is null || s[1] is null) return [null];
        var (m, _, n) = Dims(ctx, s[0]!, s[1]!);
        return [[m, n]];
    }

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var a = inputs[0]!; var b = inputs[1]!; var c = inputs.Length > 2 ? inputs[2] : null;
        if (a.Type == DType.Float64) return [ForwardDouble(ctx, a, b, c)];
        var (m, k, n) = Dims(ctx, a.Shape, b.Shape);
        bool ta = ctx.Node.GetInt("transA", 0) != 0, tb = ctx.Node.GetInt("transB", 0) != 0;
        float alpha = ctx.Node.GetFloat("alpha", 1f), beta = ctx.Node.GetFloat("beta", 1f);
        var af = Kernels.Floats(a, ctx, "A"); var bf = Kernels.Floats(b, ctx, "B");
        var am = ta ? Kernels.Transpose(af, a.Shape[0], a.Shape[1]) : af;
        var y = ctx.RentFloats(m * n);
        bool dotRows = tb && m < 4;
        bool prefill = !dotRows && c is not null && beta != 0f && alpha == 1f && c.Floats is not null && c.Length == n && c.Rank <= 2 && c.Shape[^1] == n;
        if (dotRows)
        {
            // Few rows against a transposed B (how PyTorch exports Linear): each output is a dot product of two
            // contiguous rows, which avoids transposing the whole weight matrix on every call.
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                    y[i * n + j] = System.Numerics.Tensors.TensorPrimitives.Dot(am.AsSpan(i * k, k), bf.AsSpan(j * k, k));
        }
        else
        {
            // A bias row (alpha = 1) seeds the GEMM's register sums, so Y is produced in one pass.
            var bt = !tb ? bf : BufferPool.IsRecyclable(bf) ? Kernels.Transpose(bf, n, k) : TransposedWeights.GetValue(bf, w => Kernels.Transpose(w, n, k));
            ReadOnlySpan<float> bias = default;
            if (prefill)
            {
                var cf = Kernels.Floats(c!, ctx, "C").AsSpan(0, n);
                if (beta == 1f) bias = cf;
                else { var scaled = new float[n]; System.Numerics.Tensors.TensorPrimitives.Multiply(cf, beta, scaled); bias = scaled; }
            }
            Kernels.MatMul(am, bt, y, m, k, n, accumulate: false, columnBias: bias);
        }
        if (alpha != 1f) System.Numerics.Tensors.TensorPrimitives.Multiply(y, alpha, y);
        if (c is not null && beta != 0f && !prefill)
        {
            Broadcast.Shape(c.Shape, [m, n], ctx.Where);
            var cf = Kernels.Floats(c, ctx, "C");
            if (c.Length == n && (c.Rank == 1 || c.Shape[^1] == n))
            {
                // The usual bias row: one SIMD multiply-add per output row instead of an index map.
                for (int i = 0; i < m; i++) System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(cf.AsSpan(0, n), beta, y.AsSpan(i * n, n), y.AsSpan(i * n, n));
            }
            else
            {
                var idx = Broadcast.SourceIndex(c.Shape, [m, n]);
                for (int i = 0; i < y.Length; i++) y[i] += beta * cf[idx[i]];
            }
        }
        return [Tensor.FromFloats([m, n], y)];
    }

    private static Tensor ForwardDouble(OpContext ctx, Tensor a, Tensor b, Tensor? c)
    {
        var (m, k, n) = Dims(ctx, a.Shape, b.Shape);
        bool ta = ctx.Node.GetInt("transA", 0) != 0, tb = ctx.Node.GetInt("transB", 0) != 0;
        double alpha = ctx.Node.GetFloat("alpha", 1f), beta = ctx.Node.GetFloat("beta", 1f);
        var y = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int p = 0; p < k; p++)
                    s += a.Doubles![ta ? p * m + i : i * k + p] * b.Doubles![tb ? j * k + p : p * n + j];
                y[i * n + j] = alpha * s;
            }
        if (c is not null && beta != 0)
        {
            var idx = Broadcast.SourceIndex(c.Shape, [m, n]);
            for (int i = 0; i < y.Length; i++) y[i] += beta * c.Doubles![idx[i]];
        }
        return Tensor.FromDoubles([m, n], y);
    }

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        var a = inputs[0]!; var b = inputs[1]!; var c = inputs.Length > 2 ? inputs[2] : null; var gy = g[0]!;
        var (m, k, n) = Dims(ctx, a.Shape, b.Shape);
        bool ta = ctx.Node.GetInt("transA", 0) != 0, tb = ctx.Node.GetInt("transB", 0) != 0;
        double alpha = ctx.Node.GetFloat("alpha", 1f), beta = ctx.Node.GetFloat("beta", 1f);
        if (a.Type == DType.Float64)
        {
            var ga = new double[a.Length]; var gb = new double[b.Length];
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double gij = alpha * gy.Doubles![i * n + j];
                    for (int p = 0; p < k; p++)
                    {
                        int ai = ta ? p * m + i : i * k + p, bi = tb ? j * k + p : p * n + j;
                        ga[ai] += gij * b.Doubles![bi];
                        gb[bi] += gij * a.Doubles![ai];
                    }
                }
            Tensor? gcd = null;
            if (c is not null) { var s = new double[m * n]; for (int i = 0; i < s.Length; i++) s[i] = beta * gy.Doubles![i]; gcd = Broadcast.ReduceTo(Tensor.FromDoubles([m, n], s), c.Shape); }
            return [Tensor.FromDoubles(a.Shape, ga), Tensor.FromDoubles(b.Shape, gb), gcd];
        }
        var gyf = gy.Floats!;
        var af = a.Floats!; var bf = b.Floats!;
        // With A' = op(A) [m,k] and B' = op(B) [k,n]: dA' = dY · B'^T and dB' = A'^T · dY. A transposed operand's
        // transpose is the stored matrix itself, so only the untransposed cases copy.
        bool needA = ctx.NeedsGradient(0);
        var dAm = needA ? (ta ? new float[m * k] : ctx.RentFloats(m * k)) : [];
        if (needA) Kernels.MatMul(gyf, tb ? bf : Kernels.Transpose(bf, k, n), dAm, m, n, k);
        bool needB = ctx.NeedsGradient(1);
        var dBm = needB ? new float[k * n] : [];
        if (needB) Kernels.MatMul(ta ? af : Kernels.Transpose(af, m, k), gyf, dBm, k, m, n);
        if (alpha != 1.0) { for (int i = 0; i < dAm.Length; i++) dAm[i] *= (float)alpha; for (int i = 0; i < dBm.Length; i++) dBm[i] *= (float)alpha; }
        var dA = ta ? Kernels.Transpose(dAm, m, k) : dAm;
        var dB = needB && tb ? Kernels.Transpose(dBm, k, n) : dBm;
        Tensor? gc = null;
        if (c is not null && ctx.NeedsGradient(2))
        {
            var s = new float[m * n];
            for (int i = 0; i < s.Length; i++) s[i] = (float)(beta * gyf[i]);
            gc = Broadcast.ReduceTo(Tensor.FromFloats([m, n], s), c.Shape);
        }
        return [needA ? Tensor.FromFloats(a.Shape, dA) : null, needB ? Tensor.FromFloats(b.Shape, dB) : null, gc];
    }

    // Bound rules: A variable, B and C constant (a layer's weights), the shape every exported Linear layer has.
    private static (double[] w, double[]? bias, int m, int k, int n, Func<int, int, int> aIndex)? DenseForm(OpContext ctx, IntervalBounds?[] inputs)
    {
        var a = inputs[0]!; var b = inputs[1]!; var c = inputs.Length > 2 ? inputs[2] : null;
        if (a.IsConstant || !b.IsConstant || c is { IsConstant: false }) return null;
        var (m, k, n) = Dims(ctx, a.Shape, b.Shape);
        bool ta = ctx.Node.GetInt("transA", 0) != 0, tb = ctx.Node.GetInt("transB", 0) != 0;
        double alpha = ctx.Node.GetFloat("alpha", 1f), beta = ctx.Node.GetFloat("beta", 1f);
        var w = new double[k * n];
        for (int p = 0; p < k; p++)
            for (int j = 0; j < n; j++) w[p * n + j] = alpha * b.Lower[tb ? j * k + p : p * n + j];
        double[]? bias = null;
        if (c is not null && beta != 0)
        {
            var idx = Broadcast.SourceIndex(c.Shape, [m, n]);
            bias = new double[m * n];
            for (int i = 0; i < bias.Length; i++) bias[i] = beta * c.Lower[idx[i]];
        }
        return (w, bias, m, k, n, ta ? (i, p) => p * m + i : (i, p) => i * k + p);
    }

    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs) =>
        DenseForm(ctx, inputs) is var (w, bias, m, k, n, ai) ? BoundRules.Dense(inputs[0]!, m, k, w, n, bias, [m, n], ai) : null;

    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r)
    {
        if (DenseForm(ctx, r.Inputs) is not var (w, bias, m, k, n, ai)) return null;
        var (lx, b) = BoundRules.DenseBackward(r.Rows, r.Lambda, m, k, w, n, bias, r.Inputs[0]!.Length, ai);
        return new LinearBackward([lx, null, null], b);
    }
}
