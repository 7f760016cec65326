using Gate.Core.Tensors;
using Gate.Core.Engine.Bounds;

namespace Gate.Core.Engine.Ops;

/// <summary>
/// ONNX BatchNormalization (opsets 9, 14, 15): Y = scale·(X − mean)/√(var + ε) + B per channel (axis 1).
/// Inference mode uses the given running statistics; training_mode=1 (opset 14+) normalises with the batch's own
/// statistics and also returns the updated running mean and variance. Gradients and bounds are for inference
/// mode, where the operator is a per-channel affine map.
/// </summary>
public sealed class BatchNormalizationOp : Operator
{
    public override string OpType => "BatchNormalization";

    private static bool Training(OpContext ctx) => ctx.Opset >= 14 && ctx.Node.GetBool("training_mode", false);

    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s)
    {
        var r = new int[]?[ctx.Node.Outputs.Length];
        r[0] = s[0];
        for (int i = 1; i < r.Length; i++) r[i] = s[0] is { Length: >= 2 } x ? [x[1]] : null;
        return r;
    }

    private static (int n, int c, int inner) Layout(OpContext ctx, Tensor x, Tensor?[] inputs)
    {
        if (x.Rank < 2) throw new OperatorException($"{ctx.Where}: BatchNormalization needs X of rank ≥ 2 (N, C, ...), got {x.ShapeString}");
        int c = x.Shape[1], n = x.Shape[0], inner = n * c == 0 ? 0 : x.Length / (n * c);
        string[] names = ["X", "scale", "B", "input_mean", "input_var"];
        for (int i = 1; i < 5; i++)
            if (inputs[i] is not { } t || t.Length != c)
                throw new OperatorException($"{ctx.Where}: {names[i]} must have {c} elements (one per channel), got {inputs[i]?.ShapeString ?? "none"}");
        return (n, c, inner);
    }

    /// <summary>Per-channel (a, b) such that Y = a·X + b, in float64.</summary>
    private static (double[] a, double[] b) Coefficients(double eps, double[] scale, double[] bias, double[] mean, double[] variance)
    {
        var a = new double[scale.Length]; var b = new double[scale.Length];
        for (int ch = 0; ch < a.Length; ch++)
        {
            a[ch] = scale[ch] / Math.Sqrt(variance[ch] + eps);
            b[ch] = bias[ch] - mean[ch] * a[ch];
        }
        return (a, b);
    }

    private static Tensor Like(Tensor x, int[] shape, double[] v) =>
        x.Type == DType.Float64 ? Tensor.FromDoubles(shape, v) : Tensor.FromFloats(shape, v.Select(d => (float)d).ToArray(), x.Type);

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var x = inputs[0]!;
        if (x.Type.Storage() is not (StorageKind.Float or StorageKind.Double))
            throw new OperatorException($"{ctx.Where}: BatchNormalization needs a floating-point X, got {x.Type.OnnxName()}");
        var (n, c, inner) = Layout(ctx, x, inputs);
        double eps = ctx.Node.GetFloat("epsilon", 1e-5f);
        var xd = x.ToDoubleArray();
        var mean = inputs[3]!.ToDoubleArray(); var variance = inputs[4]!.ToDoubleArray();
        double[]? batchMean = null, batchVar = null;
        if (Training(ctx))
        {
            batchMean = new double[c]; batchVar = new double[c];
            int count = n * inner;
            for (int ch = 0; ch < c; ch++)
            {
                double s = 0;
                for (int b = 0; b < n; b++) for (int i = 0; i < inner; i++) s += xd[(b * c + ch) * inner + i];
                double mu = count == 0 ? 0 : s / count, v = 0;
                for (int b = 0; b < n; b++) for (int i = 0; i < inner; i++) { double d = xd[(b * c + ch) * inner + i] - mu; v += d * d; }
                batchMean[ch] = mu; batchVar[ch] = count == 0 ? 0 : v / count; // population variance, as the ONNX reference
            }
        }
        var (a, bb) = Coefficients(eps, inputs[1]!.ToDoubleArray(), inputs[2]!.ToDoubleArray(), batchMean ?? mean, batchVar ?? variance);
        var y = new double[xd.Length];
        for (int b = 0; b < n; b++)
            for (int ch = 0; ch < c; ch++)
                for (int i = 0; i < inner; i++) { int k = (b * c + ch) * inner + i; y[k] = a[ch] * xd[k] + bb[ch]; }
        var outputs = new List<Tensor> { Like(x, x.Shape, y) };
        if (batchMean is not null && ctx.Node.Outputs.Length > 1)
        {
            double momentum = ctx.Node.GetFloat("momentum", 0.9f);
            outputs.Add(Like(x, [c], mean.Select((m, ch) => m * momentum + batchMean[ch] * (1 - momentum)).ToArray()));
            outputs.Add(Like(x, [c], variance.Select((v, ch) => v * momentum + batchVar![ch] * (1 - momentum)).ToArray()));
        }
        return outputs.ToArray();
    }

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        if (Training(ctx)) throw new NotDifferentiableException($"{ctx.Where}: BatchNormalization gradients are implemented for inference mode only");
        var x = inputs[0]!; var gy = g[0]!.ToDoubleArray();
        var (n, c, inner) = Layout(ctx, x, inputs);
        double eps = ctx.Node.GetFloat("epsilon", 1e-5f);
        var xd = x.ToDoubleArray();
        var scale = inputs[1]!.ToDoubleArray(); var mean = inputs[3]!.ToDoubleArray(); var variance = inputs[4]!.ToDoubleArray();
        var gx = new double[xd.Length];
        var gScale = new double[c]; var gB = new double[c]; var gMean = new double[c]; var gVar = new double[c];
        for (int ch = 0; ch < c; ch++)
        {
            double inv = 1 / Math.Sqrt(variance[ch] + eps), a = scale[ch] * inv;
            for (int b = 0; b < n; b++)
                for (int i = 0; i < inner; i++)
                {
                    int k = (b * c + ch) * inner + i;
                    double d = xd[k] - mean[ch];
                    gx[k] = gy[k] * a;
                    gScale[ch] += gy[k] * d * inv;
                    gB[ch] += gy[k];
                    gMean[ch] -= gy[k] * a;
                    gVar[ch] += gy[k] * scale[ch] * d * -0.5 * inv * inv * inv;
                }
        }
        Tensor T(Tensor like, double[] v) => Like(like, like.Shape, v);
        return [T(x, gx), T(inputs[1]!, gScale), T(inputs[2]!, gB), T(inputs[3]!, gMean), T(inputs[4]!, gVar)];
    }

    // Bounds: inference mode with constant statistics (the exported form), as the per-channel affine map a·x + b.
    private static (double[] a, double[] b, int c, int inner)? Affine(OpContext ctx, IntervalBounds?[] inputs)
    {
        if (Training(ctx) || inputs.Length < 5 || inputs[0] is not { IsConstant: false } x || x.Shape.Length < 2) return null;
        for (int i = 1; i < 5; i++) if (inputs[i] is not { IsConstant: true } t || t.Length != x.Shape[1]) return null;
        var (a, b) = Coefficients(ctx.Node.GetFloat("epsilon", 1e-5f), inputs[1]!.Lower, inputs[2]!.Lower, inputs[3]!.Lower, inputs[4]!.Lower);
        int c = x.Shape[1];
        return (a, b, c, x.Length / (x.Shape[0] * c));
    }

    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs) =>
        Affine(ctx, inputs) is var (a, b, c, inner) ? BoundRules.Affine(inputs[0]!, k => (a[k / inner % c], b[k / inner % c])) : null;

    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r)
    {
        if (Affine(ctx, r.Inputs) is not var (a, b, c, inner)) return null;
        var lines = Enumerable.Range(0, r.Inputs[0]!.Length).Select(k => (a[k / inner % c], b[k / inner % c])).ToArray();
        return BoundRules.Relaxed(r, (_, k) => (lines[k].Item1, lines[k].Item2, lines[k].Item1, lines[k].Item2));
    }
}
