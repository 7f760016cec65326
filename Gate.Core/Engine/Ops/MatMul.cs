using Gate.Core.Tensors;
using Gate.Core.Engine.Bounds;

namespace Gate.Core.Engine.Ops;

/// <summary>numpy.matmul semantics: 1-D operands are promoted (and the added axis removed), batch axes broadcast.</summary>
public sealed class MatMulOp : Operator
{
    public override string OpType => "MatMul";

    private sealed record Plan(int[] OutShape, int[] BatchShape, int M, int K, int N, int[] ABatchIdx, int[] BBatchIdx, int[] AShape3, int[] BShape3);

    private static Plan MakePlan(OpContext ctx, int[] a, int[] b)
    {
        if (a.Length == 0 || b.Length == 0) throw new OperatorException($"{ctx.Where}: MatMul operands must have rank ≥ 1");
        var a2 = a.Length == 1 ? new[] { 1, a[0] } : a;
        var b2 = b.Length == 1 ? new[] { b[0], 1 } : b;
        int m = a2[^2], k = a2[^1], kb = b2[^2], n = b2[^1];
        if (k != kb) throw new OperatorException($"{ctx.Where}: MatMul inner dimensions differ: [{string.Join(",", a)}] · [{string.Join(",", b)}]");
        var ab = a2[..^2]; var bb = b2[..^2];
        var batch = Broadcast.Shape(ab, bb, ctx.Where);
        var outShape = new List<int>(batch);
        if (a.Length > 1) outShape.Add(m);
        if (b.Length > 1) outShape.Add(n);
        return new Plan(outShape.ToArray(), batch, m, k, n, Broadcast.SourceIndex(ab, batch), Broadcast.SourceIndex(bb, batch), a2, b2);
    }

    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) =>
        [s[0] is null || s[1] is null ? null : MakePlan(ctx, s[0]!, s[1]!).OutShape];

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var a = inputs[0]!; var b = inputs[1]!;
        var p = MakePlan(ctx, a.Shape, b.Shape);
        int batches = p.ABatchIdx.Length;
        if (a.Type == DType.Float64)
        {
            var yd = new double[batches * p.M * p.N];
            for (int t = 0; t < batches; t++)
                for (int i = 0; i < p.M; i++)
                    for (int j = 0; j < p.N; j++)
                    {
                        double s = 0;
                        for (int q = 0; q < p.K; q++) s += a.Doubles![p.ABatchIdx[t] * p.M * p.K + i * p.K + q] * b.Doubles![p.BBatchIdx[t] * p.K * p.N + q * p.N + j];
                        yd[t * p.M * p.N + i * p.N + j] = s;
                    }
            return [Tensor.FromDoubles(p.OutShape, yd)];
        }
        if (a.Type.IsInteger())
        {
            var yl = new long[batches * p.M * p.N];
            for (int t = 0; t < batches; t++)
                for (int i = 0; i < p.M; i++)
                    for (int j = 0; j < p.N; j++)
                    {
                        long s = 0;
                        for (int q = 0; q < p.K; q++) s += a.Longs![p.ABatchIdx[t] * p.M * p.K + i * p.K + q] * b.Longs![p.BBatchIdx[t] * p.K * p.N + q * p.N + j];
                        yl[t * p.M * p.N + i * p.N + j] = IntegerWrap.Wrap(s, a.Type);
                    }
            return [Tensor.FromLongs(p.OutShape, yl, a.Type)];
        }
        var af = Kernels.Floats(a, ctx, "A"); var bf = Kernels.Floats(b, ctx, "B");
        var y = new float[batches * p.M * p.N];
        for (int t = 0; t < batches; t++)
            Kernels.MatMul(af.AsSpan(p.ABatchIdx[t] * p.M * p.K, p.M * p.K), bf.AsSpan(p.BBatchIdx[t] * p.K * p.N, p.K * p.N),
                y.AsSpan(t * p.M * p.N, p.M * p.N), p.M, p.K, p.N);
        return [Tensor.FromFloats(p.OutShape, y, a.Type)];
    }

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        var a = inputs[0]!; var b = inputs[1]!;
        var p = MakePlan(ctx, a.Shape, b.Shape);
        int batches = p.ABatchIdx.Length;
        if (a.Type == DType.Float64)
        {
            var gad = new double[a.Length]; var gbd = new double[b.Length];
            var gy = g[0]!.Doubles!;
            for (int t = 0; t < batches; t++)
                for (int i = 0; i < p.M; i++)
                    for (int j = 0; j < p.N; j++)
                    {
                        double gij = gy[t * p.M * p.N + i * p.N + j];
                        for (int q = 0; q < p.K; q++)
                        {
                            int ai = p.ABatchIdx[t] * p.M * p.K + i * p.K + q, bi = p.BBatchIdx[t] * p.K * p.N + q * p.N + j;
                            gad[ai] += gij * b.Doubles![bi];
                            gbd[bi] += gij * a.Doubles![ai];
                        }
                    }
            return [Tensor.FromDoubles(a.Shape, gad), Tensor.FromDoubles(b.Shape, gbd)];
        }
        var af = a.Floats!; var bf = b.Floats!; var gf = g[0]!.Floats!;
        var ga = new float[a.Length]; var gb = new float[b.Length];
        var tmpA = new float[p.M * p.K]; var tmpB = new float[p.K * p.N];
        for (int t = 0; t < batches; t++)
        {
            var gyt = gf.AsSpan(t * p.M * p.N, p.M * p.N);
            var bt = Kernels.Transpose(bf.AsSpan(p.BBatchIdx[t] * p.K * p.N, p.K * p.N), p.K, p.N);
            Kernels.MatMul(gyt, bt, tmpA, p.M, p.N, p.K);
            var dst = ga.AsSpan(p.ABatchIdx[t] * p.M * p.K, p.M * p.K);
            for (int i = 0; i < tmpA.Length; i++) dst[i] += tmpA[i];
            var at = Kernels.Transpose(af.AsSpan(p.ABatchIdx[t] * p.M * p.K, p.M * p.K), p.M, p.K);
            Kernels.MatMul(at, gyt, tmpB, p.K, p.M, p.N);
            var dstb = gb.AsSpan(p.BBatchIdx[t] * p.K * p.N, p.K * p.N);
            for (int i = 0; i < tmpB.Length; i++) dstb[i] += tmpB[i];
        }
        return [Tensor.FromFloats(a.Shape, ga), Tensor.FromFloats(b.Shape, gb)];
    }

    // Bound rules: A variable (any rank; leading axes fold into rows), B a constant matrix.
    private static (double[] w, int m, int k, int n)? DenseForm(IntervalBounds?[] inputs)
    {
        var a = inputs[0]!; var b = inputs[1]!;
        if (a.IsConstant || !b.IsConstant || b.Shape.Length != 2 || a.Shape.Length < 1 || a.Shape[^1] != b.Shape[0]) return null;
        int k = b.Shape[0], n = b.Shape[1];
        return (b.Lower, a.Length / k, k, n);
    }

    // Two variable operands (attention): a sum of products per output, see BoundRules.BilinearTerms.
    private static (int[] Shape, int K, int[] A, int[] B)? Bilinear(IntervalBounds?[] inputs) =>
        inputs[0] is { IsConstant: false } a && inputs[1] is { IsConstant: false } b ? BoundRules.BilinearTerms(a.Shape, b.Shape) : null;

    public override double[]? FloatError(OpContext ctx, IntervalBounds?[] inputs, double[]?[] errors) =>
        Bilinear(inputs) is var (_, k, ta, tb) ? BoundRules.BilinearError(k, ta, tb, inputs[0]!, inputs[1]!, errors[0]!, errors[1]!) : null;

    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs)
    {
        if (Bilinear(inputs) is var (bs, bk, ta, tb)) return BoundRules.Bilinear(bs, bk, ta, tb, inputs[0]!, inputs[1]!);
        if (DenseForm(inputs) is not var (w, m, k, n)) return null;
        var shape = MakePlan(ctx, inputs[0]!.Shape, inputs[1]!.Shape).OutShape;
        return BoundRules.Dense(inputs[0]!, m, k, w, n, null, shape);
    }

    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r)
    {
        if (Bilinear(r.Inputs) is var (_, bk, ta, tb)) return BoundRules.BilinearBackward(r, bk, ta, tb);
        if (DenseForm(r.Inputs) is not var (w, m, k, n)) return null;
        var (lx, b) = BoundRules.DenseBackward(r.Rows, r.Lambda, m, k, w, n, null, r.Inputs[0]!.Length);
        return new LinearBackward([lx, null], b);
    }
}
