using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Gate.Core.Tensors;
using Gate.Core.Engine.Bounds;

namespace Gate.Core.Engine.Ops;

public sealed class DivOp : BinaryArithmetic
{
    public override string OpType => "Div";
    protected override float F(float a, float b) => a / b;
    protected override double D(double a, double b) => a / b;
    // Integer division truncates toward zero (C semantics, as ONNX Runtime); uint64 is held as its bit pattern.
    protected override long L(long a, long b, DType t) => t == DType.UInt64 ? (long)((ulong)a / (ulong)b) : a / b;
    protected override (double, double) Partials(double a, double b, double y) => (1 / b, -a / (b * b));
    protected override bool HasFastFloat => true;
    protected override void FastFloat(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y) => TensorPrimitives.Divide(a, b, y);
    // Bounds only for division by a non-zero constant (affine; the generic float32 error rule applies).
    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs) => BoundRules.Product(ctx, inputs[0]!, inputs[1]!, divide: true);
    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r) => BoundRules.ProductBackward(r, divide: true);
}

/// <summary>PRelu: x where x ≥ 0, slope·x elsewhere; the slope broadcasts to x.</summary>
public sealed class PReluOp : BinaryArithmetic
{
    public override string OpType => "PRelu";
    protected override float F(float a, float b) => a < 0 ? a * b : a;
    protected override double D(double a, double b) => a < 0 ? a * b : a;
    protected override long L(long a, long b, DType t) => a < 0 ? a * b : a;
    protected override (double, double) Partials(double a, double b, double y) => a < 0 ? (b, a) : (1, 0);
}

/// <summary>Pow(X, Y): the result has X's type; Y may be of another numeric type (opset 12+).</summary>
public sealed class PowOp : Operator
{
    public override string OpType => "Pow";
    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) =>
        [s[0] is null || s[1] is null ? null : Broadcast.Shape(s[0]!, s[1]!, ctx.Where)];

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var a = inputs[0]!; var b = inputs[1]!;
        var shape = Broadcast.Shape(a.Shape, b.Shape, ctx.Where);
        var ia = Broadcast.SourceIndex(a.Shape, shape); var ib = Broadcast.SourceIndex(b.Shape, shape);
        int n = ia.Length;
        if (a.Floats is not null && b.Floats is not null)
        {
            var y = new float[n];
            for (int i = 0; i < n; i++) y[i] = MathF.Pow(a.Floats[ia[i]], b.Floats[ib[i]]);
            return [Tensor.FromFloats(shape, NarrowFloats.Round(y, a.Type), a.Type)];
        }
        var r = new double[n];
        for (int i = 0; i < n; i++) r[i] = Math.Pow(a.GetDouble(ia[i]), b.GetDouble(ib[i]));
        return [TensorIndexing.FromDoublesAs(a.Type, shape, r)];
    }

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        var a = inputs[0]!; var b = inputs[1]!; var y = outputs[0]; var gy = g[0]!;
        var ia = Broadcast.SourceIndex(a.Shape, y.Shape); var ib = Broadcast.SourceIndex(b.Shape, y.Shape);
        int n = y.Length;
        var ga = new double[n]; var gb = new double[n];
        for (int i = 0; i < n; i++)
        {
            double av = a.GetDouble(ia[i]), bv = b.GetDouble(ib[i]), yv = y.GetDouble(i), gv = gy.GetDouble(i);
            ga[i] = gv * bv * Math.Pow(av, bv - 1);
            gb[i] = av > 0 ? gv * yv * Math.Log(av) : 0; // d/db is defined only for a positive base
        }
        Tensor Back(double[] v, Tensor like) => like.Type == DType.Float64 ? Tensor.FromDoubles(y.Shape, v) : Tensor.FromFloats(y.Shape, v.Select(d => (float)d).ToArray());
        return [a.Type.IsFloating() ? Broadcast.ReduceTo(Back(ga, a), a.Shape) : null, b.Type.IsFloating() ? Broadcast.ReduceTo(Back(gb, b), b.Shape) : null];
    }
}

/// <summary>Broadcasting comparisons producing bool. uint64 compares unsigned; strings compare by value (Equal).</summary>
public abstract class ComparisonOp : Operator
{
    protected abstract bool Test(int cmp);
    public override bool IsDifferentiable => false;
    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) =>
        [s[0] is null || s[1] is null ? null : Broadcast.Shape(s[0]!, s[1]!, ctx.Where)];

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var a = inputs[0]!; var b = inputs[1]!;
        if (a.Type != b.Type) throw new OperatorException($"{ctx.Where}: operand types differ ({a.Type.OnnxName()} and {b.Type.OnnxName()})");
        var shape = Broadcast.Shape(a.Shape, b.Shape, ctx.Where);
        var ia = Broadcast.SourceIndex(a.Shape, shape); var ib = Broadcast.SourceIndex(b.Shape, shape);
        var y = new long[ia.Length];
        for (int i = 0; i < y.Length; i++)
        {
            int c = a.Type.Storage() switch
            {
                StorageKind.Float => Cmp(a.Floats![ia[i]], b.Floats![ib[i]]),
                StorageKind.Double => Cmp(a.Doubles![ia[i]], b.Doubles![ib[i]]),
                StorageKind.Long => a.Type == DType.UInt64 ? ((ulong)a.Longs![ia[i]]).CompareTo((ulong)b.Longs![ib[i]]) : a.Longs![ia[i]].CompareTo(b.Longs![ib[i]]),
                _ => string.CompareOrdinal(a.Strings![ia[i]], b.Strings![ib[i]]),
            };
            y[i] = Test(c) ? 1 : 0;
        }
        return [Tensor.FromLongs(shape, y, DType.Bool)];
    }

    /// <summary>NaN is unordered: it compares neither equal, greater nor less (2 matches no test).</summary>
    private static int Cmp(double x, double y) => double.IsNaN(x) || double.IsNaN(y) ? 2 : x.CompareTo(y);
}

public sealed class EqualOp : ComparisonOp { public override string OpType => "Equal"; protected override bool Test(int c) => c == 0; }
public sealed class GreaterOp : ComparisonOp { public override string OpType => "Greater"; protected override bool Test(int c) => c == 1; }
public sealed class LessOp : ComparisonOp { public override string OpType => "Less"; protected override bool Test(int c) => c == -1; }

/// <summary>Variadic element-wise folds with multidirectional broadcasting (Max, Min, Sum).</summary>
public abstract class VariadicOp : Operator
{
    protected abstract double Fold(double acc, double v);
    protected virtual long FoldLong(long acc, long v, DType t) => (long)Fold(acc, v);

    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s)
    {
        if (s.Any(x => x is null)) return [null];
        return [s.Aggregate((x, y) => Broadcast.Shape(x!, y!, ctx.Where))];
    }

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var ts = inputs.Select(t => t!).ToArray();
        if (ts.Length == 0) throw new OperatorException($"{ctx.Where}: {OpType} needs at least one input");
        var type = ts[0].Type;
        if (ts.Any(t => t.Type != type)) throw new OperatorException($"{ctx.Where}: all inputs of {OpType} must have the same type");
        var shape = ts.Select(t => t.Shape).Aggregate((x, y) => Broadcast.Shape(x, y, ctx.Where));
        var idx = ts.Select(t => Broadcast.SourceIndex(t.Shape, shape)).ToArray();
        int n = Tensor.ElementCount(shape);
        if (type.Storage() == StorageKind.Long)
        {
            var yl = new long[n];
            for (int i = 0; i < n; i++)
            {
                long acc = ts[0].Longs![idx[0][i]];
                for (int k = 1; k < ts.Length; k++) acc = FoldLong(acc, ts[k].Longs![idx[k][i]], type);
                yl[i] = IntegerWrap.Wrap(acc, type);
            }
            return [Tensor.FromLongs(shape, yl, type)];
        }
        var y = new double[n];
        for (int i = 0; i < n; i++)
        {
            double acc = ts[0].GetDouble(idx[0][i]);
            for (int k = 1; k < ts.Length; k++) acc = Fold(acc, ts[k].GetDouble(idx[k][i]));
            y[i] = acc;
        }
        return [TensorIndexing.FromDoublesAs(type, shape, y)];
    }

    /// <summary>Which inputs receive the gradient of element i (Sum: all; Max/Min: the first that attains it).</summary>
    protected abstract bool Receives(double inputValue, double output, ref bool taken);

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        var y = outputs[0]; var gy = g[0]!;
        var idx = inputs.Select(t => Broadcast.SourceIndex(t!.Shape, y.Shape)).ToArray();
        var parts = inputs.Select(_ => new double[y.Length]).ToArray();
        for (int i = 0; i < y.Length; i++)
        {
            bool taken = false;
            double yv = y.GetDouble(i), gv = gy.GetDouble(i);
            for (int k = 0; k < inputs.Length; k++)
                if (Receives(inputs[k]!.GetDouble(idx[k][i]), yv, ref taken)) parts[k][i] = gv;
        }
        var r = new Tensor?[inputs.Length];
        for (int k = 0; k < inputs.Length; k++)
        {
            var full = y.Type == DType.Float64 ? Tensor.FromDoubles(y.Shape, parts[k]) : Tensor.FromFloats(y.Shape, parts[k].Select(d => (float)d).ToArray());
            r[k] = Broadcast.ReduceTo(full, inputs[k]!.Shape);
        }
        return r;
    }
}

public sealed class MaxOp : VariadicOp
{
    public override string OpType => "Max";
    protected override double Fold(double a, double v) => double.IsNaN(a) || double.IsNaN(v) ? double.NaN : Math.Max(a, v);
    protected override long FoldLong(long a, long v, DType t) => t == DType.UInt64 ? (long)Math.Max((ulong)a, (ulong)v) : Math.Max(a, v);
    protected override bool Receives(double x, double y, ref bool taken) { if (taken || x != y) return false; taken = true; return true; }
}

public sealed class MinOp : VariadicOp
{
    public override string OpType => "Min";
    protected override double Fold(double a, double v) => double.IsNaN(a) || double.IsNaN(v) ? double.NaN : Math.Min(a, v);
    protected override long FoldLong(long a, long v, DType t) => t == DType.UInt64 ? (long)Math.Min((ulong)a, (ulong)v) : Math.Min(a, v);
    protected override bool Receives(double x, double y, ref bool taken) { if (taken || x != y) return false; taken = true; return true; }
}

public sealed class SumOp : VariadicOp
{
    public override string OpType => "Sum";
    protected override double Fold(double a, double v) => a + v;
    protected override long FoldLong(long a, long v, DType t) => unchecked(a + v);
    protected override bool Receives(double x, double y, ref bool taken) => true;
}

/// <summary>Where(cond, X, Y) with three-way broadcasting; gradients flow to X and Y, not to the condition.</summary>
public sealed class WhereOp : Operator
{
    public override string OpType => "Where";
    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) =>
        [s.Any(x => x is null) ? null : Broadcast.Shape(Broadcast.Shape(s[0]!, s[1]!, ctx.Where), s[2]!, ctx.Where)];

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var c = inputs[0]!; var x = inputs[1]!; var y = inputs[2]!;
        var shape = Broadcast.Shape(Broadcast.Shape(c.Shape, x.Shape, ctx.Where), y.Shape, ctx.Where);
        var ic = Broadcast.SourceIndex(c.Shape, shape); var ix = Broadcast.SourceIndex(x.Shape, shape); var iy = Broadcast.SourceIndex(y.Shape, shape);
        // Concatenate X and Y logically: index >= x.Length reads Y.
        var idx = new int[ic.Length];
        var both = TensorIndexing.ConcatFlat([x, y]);
        for (int i = 0; i < idx.Length; i++) idx[i] = c.Longs![ic[i]] != 0 ? ix[i] : x.Length + iy[i];
        return [TensorIndexing.Take(both, idx, shape)];
    }


    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        var c = inputs[0]!; var gy = g[0]!; var shape = outputs[0].Shape;
        var ic = Broadcast.SourceIndex(c.Shape, shape);
        var gx = new double[ic.Length]; var gyy = new double[ic.Length];
        for (int i = 0; i < ic.Length; i++) { if (c.Longs![ic[i]] != 0) gx[i] = gy.GetDouble(i); else gyy[i] = gy.GetDouble(i); }
        Tensor Make(double[] v) => gy.Type == DType.Float64 ? Tensor.FromDoubles(shape, v) : Tensor.FromFloats(shape, v.Select(d => (float)d).ToArray());
        return [null, Broadcast.ReduceTo(Make(gx), inputs[1]!.Shape), Broadcast.ReduceTo(Make(gyy), inputs[2]!.Shape)];
    }

    // Bounds: with a constant condition (an attention mask, a shape test folded at bound time) Where only moves
    // elements of X and Y, so its rules are exact (a SparseMap over X and Y laid end to end; constants join the
    // bias). A condition that varies with the input makes the output switch between X and Y, which no linear
    // relaxation here covers: null, so the prover answers unknown rather than something unsound.
    private static (BoundRules.SparseMap Map, IntervalBounds?[] Values)? Selection(OpContext ctx, IntervalBounds?[] inputs)
    {
        if (inputs[0] is not { Constant: { } c } || inputs[1] is not { } x || inputs[2] is not { } y) return null;
        var shape = Broadcast.Shape(Broadcast.Shape(c.Shape, x.Shape, ctx.Where), y.Shape, ctx.Where);
        var ic = Broadcast.SourceIndex(c.Shape, shape); var ix = Broadcast.SourceIndex(x.Shape, shape); var iy = Broadcast.SourceIndex(y.Shape, shape);
        var idx = new int[ic.Length];
        for (int i = 0; i < idx.Length; i++) idx[i] = c.GetDouble(ic[i]) != 0 ? ix[i] : x.Length + iy[i];
        return (BoundRules.SparseMap.Gather(shape, idx, 0), [null, x, y]);
    }

    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs) =>
        Selection(ctx, inputs) is { } s ? BoundRules.Sparse(s.Map, s.Values) : null;

    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r)
    {
        if (Selection(ctx, r.Inputs) is not { } s) return null;
        return BoundRules.SparseBackward(r with { Inputs = s.Values }, s.Map);
    }
}

/// <summary>Clip to [min, max]: attributes before opset 11, optional scalar inputs from 11 on.</summary>
public sealed class ClipOp : Operator
{
    public override string OpType => "Clip";
    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) => [s[0]];

    private static (double lo, double hi) Bounds(OpContext ctx, Tensor?[] inputs)
    {
        if (ctx.Opset < 11) return (ctx.Node.GetFloat("min", float.MinValue), ctx.Node.GetFloat("max", float.MaxValue));
        double lo = inputs.Length > 1 && inputs[1] is { } a ? a.GetDouble(0) : double.NegativeInfinity;
        double hi = inputs.Length > 2 && inputs[2] is { } b ? b.GetDouble(0) : double.PositiveInfinity;
        return (lo, hi);
    }

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var x = inputs[0]!;
        var (lo, hi) = Bounds(ctx, inputs);
        // ONNX: min > max gives max everywhere (min is applied first, then max).
        var y = new double[x.Length];
        for (int i = 0; i < y.Length; i++) y[i] = Math.Min(Math.Max(x.GetDouble(i), lo), hi);
        if (x.Floats is not null)
        {
            var f = new float[x.Length];
            for (int i = 0; i < f.Length; i++) f[i] = float.IsNaN(x.Floats[i]) ? float.NaN : (float)y[i];
            return [Tensor.FromFloats(x.Shape, f, x.Type)];
        }
        return [TensorIndexing.FromDoublesAs(x.Type, x.Shape, y)];
    }

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        var x = inputs[0]!; var gy = g[0]!;
        var (lo, hi) = Bounds(ctx, inputs);
        var r = new double[x.Length];
        for (int i = 0; i < r.Length; i++) { double v = x.GetDouble(i); r[i] = v >= lo && v <= hi ? gy.GetDouble(i) : 0; }
        return [x.Type == DType.Float64 ? Tensor.FromDoubles(x.Shape, r) : Tensor.FromFloats(x.Shape, r.Select(d => (float)d).ToArray()), null, null];
    }
}
