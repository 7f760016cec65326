using Gate.Core.Tensors;
using Gate.Core.Engine.Bounds;

namespace Gate.Core.Engine.Ops;

public sealed class IdentityOp : Operator
{
    public override string OpType => "Identity";
    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) => [s[0]];
    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs) => [inputs[0]!];
    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g) => [g[0]];

    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs) => inputs[0];
    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r) => new([r.Lambda], new double[r.Rows]);
}

public sealed class FlattenOp : Operator
{
    public override string OpType => "Flatten";

    internal static int[] OutShape(OpContext ctx, int[] s)
    {
        long axis = ctx.Node.GetInt("axis", 1);
        if (axis < 0) axis += s.Length;
        if (axis < 0 || axis > s.Length) throw new OperatorException($"{ctx.Where}: axis {ctx.Node.GetInt("axis", 1)} out of range for rank {s.Length}");
        int outer = 1, inner = 1;
        for (int i = 0; i < s.Length; i++) if (i < axis) outer *= s[i]; else inner *= s[i];
        return [outer, inner];
    }

    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) => [s[0] is null ? null : OutShape(ctx, s[0]!)];
    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs) => [inputs[0]!.Reshape(OutShape(ctx, inputs[0]!.Shape))];
    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g) => [g[0]!.Reshape(inputs[0]!.Shape)];

    // Reshapes keep the C-order element layout, so coefficients pass through unchanged.
    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs) => inputs[0]!.Reshape(OutShape(ctx, inputs[0]!.Shape));
    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r) => new([r.Lambda], new double[r.Rows]);
}

public sealed class ReshapeOp : Operator
{
    public override string OpType => "Reshape";

    internal static int[] OutShape(OpContext ctx, int[] input, long[] target)
    {
        bool allowZero = ctx.Node.GetBool("allowzero", false);
        var shape = new int[target.Length];
        int infer = -1;
        long known = 1;
        for (int i = 0; i < target.Length; i++)
        {
            long d = target[i];
            if (d == -1)
            {
                if (infer >= 0) throw new OperatorException($"{ctx.Where}: more than one -1 in target shape");
                infer = i; continue;
            }
            if (d == 0 && !allowZero)
            {
                if (i >= input.Length) throw new OperatorException($"{ctx.Where}: 0 at axis {i} copies an input dimension that does not exist");
                d = input[i];
            }
            if (d < 0) throw new OperatorException($"{ctx.Where}: invalid target dimension {d}");
            shape[i] = (int)d;
            known *= d;
        }
        long total = Tensor.ElementCount(input);
        if (infer >= 0)
        {
            if (known == 0 || total % known != 0) throw new OperatorException($"{ctx.Where}: cannot infer -1 reshaping [{string.Join(",", input)}] to [{string.Join(",", target)}]");
            shape[infer] = (int)(total / known);
        }
        else if (known != total) throw new OperatorException($"{ctx.Where}: cannot reshape [{string.Join(",", input)}] ({total} elements) to [{string.Join(",", target)}]");
        return shape;
    }

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs) =>
        [inputs[0]!.Reshape(OutShape(ctx, inputs[0]!.Shape, inputs[1]!.ToLongArray()))];
    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g) => [g[0]!.Reshape(inputs[0]!.Shape), null];

    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs) =>
        inputs[1]?.Constant is { } target ? inputs[0]!.Reshape(OutShape(ctx, inputs[0]!.Shape, target.ToLongArray())) : null;
    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r) => new([r.Lambda, null], new double[r.Rows]);
}
