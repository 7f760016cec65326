namespace Gate.Core.Engine.Ops;

/// <summary>ONNX Tanh (forward, VJP and bound rules shared with Sigmoid in <see cref="SShapedActivation"/>).</summary>
public sealed class TanhOp : SShapedActivation
{
    public override string OpType => "Tanh";
    protected override double F(double x) => Math.Tanh(x);
    protected override double DerivativeFromOutput(double y) => 1 - y * y;
}
