using Gate.Core.Tensors;

namespace Gate.Core.Engine.Ops;

/// <summary>Softmax-family layout: (outer, dim, inner) around the axis. Before opset 13 the input is coerced to 2-D at the axis.</summary>
internal readonly record struct AxisLayout(int Outer, int Dim, int Inner)
{
    public static AxisLayout For(OpContext ctx, int[] s)
    {
        if (s.Length == 0) return new(1, 1, 1);
        if (ctx.Opset >= 13)
        {
            int a = TensorIndexing.Axis(ctx.Node.GetInt("axis", -1), s.Length, ctx);
            return new(s.Take(a).Aggregate(1, (x, y) => x * y), s[a], s.Skip(a + 1).Aggregate(1, (x, y) => x * y));
        }
        int ax = TensorIndexing.Axis(ctx.Node.GetInt("axis", 1), s.Length, ctx);
        return new(s.Take(ax).Aggregate(1, (x, y) => x * y), s.Skip(ax).Aggregate(1, (x, y) => x * y), 1);
    }
}

/// <summary>Softmax and LogSoftmax share the max-shifted exponentials; only the output map and the VJP differ.</summary>
public abstract class SoftmaxFamily : Operator
{
    protected abstract bool Log { get; }
    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) => [s[0]];

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var x = inputs[0]!;
        var l = AxisLayout.For(ctx, x.Shape);
        var xv = TensorIndexing.AsDoubles(x);
        var y = new double[x.Length];
        Parallel.For(0, l.Outer, o =>
        {
            for (int q = 0; q < l.Inner; q++)
            {
                int b = o * l.Dim * l.Inner + q;
                double m = double.NegativeInfinity;
                for (int k = 0; k < l.Dim; k++) m = Math.Max(m, xv[b + k * l.Inner]);
                double sum = 0;
                for (int k = 0; k < l.Dim; k++) sum += Math.Exp(xv[b + k * l.Inner] - m);
                double logSum = Math.Log(sum);
                for (int k = 0; k < l.Dim; k++)
                {
                    double z = xv[b + k * l.Inner] - m;
                    y[b + k * l.Inner] = Log ? z - logSum : Math.Exp(z) / sum;
                }
            }
        });
        return [TensorIndexing.FromDoublesAs(x.Type, x.Shape, y)];
    }

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        var x = inputs[0]!;
        var l = AxisLayout.For(ctx, x.Shape);
        var y = TensorIndexing.AsDoubles(outputs[0]); var gy = TensorIndexing.AsDoubles(g[0]!);
        var dx = new double[x.Length];
        for (int o = 0; o < l.Outer; o++)
            for (int q = 0; q < l.Inner; q++)
            {
                int b = o * l.Dim * l.Inner + q;
                double s = 0;
                for (int k = 0; k < l.Dim; k++) { int i = b + k * l.Inner; s += Log ? gy[i] : gy[i] * y[i]; }
                for (int k = 0; k < l.Dim; k++)
                {
                    int i = b + k * l.Inner;
                    dx[i] = Log ? gy[i] - Math.Exp(y[i]) * s : y[i] * (gy[i] - s);
                }
            }
        return [TensorIndexing.FromDoublesAs(x.Type == DType.Float64 ? DType.Float64 : DType.Float32, x.Shape, dx)];
    }
}

public sealed class SoftmaxOp : SoftmaxFamily { public override string OpType => "Softmax"; protected override bool Log => false; }
public sealed class LogSoftmaxOp : SoftmaxFamily { public override string OpType => "LogSoftmax"; protected override bool Log => true; }

/// <summary>
/// Normalization of contiguous groups: x̂ = (x - mean)·invStd per group of <c>inner</c> elements, then an affine
/// map. Shared by LayerNormalization and InstanceNormalization (which differ in grouping and in how scale/bias
/// index the group), including the standard closed-form VJP.
/// </summary>
internal static class GroupNorm
{
    public static (double[] XHat, double[] Mean, double[] InvStd) Normalize(double[] x, int groups, int inner, double eps)
    {
        var xh = new double[x.Length]; var mean = new double[groups]; var inv = new double[groups];
        Parallel.For(0, groups, gi =>
        {
            int b = gi * inner;
            double m = 0;
            for (int k = 0; k < inner; k++) m += x[b + k];
            m /= inner;
            double v = 0;
            for (int k = 0; k < inner; k++) { double d = x[b + k] - m; v += d * d; }
            double iv = 1 / Math.Sqrt(v / inner + eps);
            for (int k = 0; k < inner; k++) xh[b + k] = (x[b + k] - m) * iv;
            mean[gi] = m; inv[gi] = iv;
        });
        return (xh, mean, inv);
    }

    /// <summary>dx from dx̂ (= dy·scale): invStd/n · (n·dx̂ - Σdx̂ - x̂·Σ(dx̂·x̂)) per group.</summary>
    public static double[] Backward(double[] dxh, double[] xh, double[] inv, int groups, int inner)
    {
        var dx = new double[dxh.Length];
        for (int gi = 0; gi < groups; gi++)
        {
            int b = gi * inner;
            double s1 = 0, s2 = 0;
            for (int k = 0; k < inner; k++) { s1 += dxh[b + k]; s2 += dxh[b + k] * xh[b + k]; }
            for (int k = 0; k < inner; k++) dx[b + k] = inv[gi] / inner * (inner * dxh[b + k] - s1 - xh[b + k] * s2);
        }
        return dx;
    }

    public static Tensor Out(Tensor like, int[] shape, double[] v) =>
        TensorIndexing.FromDoublesAs(like.Type == DType.Float64 ? DType.Float64 : like.Type, shape, v);
}

/// <summary>LayerNormalization over axes [axis, rank); optional Mean and InvStdDev outputs. Gradients flow from Y.</summary>
public sealed class LayerNormalizationOp : Operator
{
    public override string OpType => "LayerNormalization";
    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s)
    {
        if (s[0] is null) return new int[]?[ctx.Node.Outputs.Length];
        int axis = TensorIndexing.Axis(ctx.Node.GetInt("axis", -1), s[0]!.Length, ctx);
        var stat = s[0]!.Select((d, i) => i < axis ? d : 1).ToArray();
        return [s[0], stat, stat];
    }

    private static (int Groups, int Inner, int Axis, int[] Norm) Layout(OpContext ctx, int[] s)
    {
        int axis = TensorIndexing.Axis(ctx.Node.GetInt("axis", -1), s.Length, ctx);
        var norm = s.Skip(axis).ToArray();
        return (s.Take(axis).Aggregate(1, (a, b) => a * b), Tensor.ElementCount(norm), axis, norm);
    }

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var x = inputs[0]!; var scale = inputs[1]!; var bias = inputs.Length > 2 ? inputs[2] : null;
        var (groups, inner, axis, norm) = Layout(ctx, x.Shape);
        var (xh, mean, inv) = GroupNorm.Normalize(TensorIndexing.AsDoubles(x), groups, inner, ctx.Node.GetFloat("epsilon", 1e-5f));
        var si = Broadcast.SourceIndex(scale.Shape, norm); var bi = bias is null ? null : Broadcast.SourceIndex(bias.Shape, norm);
        var y = new double[x.Length];
        for (int i = 0; i < y.Length; i++) { int k = i % inner; y[i] = xh[i] * scale.GetDouble(si[k]) + (bias is null ? 0 : bias.GetDouble(bi![k])); }
        var statShape = x.Shape.Select((d, i) => i < axis ? d : 1).ToArray();
        var stash = ctx.Node.GetInt("stash_type", 1) == 1 && x.Type != DType.Float64 ? DType.Float32 : x.Type;
        var outs = new List<Tensor> { GroupNorm.Out(x, x.Shape, y) };
        if (ctx.Node.Outputs.Length > 1) outs.Add(TensorIndexing.FromDoublesAs(stash, statShape, mean));
        if (ctx.Node.Outputs.Length > 2) outs.Add(TensorIndexing.FromDoublesAs(stash, statShape, inv));
        return outs.ToArray();
    }

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        var x = inputs[0]!; var scale = inputs[1]!; var bias = inputs.Length > 2 ? inputs[2] : null;
        var (groups, inner, _, norm) = Layout(ctx, x.Shape);
        var (xh, _, inv) = GroupNorm.Normalize(TensorIndexing.AsDoubles(x), groups, inner, ctx.Node.GetFloat("epsilon", 1e-5f));
        var gy = TensorIndexing.AsDoubles(g[0]!);
        var si = Broadcast.SourceIndex(scale.Shape, norm);
        var dxh = new double[x.Length]; var dscale = new double[inner]; var dbias = new double[inner];
        for (int i = 0; i < gy.Length; i++)
        {
            int k = i % inner;
            dxh[i] = gy[i] * scale.GetDouble(si[k]);
            dscale[k] += gy[i] * xh[i]; dbias[k] += gy[i];
        }
        var dx = GroupNorm.Backward(dxh, xh, inv, groups, inner);
        var r = new Tensor?[inputs.Length];
        r[0] = GroupNorm.Out(x, x.Shape, dx);
        r[1] = Broadcast.ReduceTo(GroupNorm.Out(x, norm, dscale), scale.Shape);
        if (bias is not null) r[2] = Broadcast.ReduceTo(GroupNorm.Out(x, norm, dbias), bias.Shape);
        return r;
    }
}

/// <summary>InstanceNormalization: per (sample, channel) over the spatial axes, then per-channel scale and bias.</summary>
public sealed class InstanceNormalizationOp : Operator
{
    public override string OpType => "InstanceNormalization";
    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) => [s[0]];

    private static (int N, int C, int Inner) Layout(OpContext ctx, int[] s)
    {
        if (s.Length < 3) throw new OperatorException($"{ctx.Where}: input must be [N, C, D1, ...], got [{string.Join(",", s)}]");
        return (s[0], s[1], s.Skip(2).Aggregate(1, (a, b) => a * b));
    }

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var x = inputs[0]!; var scale = inputs[1]!; var bias = inputs[2]!;
        var (n, c, inner) = Layout(ctx, x.Shape);
        if (scale.Length != c || bias.Length != c) throw new OperatorException($"{ctx.Where}: scale and B must have {c} elements");
        var (xh, _, _) = GroupNorm.Normalize(TensorIndexing.AsDoubles(x), n * c, inner, ctx.Node.GetFloat("epsilon", 1e-5f));
        var y = new double[x.Length];
        for (int i = 0; i < y.Length; i++) { int ch = i / inner % c; y[i] = xh[i] * scale.GetDouble(ch) + bias.GetDouble(ch); }
        return [GroupNorm.Out(x, x.Shape, y)];
    }

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        var x = inputs[0]!; var scale = inputs[1]!;
        var (n, c, inner) = Layout(ctx, x.Shape);
        var (xh, _, inv) = GroupNorm.Normalize(TensorIndexing.AsDoubles(x), n * c, inner, ctx.Node.GetFloat("epsilon", 1e-5f));
        var gy = TensorIndexing.AsDoubles(g[0]!);
        var dxh = new double[x.Length]; var ds = new double[c]; var db = new double[c];
        for (int i = 0; i < gy.Length; i++)
        {
            int ch = i / inner % c;
            dxh[i] = gy[i] * scale.GetDouble(ch);
            ds[ch] += gy[i] * xh[i]; db[ch] += gy[i];
        }
        return [GroupNorm.Out(x, x.Shape, GroupNorm.Backward(dxh, xh, inv, n * c, inner)), GroupNorm.Out(x, [c], ds), GroupNorm.Out(x, [c], db)];
    }
}
