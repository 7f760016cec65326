using Gate.Core.Tensors;
using Gate.Core.Engine.Bounds;

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
        ForkJoin.For(l.Outer, o =>
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

/// <summary>
/// Softmax, with bound rules: y_k = 1 / (1 + Σ_{j≠k} exp(x_j − x_k)) is increasing in x_k and decreasing in every
/// other x_j, so its bounds come from opposite corners; CROWN uses the constant relaxation.
/// </summary>
public sealed class SoftmaxOp : SoftmaxFamily
{
    public override string OpType => "Softmax";
    protected override bool Log => false;

    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs)
    {
        var x = inputs[0]!;
        var l = AxisLayout.For(ctx, x.Shape);
        var lo = new double[x.Length]; var hi = new double[x.Length];
        for (int o = 0; o < l.Outer; o++)
            for (int q = 0; q < l.Inner; q++)
            {
                int b = o * l.Dim * l.Inner + q;
                for (int k = 0; k < l.Dim; k++)
                {
                    int i = b + k * l.Inner;
                    double sLo = 0, sHi = 0;   // Σ_{j≠k} exp(u_j − l_k) and Σ_{j≠k} exp(l_j − u_k)
                    for (int m = 0; m < l.Dim; m++)
                    {
                        if (m == k) continue;
                        int j = b + m * l.Inner;
                        sLo += Math.Exp(x.Upper[j] - x.Lower[i]); sHi += Math.Exp(x.Lower[j] - x.Upper[i]);
                    }
                    // exp, the sums and the division each round by ≤ 1 ulp in float64 (Dim + 3 roundings):
                    // a relative margin of 1e-12 covers them for any Dim below 10⁴; overflow gives 1/∞ = 0, still a lower bound.
                    lo[i] = Math.Max(0, 1 / (1 + sLo) * (1 - 1e-12));
                    hi[i] = Math.Min(1, 1 / (1 + sHi) * (1 + 1e-12));
                }
            }
        return IntervalBounds.Box(x.Shape, lo, hi);
    }

    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r) => BoundRules.Concretize(r);

    /// <summary>
    /// Carried error: Σ_j |∂y_k/∂x_j| = 2·y_k·(1 − y_k) ≤ 1/2, so along the segment from x to x̃ (inside the widened
    /// box) |Δy_k| ≤ 2·max y_k·(1 − min y_k)·max_j e_j. Own rounding: the runtime computes exp(x_j − max)/Σ; the
    /// subtraction errs by ≤ u·2M (M the largest |x̃|), which exp turns into a relative error ≤ 2M·u; exp itself, the
    /// Dim-term sum and the division add (Dim + 8)·u; numerator and denominator both: relative (4M + 2·Dim + 16)·u.
    /// </summary>
    public override double[]? FloatError(OpContext ctx, IntervalBounds?[] inputs, double[]?[] errors)
    {
        const double u32 = 1.0 / (1 << 24);
        var x = inputs[0]!; var ex = errors[0]!;
        var y = PropagateInterval(ctx, inputs)!;
        var l = AxisLayout.For(ctx, x.Shape);
        var e = new double[x.Length];
        for (int o = 0; o < l.Outer; o++)
            for (int q = 0; q < l.Inner; q++)
            {
                int b = o * l.Dim * l.Inner + q;
                double emax = 0, m = 0;
                for (int k = 0; k < l.Dim; k++) { emax = Math.Max(emax, ex[b + k * l.Inner]); m = Math.Max(m, x.Magnitude(b + k * l.Inner)); }
                for (int k = 0; k < l.Dim; k++)
                {
                    int i = b + k * l.Inner;
                    double lip = Math.Min(0.5, 2 * y.Upper[i] * (1 - y.Lower[i]));
                    e[i] = (lip * emax + (4 * m + 2 * l.Dim + 16) * u32 * y.Upper[i]) * (1 + 1e-9) + 1e-30;
                }
            }
        return e;
    }
}
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
        ForkJoin.For(groups, gi =>
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

    /// <summary>
    /// Interval bounds of x̂_k = c_k / √(v + ε) (c = x − mean, v = mean of c²) per group of n, then the affine map.
    /// Two sound bounds, intersected: (a) interval arithmetic on c_k and v; (b) since n·v = Σ c_j² ≥ c_k² +
    /// (Σ_{j≠k} c_j)²/(n−1) = c_k²·n/(n−1), |x̂_k| ≤ g(|c_k|) with g(c) = c/√(c²/(n−1) + ε) increasing, and x̂_k has
    /// c_k's sign. Each value is a few float64 operations, pushed outward by 1e-12 relative (plus the outward sums).
    /// </summary>
    private static (double[] lo, double[] hi, double[] sigmaMin) Normalized(OpContext ctx, IntervalBounds x)
    {
        var (groups, n, _, _) = Layout(ctx, x.Shape);
        double eps = ctx.Node.GetFloat("epsilon", 1e-5f);
        var lo = new double[x.Length]; var hi = new double[x.Length]; var sigmaMin = new double[groups];
        const double rel = 1e-12;
        for (int gi = 0; gi < groups; gi++)
        {
            int b = gi * n;
            double sl = 0, su = 0, mag = 0;
            for (int k = 0; k < n; k++) { sl += x.Lower[b + k]; su += x.Upper[b + k]; mag += x.Magnitude(b + k); }
            var cl = new double[n]; var cu = new double[n];
            double vl = 0, vu = 0, vmag = 0;
            for (int k = 0; k < n; k++)
            {
                double xl = x.Lower[b + k], xu = x.Upper[b + k];
                cl[k] = Outward.Down(xl - (su - xu + xl) / n, x.Magnitude(b + k) + mag / n, n + 4);
                cu[k] = Outward.Up(xu - (sl - xl + xu) / n, x.Magnitude(b + k) + mag / n, n + 4);
                double a = cl[k] * cl[k], c = cu[k] * cu[k];
                vl += cl[k] > 0 || cu[k] < 0 ? Math.Min(a, c) : 0; vu += Math.Max(a, c); vmag += Math.Max(a, c);
            }
            vl = Math.Max(0, Outward.Down(vl / n, vmag / n, n + 2)); vu = Outward.Up(vu / n, vmag / n, n + 2);
            double sMin = Math.Sqrt(vl + eps) * (1 - rel), sMax = Math.Sqrt(vu + eps) * (1 + rel);
            sigmaMin[gi] = sMin;
            for (int k = 0; k < n; k++)
            {
                double l = cl[k] >= 0 ? cl[k] / sMax : cl[k] / sMin, u = cu[k] <= 0 ? cu[k] / sMax : cu[k] / sMin;
                if (n > 1)
                {
                    double G(double c) => c / Math.Sqrt(c * c / (n - 1) + eps);
                    l = Math.Max(l, Math.Min(0, G(cl[k]) * (1 + rel)));
                    u = Math.Min(u, Math.Max(0, G(cu[k]) * (1 + rel)));
                }
                lo[b + k] = l - rel * Math.Abs(l); hi[b + k] = u + rel * Math.Abs(u);
            }
        }
        return (lo, hi, sigmaMin);
    }

    private static (double[] Scale, double[]? Bias)? Affine(OpContext ctx, IntervalBounds?[] inputs)
    {
        if (inputs[1] is not { IsConstant: true } sc || inputs.Length > 2 && inputs[2] is { IsConstant: false }) return null;
        var (_, n, _, norm) = Layout(ctx, inputs[0]!.Shape);
        var si = Broadcast.SourceIndex(sc.Shape, norm);
        var bi = inputs.Length > 2 && inputs[2] is { } bb ? Broadcast.SourceIndex(bb.Shape, norm).Select(j => bb.Lower[j]).ToArray() : null;
        return (si.Select(j => sc.Lower[j]).ToArray(), bi);
    }

    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs)
    {
        if (Affine(ctx, inputs) is not var (scale, bias)) return null;
        var x = inputs[0]!;
        var (l, u, _) = Normalized(ctx, x);
        int n = scale.Length;
        var lo = new double[x.Length]; var hi = new double[x.Length];
        for (int i = 0; i < lo.Length; i++)
        {
            double s = scale[i % n], c = bias?[i % n] ?? 0, p = s * l[i] + c, q = s * u[i] + c, m = Math.Abs(s) * Math.Max(Math.Abs(l[i]), Math.Abs(u[i])) + Math.Abs(c);
            lo[i] = Outward.Down(Math.Min(p, q), m, 2); hi[i] = Outward.Up(Math.Max(p, q), m, 2);
        }
        return IntervalBounds.Box(x.Shape, lo, hi);
    }

    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r) => BoundRules.Concretize(r);

    /// <summary>
    /// Carried error: x̂'s Jacobian is (I − 11ᵀ/n − x̂x̂ᵀ/n)/σ, whose row k has absolute sum ≤ (2 + |x̂_k|)/σ (Σ|x̂_j|
    /// ≤ √(n·Σx̂²) ≤ n), σ ≥ σ_min on the widened box; times |scale|. Own rounding (float32, u): the mean errs by
    /// ≤ γ(n)·M (M the largest |x̃|), so c by δc ≤ γ(n+1)·2M; v by δv ≤ γ(n+2)·v_max + 2·(2M)·δc; then
    /// |Δx̂| ≤ δc/σ + |x̂|·δv/(2σ²) + 4u·|x̂|, times |scale|, plus two roundings of the affine map. Doubled for slack.
    /// </summary>
    public override double[]? FloatError(OpContext ctx, IntervalBounds?[] inputs, double[]?[] errors)
    {
        if (Affine(ctx, inputs) is not var (scale, bias)) return null;
        const double u32 = 1.0 / (1 << 24);
        static double G32(int m) => m * u32 / (1 - m * u32);
        var x = inputs[0]!; var ex = errors[0]!;
        var (groups, n, _, _) = Layout(ctx, x.Shape);
        var (l, u, sigmaMin) = Normalized(ctx, x);
        var e = new double[x.Length];
        for (int gi = 0; gi < groups; gi++)
        {
            int b = gi * n;
            double emax = 0, m = 0, vmax = 0;
            for (int k = 0; k < n; k++) { emax = Math.Max(emax, ex[b + k]); m = Math.Max(m, x.Magnitude(b + k)); }
            vmax = 4 * m * m;
            double sg = sigmaMin[gi];
            double dc = G32(n + 1) * 2 * m, dv = G32(n + 2) * vmax + 4 * m * dc;
            for (int k = 0; k < n; k++)
            {
                int i = b + k;
                double xh = Math.Max(Math.Abs(l[i]), Math.Abs(u[i])), s = Math.Abs(scale[k]), c = Math.Abs(bias?[k] ?? 0);
                double carried = s * (2 + xh) / sg * emax;
                double own = s * (dc / sg + xh * dv / (2 * sg * sg) + 4 * u32 * xh) + 2 * u32 * (s * xh + c);
                e[i] = (carried + 2 * own) * (1 + 1e-9) + 1e-30;
            }
        }
        return e;
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
