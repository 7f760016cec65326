using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Gate.Core.Tensors;
using Gate.Core.Engine.Bounds;

namespace Gate.Core.Engine.Ops;

/// <summary>
/// Shared machinery for broadcasting element-wise binary arithmetic. Each concrete operator supplies its scalar
/// function per storage class and its partial derivatives; broadcasting and gradient reduction live here once.
/// </summary>
public abstract class BinaryArithmetic : Operator
{
    protected abstract float F(float a, float b);
    protected abstract double D(double a, double b);
    protected abstract long L(long a, long b, DType type);
    /// <summary>d(out)/d(a) and d(out)/d(b) at one element.</summary>
    protected abstract (double da, double db) Partials(double a, double b, double y);

    /// <summary>Same-shape SIMD fast path (float32); null when the operator has none.</summary>
    protected virtual void FastFloat(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y) => throw new NotSupportedException();
    protected virtual bool HasFastFloat => false;

    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) =>
        [s[0] is null || s[1] is null ? null : Broadcast.Shape(s[0]!, s[1]!, ctx.Where)];

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var a = inputs[0]!; var b = inputs[1]!;
        if (a.Type != b.Type) throw new OperatorException($"{ctx.Where}: operand types differ ({a.Type.OnnxName()} and {b.Type.OnnxName()})");
        var shape = Broadcast.Shape(a.Shape, b.Shape, ctx.Where);
        int n = Tensor.ElementCount(shape);
        switch (a.Type.Storage())
        {
            case StorageKind.Float:
            {
                // Pooled like every other float kernel's output: a fresh 8 MB array per residual Add (ResNet at batch
                // 32) cost a large-object allocation and GC work each call, 14 % of a pass in the profile.
                var y = ctx.RentFloats(n);
                if (HasFastFloat && a.Shape.SequenceEqual(b.Shape)) FastFloat(a.Floats.AsSpan(0, n), b.Floats.AsSpan(0, n), y);
                else
                {
                    var ia = Broadcast.SourceIndex(a.Shape, shape); var ib = Broadcast.SourceIndex(b.Shape, shape);
                    for (int i = 0; i < n; i++) y[i] = F(a.Floats![ia[i]], b.Floats![ib[i]]);
                }
                return [Tensor.FromFloats(shape, y, a.Type)];
            }
            case StorageKind.Double:
            {
                var y = new double[n];
                var ia = Broadcast.SourceIndex(a.Shape, shape); var ib = Broadcast.SourceIndex(b.Shape, shape);
                for (int i = 0; i < n; i++) y[i] = D(a.Doubles![ia[i]], b.Doubles![ib[i]]);
                return [Tensor.FromDoubles(shape, y)];
            }
            case StorageKind.Long:
            {
                var y = new long[n];
                var ia = Broadcast.SourceIndex(a.Shape, shape); var ib = Broadcast.SourceIndex(b.Shape, shape);
                for (int i = 0; i < n; i++) y[i] = IntegerWrap.Wrap(L(a.Longs![ia[i]], b.Longs![ib[i]], a.Type), a.Type);
                return [Tensor.FromLongs(shape, y, a.Type)];
            }
            default: throw new OperatorException($"{ctx.Where}: {OpType} does not accept {a.Type.OnnxName()}");
        }
    }

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] outputGrads)
    {
        var a = inputs[0]!; var b = inputs[1]!; var y = outputs[0]; var g = outputGrads[0]!;
        var shape = y.Shape;
        int n = y.Length;
        // A residual connection (Add of two same-shape tensors, ResNet's skip): dA = dY, dB = ±dY, copied at memory
        // speed instead of through per-element index maps and partials.
        if (this is AddOp or SubOp && g.Floats is { } gf && a.Shape.AsSpan().SequenceEqual(shape) && b.Shape.AsSpan().SequenceEqual(shape))
        {
            Tensor? Grad(int input, bool negate)
            {
                if (!ctx.NeedsGradient(input)) return null;
                var d = ctx.RentFloats(n);
                if (negate) TensorPrimitives.Negate(gf.AsSpan(0, n), d.AsSpan(0, n)); else gf.AsSpan(0, n).CopyTo(d);
                return Tensor.FromFloats(shape, d);
            }
            return [Grad(0, false), Grad(1, this is SubOp)];
        }
        var ia = Broadcast.SourceIndex(a.Shape, shape); var ib = Broadcast.SourceIndex(b.Shape, shape);
        if (a.Type == DType.Float64)
        {
            var ga = new double[n]; var gb = new double[n];
            for (int i = 0; i < n; i++)
            {
                var (da, db) = Partials(a.Doubles![ia[i]], b.Doubles![ib[i]], y.Doubles![i]);
                ga[i] = g.Doubles![i] * da; gb[i] = g.Doubles[i] * db;
            }
            return [Broadcast.ReduceTo(Tensor.FromDoubles(shape, ga), a.Shape), Broadcast.ReduceTo(Tensor.FromDoubles(shape, gb), b.Shape)];
        }
        var fa = new float[n]; var fb = new float[n];
        for (int i = 0; i < n; i++)
        {
            var (da, db) = Partials(a.Floats![ia[i]], b.Floats![ib[i]], y.Floats![i]);
            fa[i] = (float)(g.Floats![i] * da); fb[i] = (float)(g.Floats[i] * db);
        }
        return [Broadcast.ReduceTo(Tensor.FromFloats(shape, fa), a.Shape), Broadcast.ReduceTo(Tensor.FromFloats(shape, fb), b.Shape)];
    }
}

/// <summary>Two's-complement wrap-around of int64 results to narrower integer types (ONNX integer semantics).</summary>
public static class IntegerWrap
{
    public static long Wrap(long v, DType t) => t switch
    {
        DType.Int8 => (sbyte)v, DType.UInt8 => (byte)v, DType.Int16 => (short)v, DType.UInt16 => (ushort)v,
        DType.Int32 => (int)v, DType.UInt32 => (uint)v, DType.Bool => v != 0 ? 1 : 0, _ => v,
    };
}

public sealed class AddOp : BinaryArithmetic
{
    public override string OpType => "Add";
    protected override float F(float a, float b) => a + b;
    protected override double D(double a, double b) => a + b;
    protected override long L(long a, long b, DType t) => unchecked(a + b);
    protected override (double, double) Partials(double a, double b, double y) => (1, 1);
    protected override bool HasFastFloat => true;
    protected override void FastFloat(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y) => TensorPrimitives.Add(a, b, y);
    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs) => BoundRules.BroadcastSum(ctx, inputs[0]!, inputs[1]!, +1);
    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r) => BoundRules.BroadcastSumBackward(r, +1);
}

public sealed class SubOp : BinaryArithmetic
{
    public override string OpType => "Sub";
    protected override float F(float a, float b) => a - b;
    protected override double D(double a, double b) => a - b;
    protected override long L(long a, long b, DType t) => unchecked(a - b);
    protected override (double, double) Partials(double a, double b, double y) => (1, -1);
    protected override bool HasFastFloat => true;
    protected override void FastFloat(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y) => TensorPrimitives.Subtract(a, b, y);
    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs) => BoundRules.BroadcastSum(ctx, inputs[0]!, inputs[1]!, -1);
    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r) => BoundRules.BroadcastSumBackward(r, -1);
}

public sealed class MulOp : BinaryArithmetic
{
    public override string OpType => "Mul";
    protected override float F(float a, float b) => a * b;
    protected override double D(double a, double b) => a * b;
    protected override long L(long a, long b, DType t) => unchecked(a * b);
    protected override (double, double) Partials(double a, double b, double y) => (b, a);
    protected override bool HasFastFloat => true;
    protected override void FastFloat(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y) => TensorPrimitives.Multiply(a, b, y);
    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs) => BoundRules.Product(ctx, inputs[0]!, inputs[1]!, divide: false);
    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r) => BoundRules.ProductBackward(r, divide: false);
    // By a constant the map is affine (the generic error rule); two variables need the product rule.
    public override double[]? FloatError(OpContext ctx, IntervalBounds?[] inputs, double[]?[] errors) =>
        errors[0] is { } ea && errors[1] is { } eb ? BoundRules.ProductError(ctx, inputs[0]!, inputs[1]!, ea, eb) : null;
}
