using Gate.Core.Tensors;
using Gate.Core.Engine.Bounds;

namespace Gate.Core.Engine.Ops;

/// <summary>
/// Element-wise functions of one tensor evaluated in float64 and stored in the input's float type, with a VJP
/// expressed through the output (σ' = σ(1−σ), tanh' = 1 − tanh²) and bound rules for a monotone S-shaped curve.
/// </summary>
public abstract class SShapedActivation : Operator
{
    protected abstract double F(double x);
    protected abstract double DerivativeFromOutput(double y);
    private double Derivative(double x) => DerivativeFromOutput(F(x));

    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) => [s[0]];
    public override bool RelaxesNonlinearity => true;

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var x = inputs[0]!;
        if (x.Doubles is not null) return [Tensor.FromDoubles(x.Shape, x.Doubles.Take(x.Length).Select(F).ToArray())];
        if (x.Floats is not null)
        {
            var y = new float[x.Length];
            for (int i = 0; i < y.Length; i++) y[i] = (float)F(x.Floats[i]);
            return [Tensor.FromFloats(x.Shape, y, x.Type)];
        }
        throw new OperatorException($"{ctx.Where}: {OpType} needs a floating-point input, got {x.Type.OnnxName()}");
    }

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        var y = outputs[0]; var gy = g[0]!;
        if (y.Doubles is not null)
        {
            var r = new double[y.Length];
            for (int i = 0; i < r.Length; i++) r[i] = gy.Doubles![i] * DerivativeFromOutput(y.Doubles[i]);
            return [Tensor.FromDoubles(y.Shape, r)];
        }
        var f = new float[y.Length];
        for (int i = 0; i < f.Length; i++) f[i] = (float)(gy.Floats![i] * DerivativeFromOutput(y.Floats![i]));
        return [Tensor.FromFloats(y.Shape, f, y.Type)];
    }

    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs) => BoundRules.Monotone(inputs[0]!, F);

    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r)
    {
        var x = r.Inputs[0]!;
        var lines = new (double, double, double, double)[x.Length];
        for (int i = 0; i < lines.Length; i++) lines[i] = BoundRules.SShaped(x.Lower[i], x.Upper[i], F, Derivative);
        return BoundRules.Relaxed(r, (_, i) => lines[i]);
    }
}

/// <summary>ONNX Sigmoid: 1 / (1 + e^(−x)).</summary>
public sealed class SigmoidOp : SShapedActivation
{
    public override string OpType => "Sigmoid";
    // Written so that e^(−x) never overflows for large |x|.
    protected override double F(double x) => x >= 0 ? 1 / (1 + Math.Exp(-x)) : Math.Exp(x) / (1 + Math.Exp(x));
    protected override double DerivativeFromOutput(double y) => y * (1 - y);
}
