using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Gate.Core.Tensors;

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
            var y = new float[x.Length];
            TensorPrimitives.Max(x.Floats.AsSpan(0, x.Length), 0f, y);
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
            for (int i = 0; i < r.Length; i++) r[i] = x.Doubles[i] > 0 ? gy.Doubles![i] : 0;
            return [Tensor.FromDoubles(x.Shape, r)];
        }
        var f = new float[x.Length];
        for (int i = 0; i < f.Length; i++) f[i] = x.Floats![i] > 0 ? gy.Floats![i] : 0f;
        return [Tensor.FromFloats(x.Shape, f)];
    }
}
