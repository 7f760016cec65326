using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Gate.Core.Tensors;
using Gate.Core.Engine.Bounds;

namespace Gate.Core.Engine.Ops;

/// <summary>
/// Shared loop for element-wise functions of one tensor. Each operator states its scalar function and its
/// derivative (as a function of x and y = f(x)) once; float32, float64 and, where allowed, integers use them.
/// </summary>
public abstract class UnaryElementwise : Operator
{
    /// <summary>f(x) and df/dx(x, y) for this node's attributes.</summary>
    protected abstract (Func<double, double> F, Func<double, double, double> Dfdx) Functions(OpContext ctx);
    /// <summary>Optional SIMD path for float32; returns false when there is none.</summary>
    protected virtual bool FastFloat(OpContext ctx, ReadOnlySpan<float> x, Span<float> y) => false;
    protected virtual bool AcceptsIntegers => false;

    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) => [s[0]];

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var x = inputs[0]!;
        switch (x.Type.Storage())
        {
            case StorageKind.Float:
            {
                var y = new float[x.Length];
                var xs = x.Floats.AsSpan(0, x.Length);
                if (!FastFloat(ctx, xs, y))
                {
                    var f = Functions(ctx).F;
                    for (int i = 0; i < y.Length; i++) y[i] = (float)f(xs[i]);
                }
                return [Tensor.FromFloats(x.Shape, NarrowFloats.Round(y, x.Type), x.Type)];
            }
            case StorageKind.Double:
            {
                var f = Functions(ctx).F;
                var y = new double[x.Length];
                for (int i = 0; i < y.Length; i++) y[i] = f(x.Doubles![i]);
                return [Tensor.FromDoubles(x.Shape, y)];
            }
            case StorageKind.Long when AcceptsIntegers:
            {
                var f = Functions(ctx).F;
                var y = new long[x.Length];
                for (int i = 0; i < y.Length; i++) y[i] = IntegerWrap.Wrap((long)f(x.Longs![i]), x.Type);
                return [Tensor.FromLongs(x.Shape, y, x.Type)];
            }
            default: throw new OperatorException($"{ctx.Where}: {OpType} does not accept {x.Type.OnnxName()}");
        }
    }

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        var x = inputs[0]!; var y = outputs[0]; var gy = g[0]!;
        var d = Functions(ctx).Dfdx;
        if (x.Doubles is not null)
        {
            var r = new double[x.Length];
            for (int i = 0; i < r.Length; i++) r[i] = gy.Doubles![i] * d(x.Doubles[i], y.Doubles![i]);
            return [Tensor.FromDoubles(x.Shape, r)];
        }
        if (x.Floats is null) return [null];
        var f = new float[x.Length];
        for (int i = 0; i < f.Length; i++) f[i] = (float)(gy.Floats![i] * d(x.Floats[i], y.Floats![i]));
        return [Tensor.FromFloats(x.Shape, f)];
    }
}

public sealed class AbsOp : UnaryElementwise
{
    public override string OpType => "Abs";
    protected override bool AcceptsIntegers => true;
    protected override (Func<double, double>, Func<double, double, double>) Functions(OpContext ctx) => (Math.Abs, (x, y) => Math.Sign(x));
    protected override bool FastFloat(OpContext ctx, ReadOnlySpan<float> x, Span<float> y) { TensorPrimitives.Abs(x, y); return true; }
}

public sealed class NegOp : UnaryElementwise
{
    public override string OpType => "Neg";
    protected override bool AcceptsIntegers => true;
    protected override (Func<double, double>, Func<double, double, double>) Functions(OpContext ctx) => (x => -x, (x, y) => -1);
    protected override bool FastFloat(OpContext ctx, ReadOnlySpan<float> x, Span<float> y) { TensorPrimitives.Negate(x, y); return true; }
}

public sealed class ExpOp : UnaryElementwise
{
    public override string OpType => "Exp";
    protected override (Func<double, double>, Func<double, double, double>) Functions(OpContext ctx) => (Math.Exp, (x, y) => y);
    protected override bool FastFloat(OpContext ctx, ReadOnlySpan<float> x, Span<float> y) { TensorPrimitives.Exp(x, y); return true; }
}

public sealed class LogOp : UnaryElementwise
{
    public override string OpType => "Log";
    protected override (Func<double, double>, Func<double, double, double>) Functions(OpContext ctx) => (Math.Log, (x, y) => 1 / x);
    protected override bool FastFloat(OpContext ctx, ReadOnlySpan<float> x, Span<float> y) { TensorPrimitives.Log(x, y); return true; }
}

public sealed class SqrtOp : UnaryElementwise
{
    public override string OpType => "Sqrt";
    protected override (Func<double, double>, Func<double, double, double>) Functions(OpContext ctx) => (Math.Sqrt, (x, y) => 0.5 / y);
    protected override bool FastFloat(OpContext ctx, ReadOnlySpan<float> x, Span<float> y) { TensorPrimitives.Sqrt(x, y); return true; }
}

public sealed class ReciprocalOp : UnaryElementwise
{
    public override string OpType => "Reciprocal";
    protected override (Func<double, double>, Func<double, double, double>) Functions(OpContext ctx) => (x => 1 / x, (x, y) => -y * y);
}

/// <summary>
/// Erf, with bound rules. <see cref="SpecialFunctions.Erf"/> is within 6e-8 of the true erf (relative error of its
/// erfc fit below 1.2e-7 where erfc ≤ 0.48; the series is exact to 1e-17), so every value it gives is pushed
/// outward by <see cref="Reference"/>. erf is sigmoid-shaped, so CROWN uses the S-shaped relaxation.
/// </summary>
public sealed class ErfOp : UnaryElementwise
{
    public override string OpType => "Erf";
    private const double Reference = 1e-7;
    private static double Derivative(double x) => 2 / Math.Sqrt(Math.PI) * Math.Exp(-x * x);
    protected override (Func<double, double>, Func<double, double, double>) Functions(OpContext ctx) =>
        (SpecialFunctions.Erf, (x, y) => Derivative(x));

    public override bool RelaxesNonlinearity => true;

    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs)
    {
        var x = inputs[0]!;
        return IntervalBounds.Box(x.Shape, x.Lower.Select(v => Math.Max(-1, SpecialFunctions.Erf(v) - Reference)).ToArray(),
            x.Upper.Select(v => Math.Min(1, SpecialFunctions.Erf(v) + Reference)).ToArray());
    }

    // The relaxation's lines pass through reference values (chord) or a reference tangent: each is within
    // Reference of the true function's line, so the intercepts move outward by that much more.
    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r)
    {
        var x = r.Inputs[0]!;
        return BoundRules.Relaxed(r, (s, i) =>
        {
            var (al, bl, au, bu) = BoundRules.SShaped(x.Lower[i], x.Upper[i], SpecialFunctions.Erf, Derivative);
            return (al, bl - 2 * Reference, au, bu + 2 * Reference);
        });
    }

    // |erf'| ≤ 2/√π·exp(−min x²) on the widened interval; the runtime's erf: 1e-6 relative plus 1e-7 absolute.
    public override double[]? FloatError(OpContext ctx, IntervalBounds?[] inputs, double[]?[] errors) =>
        BoundRules.ElementwiseError(inputs[0]!, errors[0]!, (l, u) => Derivative(l > 0 ? l : u < 0 ? u : 0),
            (l, u) => Math.Min(1, Math.Max(Math.Abs(SpecialFunctions.Erf(l)), Math.Abs(SpecialFunctions.Erf(u))) + Reference), 1e-6, 1e-7);
}

public sealed class EluOp : UnaryElementwise
{
    public override string OpType => "Elu";
    protected override (Func<double, double>, Func<double, double, double>) Functions(OpContext ctx)
    {
        double a = ctx.Node.GetFloat("alpha", 1f);
        return (x => x > 0 ? x : a * (Math.Exp(x) - 1), (x, y) => x > 0 ? 1 : a * Math.Exp(x));
    }
}

public sealed class SeluOp : UnaryElementwise
{
    public override string OpType => "Selu";
    protected override (Func<double, double>, Func<double, double, double>) Functions(OpContext ctx)
    {
        double a = ctx.Node.GetFloat("alpha", 1.67326319217681884765625f), g = ctx.Node.GetFloat("gamma", 1.05070102214813232421875f);
        return (x => x > 0 ? g * x : g * a * (Math.Exp(x) - 1), (x, y) => x > 0 ? g : g * a * Math.Exp(x));
    }
}

public sealed class LeakyReluOp : UnaryElementwise
{
    public override string OpType => "LeakyRelu";
    protected override (Func<double, double>, Func<double, double, double>) Functions(OpContext ctx)
    {
        double a = ctx.Node.GetFloat("alpha", 0.01f);
        return (x => x >= 0 ? x : a * x, (x, y) => x > 0 ? 1 : a);
    }
}

public sealed class HardSigmoidOp : UnaryElementwise
{
    public override string OpType => "HardSigmoid";
    protected override (Func<double, double>, Func<double, double, double>) Functions(OpContext ctx)
    {
        double a = ctx.Node.GetFloat("alpha", 0.2f), b = ctx.Node.GetFloat("beta", 0.5f);
        return (x => Math.Max(0, Math.Min(1, a * x + b)), (x, y) => a * x + b is > 0 and < 1 ? a : 0);
    }
}

public sealed class SoftplusOp : UnaryElementwise
{
    public override string OpType => "Softplus";
    // log(1 + e^x) without overflow for large x; the derivative is the logistic function.
    protected override (Func<double, double>, Func<double, double, double>) Functions(OpContext ctx) =>
        (x => x > 0 ? x + Math.Log(1 + Math.Exp(-x)) : Math.Log(1 + Math.Exp(x)), (x, y) => 1 / (1 + Math.Exp(-x)));
}

public sealed class GeluOp : UnaryElementwise
{
    public override string OpType => "Gelu";
    protected override (Func<double, double>, Func<double, double, double>) Functions(OpContext ctx)
    {
        if (ctx.Node.GetString("approximate", "none") == "tanh")
        {
            double c = Math.Sqrt(2 / Math.PI);
            return (x => 0.5 * x * (1 + Math.Tanh(c * (x + 0.044715 * x * x * x))),
                (x, y) =>
                {
                    double t = Math.Tanh(c * (x + 0.044715 * x * x * x));
                    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x);
                });
        }
        return (x => 0.5 * x * (1 + SpecialFunctions.Erf(x / Math.Sqrt(2))),
            (x, y) => 0.5 * (1 + SpecialFunctions.Erf(x / Math.Sqrt(2))) + x * Math.Exp(-0.5 * x * x) / Math.Sqrt(2 * Math.PI));
    }

    // Both forms decrease on (−∞, x*] and increase on [x*, ∞) with x* ≈ −0.752 (f' is −0.0035 at −0.76 and
    // +0.0008 at −0.75 for the erf form; the tanh form is within 1e-3 of it there) and a minimum above MinValue.
    private const double DecreasingUpTo = -0.76, IncreasingFrom = -0.74, MinValue = -0.1705;

    /// <summary>
    /// Interval: the values at the ends where f is monotone on [l, u]; across the minimum, [MinValue, max(f(l),
    /// f(u))]. Reference values are pushed outward by 1e-7·(1 + |x|) (the erf fit's error times |x|/2, and the
    /// tanh form's float64 evaluation). CROWN uses the constant relaxation.
    /// </summary>
    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs)
    {
        var x = inputs[0]!;
        var f = Functions(ctx).Item1;
        double Lo(double v) => f(v) - 1e-7 * (1 + Math.Abs(v));
        double Hi(double v) => f(v) + 1e-7 * (1 + Math.Abs(v));
        var lo = new double[x.Length]; var hi = new double[x.Length];
        for (int i = 0; i < lo.Length; i++)
        {
            double l = x.Lower[i], u = x.Upper[i];
            if (l >= IncreasingFrom) { lo[i] = Lo(l); hi[i] = Hi(u); }
            else if (u <= DecreasingUpTo) { lo[i] = Lo(u); hi[i] = Hi(l); }
            else { lo[i] = Math.Min(MinValue, Math.Min(Lo(l), Lo(u))); hi[i] = Math.Max(Hi(l), Hi(u)); }
        }
        return IntervalBounds.Box(x.Shape, lo, hi);
    }

    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r) => BoundRules.Concretize(r);

    // |f'| ≤ 1.13 for the erf form (f'' = φ(x)(2 − x²): extremes at ±√2, f'(√2) = 1.1289); for the tanh form
    // |f'| ≤ 1 + 1.5·max u·sech²u ≤ 1.68. Runtime: 1e-6 of the largest |x| (erf/tanh, a product and a sum).
    public override double[]? FloatError(OpContext ctx, IntervalBounds?[] inputs, double[]?[] errors)
    {
        double lip = ctx.Node.GetString("approximate", "none") == "tanh" ? 1.68 : 1.13;
        return BoundRules.ElementwiseError(inputs[0]!, errors[0]!, (l, u) => lip, (l, u) => Math.Max(Math.Abs(l), Math.Abs(u)), 1e-6, 1e-30);
    }
}

/// <summary>Scalar special functions the operators need.</summary>
public static class SpecialFunctions
{
    /// <summary>
    /// The error function: Maclaurin series near 0 (where 1 - erfc would lose digits), otherwise the Chebyshev
    /// fit of erfc from Numerical Recipes (relative error below 1.2e-7, ample for float32 kernels).
    /// </summary>
    public static double Erf(double x)
    {
        if (double.IsNaN(x)) return x;
        double ax = Math.Abs(x);
        if (ax < 0.5)
        {
            double sum = 0, term = x, x2 = x * x;
            for (int n = 0; n < 30; n++)
            {
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.Abs(add) < 1e-17 * Math.Abs(sum)) break;
                term *= -x2 / (n + 1);
            }
            return 2 / Math.Sqrt(Math.PI) * sum;
        }
        double t = 1 / (1 + 0.5 * ax);
        double erfc = t * Math.Exp(-ax * ax - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
            t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? 1 - erfc : erfc - 1;
    }
}
