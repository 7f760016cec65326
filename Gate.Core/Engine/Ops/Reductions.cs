using Gate.Core.Tensors;
using Gate.Core.Engine.Bounds;

namespace Gate.Core.Engine.Ops;

/// <summary>
/// Reductions over a set of axes. Axes come from the "axes" input from opset 13 (ReduceSum) / 18 (the others)
/// and from the attribute before; empty axes reduce everything unless noop_with_empty_axes. Accumulation is in
/// float64, so float32 sums do not depend on the order of a long reduction.
/// </summary>
public abstract class ReduceOp : Operator
{
    protected abstract long AxesInputOpset { get; }
    protected abstract double Init { get; }
    protected abstract double Step(double acc, double v);
    protected virtual double Finish(double acc, int count) => acc;

    protected sealed record Plan(int[] OutShape, int[] Map, int Count, bool Noop);

    /// <summary>Known when the axes are an attribute or absent; an axes input is a value, unknown at shape time.</summary>
    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s)
    {
        bool axesInput = ctx.Opset >= AxesInputOpset && ctx.Node.Inputs.Length > 1 && ctx.Node.Inputs[1].Length > 0;
        if (s[0] is null || axesInput) return [null];
        return [MakePlan(ctx, s[0]!, ctx.Node.GetInts("axes")).OutShape];
    }

    protected Plan MakePlan(OpContext ctx, Tensor?[] inputs) =>
        MakePlan(ctx, inputs[0]!.Shape, ctx.Opset >= AxesInputOpset ? TensorIndexing.LongsOf(inputs, 1) : ctx.Node.GetInts("axes"));

    private static Plan MakePlan(OpContext ctx, int[] s, long[]? axes)
    {
        bool keep = ctx.Node.GetBool("keepdims", true);
        if (axes is not { Length: > 0 } && ctx.Node.GetBool("noop_with_empty_axes", false))
            return new Plan(s, Enumerable.Range(0, Tensor.ElementCount(s)).ToArray(), 1, true);
        var set = axes is { Length: > 0 } ? axes.Select(a => TensorIndexing.Axis(a, s.Length, ctx)).ToHashSet() : Enumerable.Range(0, s.Length).ToHashSet();
        var keepShape = s.Select((d, i) => set.Contains(i) ? 1 : d).ToArray();
        var outShape = keep ? keepShape : s.Where((d, i) => !set.Contains(i)).ToArray();
        int count = set.Aggregate(1, (a, i) => a * s[i]);
        return new Plan(outShape, Broadcast.SourceIndex(keepShape, s), count, false);
    }

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var x = inputs[0]!;
        var p = MakePlan(ctx, inputs);
        if (p.Noop) return [x];
        var acc = new double[Tensor.ElementCount(p.OutShape)];
        Array.Fill(acc, Init);
        for (int i = 0; i < p.Map.Length; i++) acc[p.Map[i]] = Step(acc[p.Map[i]], x.GetDouble(i));
        for (int i = 0; i < acc.Length; i++) acc[i] = Finish(acc[i], p.Count);
        if (x.Type == DType.Bool) return [Tensor.FromLongs(p.OutShape, acc.Select(v => v > 0 ? 1L : 0L).ToArray(), DType.Bool)];
        if (x.Type.Storage() == StorageKind.Long)
            return [Tensor.FromLongs(p.OutShape, acc.Select(v => double.IsInfinity(v) ? (v < 0 ? long.MinValue : long.MaxValue) : IntegerWrap.Wrap((long)v, x.Type)).ToArray(), x.Type)];
        return [TensorIndexing.FromDoublesAs(x.Type, p.OutShape, acc)];
    }

    /// <summary>Weight of each input in its output for linear reductions (Sum 1, Mean 1/count); null = not linear.</summary>
    protected virtual double? LinearWeight(Plan p) => null;
    protected virtual bool IsMax => false;

    private BoundRules.SparseMap? BoundMap(OpContext ctx, IntervalBounds?[] inputs)
    {
        if (inputs.Skip(1).Any(t => t is { IsConstant: false })) return null;
        var p = MakePlan(ctx, BoundRules.StandIns(inputs));
        if (p.Noop) return BoundRules.SparseMap.Reduce(p.OutShape, p.Map, 1);
        return IsMax ? BoundRules.SparseMap.Reduce(p.OutShape, p.Map, 1) : LinearWeight(p) is { } w ? BoundRules.SparseMap.Reduce(p.OutShape, p.Map, w) : null;
    }

    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs) =>
        BoundMap(ctx, inputs) is not { } m ? null : IsMax ? BoundRules.WindowMax(m, inputs[0]!) : BoundRules.Sparse(m, inputs[0]);

    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r)
    {
        if (BoundMap(ctx, r.Inputs) is not { } m) return null;
        var res = IsMax ? BoundRules.WindowMaxBackward(r, m) : BoundRules.SparseBackward(r with { Inputs = [r.Inputs[0]] }, m);
        var all = new double[]?[r.Inputs.Length];
        all[0] = res.InputLambdas[0];
        return new LinearBackward(all, res.Bias);
    }

    public override double[]? FloatError(OpContext ctx, IntervalBounds?[] inputs, double[]?[] errors) =>
        IsMax && BoundMap(ctx, inputs) is { } m ? BoundRules.WindowMaxError(m, errors[0]!) : null;

    /// <summary>d(out)/d(x_i) given x_i and the output it fed (Sum: 1, Mean: 1/count, Max: 1 at the first maximum).</summary>
    protected abstract void Distribute(Tensor x, Tensor y, Tensor gy, Plan p, double[] dx);

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        var x = inputs[0]!;
        var p = MakePlan(ctx, inputs);
        if (p.Noop) return [g[0], null];
        var dx = new double[x.Length];
        Distribute(x, outputs[0], g[0]!, p, dx);
        return [x.Type == DType.Float64 ? Tensor.FromDoubles(x.Shape, dx) : Tensor.FromFloats(x.Shape, dx.Select(v => (float)v).ToArray()), null];
    }
}

public sealed class ReduceSumOp : ReduceOp
{
    public override string OpType => "ReduceSum";
    protected override double? LinearWeight(Plan p) => 1;
    protected override long AxesInputOpset => 13;
    protected override double Init => 0;
    protected override double Step(double acc, double v) => acc + v;
    protected override void Distribute(Tensor x, Tensor y, Tensor gy, Plan p, double[] dx)
    {
        for (int i = 0; i < dx.Length; i++) dx[i] = gy.GetDouble(p.Map[i]);
    }
}

public sealed class ReduceMeanOp : ReduceOp
{
    public override string OpType => "ReduceMean";
    protected override double? LinearWeight(Plan p) => 1.0 / p.Count;
    protected override long AxesInputOpset => 18;
    protected override double Init => 0;
    protected override double Step(double acc, double v) => acc + v;
    protected override double Finish(double acc, int count) => acc / count;
    protected override void Distribute(Tensor x, Tensor y, Tensor gy, Plan p, double[] dx)
    {
        for (int i = 0; i < dx.Length; i++) dx[i] = gy.GetDouble(p.Map[i]) / p.Count;
    }
}

public sealed class ReduceMaxOp : ReduceOp
{
    public override string OpType => "ReduceMax";
    protected override bool IsMax => true;
    protected override long AxesInputOpset => 18;
    protected override double Init => double.NegativeInfinity;
    protected override double Step(double acc, double v) => double.IsNaN(acc) || double.IsNaN(v) ? double.NaN : Math.Max(acc, v);
    protected override void Distribute(Tensor x, Tensor y, Tensor gy, Plan p, double[] dx)
    {
        var taken = new bool[y.Length];
        for (int i = 0; i < dx.Length; i++)
        {
            int o = p.Map[i];
            if (!taken[o] && x.GetDouble(i) == y.GetDouble(o)) { taken[o] = true; dx[i] = gy.GetDouble(o); }
        }
    }
}

/// <summary>
/// ReduceProd (exported by torch for numel-style shape arithmetic and by some pooling heads). Gradient: the product
/// of the other elements of the same reduction, computed without dividing so zeros are exact.
/// </summary>
public sealed class ReduceProdOp : ReduceOp
{
    public override string OpType => "ReduceProd";
    protected override long AxesInputOpset => 18;
    protected override double Init => 1;
    protected override double Step(double acc, double v) => acc * v;
    protected override void Distribute(Tensor x, Tensor y, Tensor gy, Plan p, double[] dx)
    {
        // Per output: the number of zeros and the product of the non-zero elements.
        var zeros = new int[y.Length];
        var nonZero = new double[y.Length];
        Array.Fill(nonZero, 1.0);
        for (int i = 0; i < dx.Length; i++)
        {
            double v = x.GetDouble(i);
            if (v == 0) zeros[p.Map[i]]++; else nonZero[p.Map[i]] *= v;
        }
        for (int i = 0; i < dx.Length; i++)
        {
            int o = p.Map[i];
            double v = x.GetDouble(i);
            double others = v != 0 ? (zeros[o] == 0 ? nonZero[o] / v : 0) : (zeros[o] == 1 ? nonZero[o] : 0);
            dx[i] = gy.GetDouble(o) * others;
        }
    }
}

/// <summary>ArgMax along one axis (first or, with select_last_index, last maximum); int64 output.</summary>
public sealed class ArgMaxOp : Operator
{
    public override string OpType => "ArgMax";
    public override bool IsDifferentiable => false;
    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s)
    {
        if (s[0] is null) return [null];
        int axis = TensorIndexing.Axis(ctx.Node.GetInt("axis", 0), s[0]!.Length, ctx);
        return [ctx.Node.GetBool("keepdims", true) ? s[0]!.Select((d, i) => i == axis ? 1 : d).ToArray() : s[0]!.Where((d, i) => i != axis).ToArray()];
    }

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var x = inputs[0]!; var s = x.Shape;
        int axis = TensorIndexing.Axis(ctx.Node.GetInt("axis", 0), s.Length, ctx);
        bool keep = ctx.Node.GetBool("keepdims", true), last = ctx.Node.GetBool("select_last_index", false);
        int outer = s.Take(axis).Aggregate(1, (a, b) => a * b), dim = s[axis], inner = s.Skip(axis + 1).Aggregate(1, (a, b) => a * b);
        if (dim == 0) throw new OperatorException($"{ctx.Where}: ArgMax over an empty axis");
        var y = new long[outer * inner];
        for (int o = 0; o < outer; o++)
            for (int q = 0; q < inner; q++)
            {
                int best = 0; double bv = x.GetDouble(o * dim * inner + q);
                for (int k = 1; k < dim; k++)
                {
                    double v = x.GetDouble((o * dim + k) * inner + q);
                    if (v > bv || (last && v == bv)) { bv = v; best = k; }
                }
                y[o * inner + q] = best;
            }
        var shape = keep ? s.Select((d, i) => i == axis ? 1 : d).ToArray() : s.Where((d, i) => i != axis).ToArray();
        return [Tensor.FromLongs(shape, y)];
    }
}
