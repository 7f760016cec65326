using Gate.Core.Tensors;
using Gate.Core.Engine.Bounds;

namespace Gate.Core.Engine.Ops;

/// <summary>
/// N-D sliding windows over the spatial axes of an [N, C, D1..Dr] tensor. For each output position it lists the
/// in-bounds input offsets (within one plane) and how many window cells lie inside the explicitly padded input
/// (the divisor for count_include_pad). Computed once per call and shared by every plane.
/// </summary>
internal sealed class PoolWindows
{
    public required int[] Offsets { get; init; }
    public required int[] Cells { get; init; }     // kernel cell (row-major over the kernel) of each offset, for Conv
    public required int[] Start { get; init; }     // window w uses Offsets[Start[w] .. Start[w+1])
    public required int[] PaddedCount { get; init; }
    public required int[] OutSpatial { get; init; }
    public int InPlane { get; init; }
    public int OutPlane => Start.Length - 1;

    public static PoolWindows Build(SpatialGeometry g)
    {
        int r = g.Input.Length;
        int outPlane = Tensor.ElementCount(g.Output), kernelCells = Tensor.ElementCount(g.Kernel);
        var inStrides = TensorIndexing.Strides(g.Input);
        var offsets = new List<int>(outPlane * kernelCells); var cells = new List<int>(outPlane * kernelCells);
        var start = new int[outPlane + 1]; var padded = new int[outPlane];
        var o = new int[r]; var k = new int[r];
        for (int w = 0; w < outPlane; w++)
        {
            start[w] = offsets.Count;
            Array.Clear(k);
            for (int cell = 0; cell < kernelCells; cell++)
            {
                int off = 0; bool inside = true, insidePadded = true;
                for (int d = 0; d < r; d++)
                {
                    int p = o[d] * g.Strides[d] - g.PadBegin[d] + k[d] * g.Dilations[d];
                    if ((uint)p >= (uint)g.Input[d]) inside = false;
                    if (p < -g.PadBegin[d] || p >= g.Input[d] + g.PadEnd[d]) insidePadded = false;
                    off += p * inStrides[d];
                }
                if (inside) { offsets.Add(off); cells.Add(cell); }
                if (insidePadded) padded[w]++;
                for (int d = r - 1; d >= 0; d--) { if (++k[d] < g.Kernel[d]) break; k[d] = 0; }
            }
            for (int d = r - 1; d >= 0; d--) { if (++o[d] < g.Output[d]) break; o[d] = 0; }
        }
        start[outPlane] = offsets.Count;
        return new PoolWindows { Offsets = offsets.ToArray(), Cells = cells.ToArray(), Start = start, PaddedCount = padded, OutSpatial = g.Output, InPlane = Tensor.ElementCount(g.Input) };
    }

    public static SpatialGeometry Geometry(OpContext ctx, int[] x)
    {
        if (x.Length < 3) throw new OperatorException($"{ctx.Where}: input must be [N, C, D1, ...], got [{string.Join(",", x)}]");
        var k = ctx.Node.GetInts("kernel_shape") ?? throw new OperatorException($"{ctx.Where}: kernel_shape is required");
        return SpatialGeometry.Compute(ctx, x.Skip(2).ToArray(), k.Select(v => (int)v).ToArray(), ctx.Node.GetBool("ceil_mode", false));
    }

    public int[] OutShape(int[] x) => [x[0], x[1], .. OutSpatial];

    /// <summary>Every window of every plane as a <see cref="BoundRules.SparseMap"/> over the whole input, weighted
    /// by <paramref name="weight"/>(window) (null: weight 1), for bound rules.</summary>
    public BoundRules.SparseMap AsSparse(int[] x, Func<int, double>? weight)
    {
        int planes = x[0] * x[1];
        var start = new int[planes * OutPlane + 1]; var src = new int[planes * Offsets.Length];
        var w = weight is null ? null : new double[src.Length];
        int t = 0;
        for (int p = 0; p < planes; p++)
            for (int o = 0; o < OutPlane; o++)
            {
                for (int j = Start[o]; j < Start[o + 1]; j++) { if (w is not null) w[t] = weight!(o); src[t++] = p * InPlane + Offsets[j]; }
                start[p * OutPlane + o + 1] = t;
            }
        return new BoundRules.SparseMap(OutShape(x), start, src, w);
    }

    /// <summary>Max of every window, first maximum wins (NaN propagates); argmax as an offset in the full input, -1 for an empty window.</summary>
    public (double[] Y, int[] Arg) Max(Tensor x)
    {
        int planes = x.Shape[0] * x.Shape[1];
        var xv = TensorIndexing.AsDoublesOrFloats(x);
        var y = new double[planes * OutPlane]; var arg = new int[y.Length];
        ForkJoin.For(planes, p =>
        {
            int ib = p * InPlane;
            for (int w = 0; w < OutPlane; w++)
            {
                int best = -1; double bv = double.NegativeInfinity;
                for (int j = Start[w]; j < Start[w + 1]; j++)
                {
                    double v = xv(ib + Offsets[j]);
                    if (best < 0 || v > bv || double.IsNaN(v)) { bv = v; best = ib + Offsets[j]; if (double.IsNaN(v)) break; }
                }
                y[p * OutPlane + w] = bv; arg[p * OutPlane + w] = best;
            }
        });
        return (y, arg);
    }
}

/// <summary>AveragePool (N-D): pads, strides, dilations, ceil_mode, auto_pad, count_include_pad.</summary>
public sealed class AveragePoolOp : Operator
{
    public override string OpType => "AveragePool";

    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) =>
        [s[0] is null ? null : PoolWindows.Build(PoolWindows.Geometry(ctx, s[0]!)).OutShape(s[0]!)];

    private static double Divisor(OpContext ctx, PoolWindows pw, int w) =>
        ctx.Node.GetBool("count_include_pad", false) ? pw.PaddedCount[w] : pw.Start[w + 1] - pw.Start[w];

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var x = inputs[0]!;
        var pw = PoolWindows.Build(PoolWindows.Geometry(ctx, x.Shape));
        int planes = x.Shape[0] * x.Shape[1];
        var xv = TensorIndexing.AsDoublesOrFloats(x);
        var y = new double[planes * pw.OutPlane];
        ForkJoin.For(planes, p =>
        {
            for (int w = 0; w < pw.OutPlane; w++)
            {
                double s = 0;
                for (int j = pw.Start[w]; j < pw.Start[w + 1]; j++) s += xv(p * pw.InPlane + pw.Offsets[j]);
                y[p * pw.OutPlane + w] = s / Divisor(ctx, pw, w);
            }
        });
        return [TensorIndexing.FromDoublesAs(x.Type, pw.OutShape(x.Shape), y)];
    }

    // Linear with non-negative weights 1/divisor: an exact sparse map (the weight 1/d is rounded once, covered
    // by the outward rounding's few extra operations).
    private static BoundRules.SparseMap BoundMap(OpContext ctx, int[] x)
    {
        var pw = PoolWindows.Build(PoolWindows.Geometry(ctx, x));
        return pw.AsSparse(x, w => 1.0 / Divisor(ctx, pw, w));
    }
    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs) => BoundRules.Sparse(BoundMap(ctx, inputs[0]!.Shape), inputs[0]);
    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r) => BoundRules.SparseBackward(r, BoundMap(ctx, r.Inputs[0]!.Shape));

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        var x = inputs[0]!;
        var pw = PoolWindows.Build(PoolWindows.Geometry(ctx, x.Shape));
        int planes = x.Shape[0] * x.Shape[1];
        var gy = TensorIndexing.AsDoubles(g[0]!);
        var dx = new double[x.Length];
        ForkJoin.For(planes, p =>
        {
            for (int w = 0; w < pw.OutPlane; w++)
            {
                double gv = gy[p * pw.OutPlane + w] / Divisor(ctx, pw, w);
                for (int j = pw.Start[w]; j < pw.Start[w + 1]; j++) dx[p * pw.InPlane + pw.Offsets[j]] += gv;
            }
        });
        return [TensorIndexing.FromDoublesAs(x.Type == DType.Float64 ? DType.Float64 : DType.Float32, x.Shape, dx)];
    }
}

/// <summary>Global pooling: reduce all spatial axes of [N, C, D1..] to size 1.</summary>
public abstract class GlobalPoolOp : Operator
{
    protected abstract bool IsMax { get; }

    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) => [s[0] is null ? null : s[0]!.Select((d, i) => i < 2 ? d : 1).ToArray()];

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var x = inputs[0]!;
        if (x.Rank < 3) throw new OperatorException($"{ctx.Where}: input must be [N, C, D1, ...], got {x.ShapeString}");
        int planes = x.Shape[0] * x.Shape[1], inner = x.Length / Math.Max(1, planes);
        var y = new double[planes];
        for (int p = 0; p < planes; p++)
        {
            double acc = IsMax ? double.NegativeInfinity : 0;
            for (int k = 0; k < inner; k++) { double v = x.GetDouble(p * inner + k); acc = IsMax ? (double.IsNaN(v) ? v : Math.Max(acc, v)) : acc + v; }
            y[p] = IsMax ? acc : acc / inner;
        }
        return [TensorIndexing.FromDoublesAs(x.Type, x.Shape.Select((d, i) => i < 2 ? d : 1).ToArray(), y)];
    }

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        var x = inputs[0]!; var y = outputs[0]; var gy = g[0]!;
        int planes = x.Shape[0] * x.Shape[1], inner = x.Length / Math.Max(1, planes);
        var dx = new double[x.Length];
        for (int p = 0; p < planes; p++)
        {
            if (!IsMax) { for (int k = 0; k < inner; k++) dx[p * inner + k] = gy.GetDouble(p) / inner; continue; }
            for (int k = 0; k < inner; k++)
                if (x.GetDouble(p * inner + k) == y.GetDouble(p)) { dx[p * inner + k] = gy.GetDouble(p); break; }
        }
        return [TensorIndexing.FromDoublesAs(x.Type == DType.Float64 ? DType.Float64 : DType.Float32, x.Shape, dx)];
    }

    // One window per (sample, channel) plane: averaging is a sparse linear map, the max a window max.
    private BoundRules.SparseMap BoundMap(int[] x)
    {
        int planes = x[0] * x[1], inner = Tensor.ElementCount(x) / Math.Max(1, planes);
        var map = BoundRules.SparseMap.Reduce(x.Select((d, i) => i < 2 ? d : 1).ToArray(), Enumerable.Range(0, planes * inner).Select(i => i / inner).ToArray(), 1.0 / inner);
        return IsMax ? map with { Weight = null } : map;
    }
    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs) =>
        inputs[0]!.Shape.Length < 3 ? null : IsMax ? BoundRules.WindowMax(BoundMap(inputs[0]!.Shape), inputs[0]!) : BoundRules.Sparse(BoundMap(inputs[0]!.Shape), inputs[0]);
    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r) =>
        IsMax ? BoundRules.WindowMaxBackward(r, BoundMap(r.Inputs[0]!.Shape)) : BoundRules.SparseBackward(r, BoundMap(r.Inputs[0]!.Shape));
    public override double[]? FloatError(OpContext ctx, IntervalBounds?[] inputs, double[]?[] errors) =>
        IsMax ? BoundRules.WindowMaxError(BoundMap(inputs[0]!.Shape), errors[0]!) : null;
}

public sealed class GlobalAveragePoolOp : GlobalPoolOp { public override string OpType => "GlobalAveragePool"; protected override bool IsMax => false; }
public sealed class GlobalMaxPoolOp : GlobalPoolOp { public override string OpType => "GlobalMaxPool"; protected override bool IsMax => true; }
