using Gate.Core.Tensors;

namespace Gate.Core.Engine.Ops;

/// <summary>
/// Direct N-D convolution in float64 over the windows of <see cref="PoolWindows"/> (each window lists its in-bounds
/// input offsets and kernel cells). Serves 1-D/3-D convolutions and float64 inputs; results take X's type.
/// </summary>
internal static class ConvND
{
    public sealed record Geometry(int N, int C, int M, int G, int Cg, int Mg, int KernelCells, PoolWindows Windows, int[] OutShape);

    public static Geometry Plan(OpContext ctx, int[] x, int[] w)
    {
        if (x.Length < 3 || w.Length != x.Length)
            throw new OperatorException($"{ctx.Where}: X [{string.Join(",", x)}] and W [{string.Join(",", w)}] must both be [N, C, D1, ...]");
        int g = (int)ctx.Node.GetInt("group", 1), c = x[1], m = w[0];
        if (g <= 0 || c % g != 0 || m % g != 0 || w[1] != c / g)
            throw new OperatorException($"{ctx.Where}: channels do not match: X has {c} channels, W is [{string.Join(",", w)}], group={g}");
        var kernel = w.Skip(2).ToArray();
        if (ctx.Node.GetInts("kernel_shape") is { Length: > 0 } ks && !ks.Select(v => (int)v).SequenceEqual(kernel))
            throw new OperatorException($"{ctx.Where}: kernel_shape does not match W");
        var pw = PoolWindows.Build(SpatialGeometry.Compute(ctx, x.Skip(2).ToArray(), kernel));
        return new Geometry(x[0], c, m, g, c / g, m / g, Tensor.ElementCount(kernel), pw, [x[0], m, .. pw.OutSpatial]);
    }

    public static Tensor Forward(OpContext ctx, Tensor x, Tensor w, Tensor? b)
    {
        var p = Plan(ctx, x.Shape, w.Shape);
        var xv = TensorIndexing.AsDoubles(x); var wv = TensorIndexing.AsDoubles(w);
        var pw = p.Windows;
        var y = new double[Tensor.ElementCount(p.OutShape)];
        ForkJoin.For(p.N * p.M, job =>
        {
            int n = job / p.M, m = job % p.M, grp = m / p.Mg;
            double bias = b is null ? 0 : b.GetDouble(m);
            for (int o = 0; o < pw.OutPlane; o++)
            {
                double s = bias;
                for (int c = 0; c < p.Cg; c++)
                {
                    int xb = (n * p.C + grp * p.Cg + c) * pw.InPlane, wb = (m * p.Cg + c) * p.KernelCells;
                    for (int j = pw.Start[o]; j < pw.Start[o + 1]; j++) s += xv[xb + pw.Offsets[j]] * wv[wb + pw.Cells[j]];
                }
                y[job * pw.OutPlane + o] = s;
            }
        });
        return TensorIndexing.FromDoublesAs(x.Type, p.OutShape, y);
    }

    public static Tensor?[] Backward(OpContext ctx, Tensor x, Tensor w, Tensor? b, Tensor gy)
    {
        var p = Plan(ctx, x.Shape, w.Shape);
        var xv = TensorIndexing.AsDoubles(x); var wv = TensorIndexing.AsDoubles(w); var g = TensorIndexing.AsDoubles(gy);
        var pw = p.Windows;
        var dx = new double[x.Length]; var dw = new double[w.Length]; var db = new double[p.M];
        for (int n = 0; n < p.N; n++)
            for (int m = 0; m < p.M; m++)
            {
                int grp = m / p.Mg;
                for (int o = 0; o < pw.OutPlane; o++)
                {
                    double gv = g[(n * p.M + m) * pw.OutPlane + o];
                    if (gv == 0) continue;
                    db[m] += gv;
                    for (int c = 0; c < p.Cg; c++)
                    {
                        int xb = (n * p.C + grp * p.Cg + c) * pw.InPlane, wb = (m * p.Cg + c) * p.KernelCells;
                        for (int j = pw.Start[o]; j < pw.Start[o + 1]; j++)
                        {
                            dx[xb + pw.Offsets[j]] += gv * wv[wb + pw.Cells[j]];
                            dw[wb + pw.Cells[j]] += gv * xv[xb + pw.Offsets[j]];
                        }
                    }
                }
            }
        var t = x.Type == DType.Float64 ? DType.Float64 : DType.Float32;
        return [TensorIndexing.FromDoublesAs(t, x.Shape, dx), TensorIndexing.FromDoublesAs(t, w.Shape, dw), b is null ? null : TensorIndexing.FromDoublesAs(t, [p.M], db)];
    }
}
