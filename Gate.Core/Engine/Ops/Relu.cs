using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Gate.Core.Tensors;
using Gate.Core.Engine.Bounds;

namespace Gate.Core.Engine.Ops;

public sealed class ReluOp : Operator
{
    public override string OpType => "Relu";
    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) => [s[0]];

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var x = inputs[0]!;
        if (x.Floats is not null)
        {
            var y = ctx.RentFloats(x.Length);
            TensorPrimitives.Max(x.Floats.AsSpan(0, x.Length), 0f, y.AsSpan(0, x.Length));
            return [Tensor.FromFloats(x.Shape, y, x.Type)];
        }
        if (x.Doubles is not null)
        {
            var y = new double[x.Length];
            TensorPrimitives.Max(x.Doubles.AsSpan(0, x.Length), 0d, y);
            return [Tensor.FromDoubles(x.Shape, y)];
        }
        if (x.Longs is not null) return [Tensor.FromLongs(x.Shape, x.Longs.Take(x.Length).Select(v => Math.Max(v, 0)).ToArray(), x.Type)];
        throw new OperatorException($"{ctx.Where}: Relu does not accept {x.Type.OnnxName()}");
    }

    // The derivative at exactly 0 is taken as 0 (the subgradient PyTorch and most attack code use).
    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        var x = inputs[0]!; var gy = g[0]!;
        if (x.Doubles is not null)
        {
            var r = new double[x.Length];
            for (int k = 0; k < r.Length; k++) r[k] = x.Doubles[k] > 0 ? gy.Doubles![k] : 0;
            return [Tensor.FromDoubles(x.Shape, r)];
        }
        int n = x.Length;
        var f = ctx.RentFloats(n);
        var xs = x.Floats.AsSpan(0, n); var gs = gy.Floats.AsSpan(0, n);
        int i = 0, vl = System.Numerics.Vector<float>.Count;
        for (; i <= n - vl; i += vl)
        {
            var xv = new System.Numerics.Vector<float>(xs[i..]);
            // A NaN input compares false, so its gradient is 0 as in the scalar rule below.
            System.Numerics.Vector.ConditionalSelect(System.Numerics.Vector.GreaterThan(xv, System.Numerics.Vector<float>.Zero),
                new System.Numerics.Vector<float>(gs[i..]), System.Numerics.Vector<float>.Zero).CopyTo(f.AsSpan(i));
        }
        for (; i < n; i++) f[i] = xs[i] > 0 ? gs[i] : 0f;
        return [Tensor.FromFloats(x.Shape, f)];
    }

    public override bool RelaxesNonlinearity => true;

    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs)
    {
        var x = inputs[0]!;
        return IntervalBounds.Box(x.Shape, x.Lower.Select(v => Math.Max(v, 0)).ToArray(), x.Upper.Select(v => Math.Max(v, 0)).ToArray());
    }

    // CROWN: stable neurons are exact; an unstable one (l < 0 < u) is bounded above by the chord u·(x−l)/(u−l) and
    // below by α·x for any α in [0,1] (optimised by the prover; default 1 when u > −l, else 0). The chord's slope
    // and intercept are rounded upward so that the line stays above the ReLU at both ends despite rounding.
    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r)
    {
        var x = r.Inputs[0]!;
        int n = x.Length;
        return BoundRules.Relaxed(r, (s, i) =>
        {
            double l = x.Lower[i], u = x.Upper[i];
            if (l >= 0) return (1, 0, 1, 0);
            if (u <= 0) return (0, 0, 0, 0);
            double slope = Math.BitIncrement(u / (u - l)), intercept = Math.BitIncrement(-slope * l);
            double alpha = r.Alpha is null ? (u > -l ? 1 : 0) : r.Alpha[s * n + i];
            return (alpha, 0, slope, intercept);
        });
    }
}
