namespace Gate.Core.Engine.Bounds;

/// <summary>
/// Building blocks that several operators' bound rules share (dense products, broadcasting sums, per-element
/// affine maps and per-element linear relaxations), so that each operator's own rule is a few lines.
/// </summary>
public static class BoundRules
{
    /// <summary>IBP of y[i,j] = Σₚ x[i,p]·W[p,j] + bias[i,j] with x an interval (m×k) and W (k×n) constant.</summary>
    public static IntervalBounds Dense(IntervalBounds x, int m, int k, double[] w, int n, double[]? bias, int[] outShape, Func<int, int, int>? xIndex = null)
    {
        var lo = new double[m * n]; var hi = new double[m * n];
        xIndex ??= (i, p) => i * k + p;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double c = bias?[i * n + j] ?? 0, r = 0, mag = Math.Abs(c);
                for (int p = 0; p < k; p++)
                {
                    int xi = xIndex(i, p);
                    double l = x.Lower[xi], u = x.Upper[xi], wv = w[p * n + j];
                    double xc = 0.5 * l + 0.5 * u, xr = Math.Max(u - xc, xc - l);
                    c += xc * wv; r += xr * Math.Abs(wv); mag += (Math.Abs(xc) + xr) * Math.Abs(wv);
                }
                lo[i * n + j] = Outward.Down(c - r, mag, k);
                hi[i * n + j] = Outward.Up(c + r, mag, k);
            }
        return IntervalBounds.Box(outShape, lo, hi);
    }

    /// <summary>CROWN through the same dense map: Λₓ[s,i,p] = Σⱼ Λ[s,i,j]·W[p,j]; bias = Σ Λ·bias.</summary>
    public static (double[] lambdaX, double[] bias) DenseBackward(int rows, double[] lambda, int m, int k, double[] w, int n, double[]? bias, int xLength, Func<int, int, int>? xIndex = null)
    {
        var lx = new double[rows * xLength];
        var b = new double[rows];
        xIndex ??= (i, p) => i * k + p;
        for (int s = 0; s < rows; s++)
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double g = lambda[(s * m + i) * n + j];
                    if (g == 0) continue;
                    if (bias is not null) b[s] += g * bias[i * n + j];
                    for (int p = 0; p < k; p++) lx[s * xLength + xIndex(i, p)] += g * w[p * n + j];
                }
        return (lx, b);
    }

    /// <summary>IBP of y = a ± b with numpy broadcasting (either operand may be constant).</summary>
    public static IntervalBounds BroadcastSum(OpContext ctx, IntervalBounds a, IntervalBounds b, double sign)
    {
        var shape = Broadcast.Shape(a.Shape, b.Shape, ctx.Where);
        var ia = Broadcast.SourceIndex(a.Shape, shape); var ib = Broadcast.SourceIndex(b.Shape, shape);
        var lo = new double[ia.Length]; var hi = new double[ia.Length];
        for (int i = 0; i < lo.Length; i++)
        {
            double bl = sign > 0 ? b.Lower[ib[i]] : -b.Upper[ib[i]], bu = sign > 0 ? b.Upper[ib[i]] : -b.Lower[ib[i]];
            double mag = a.Magnitude(ia[i]) + b.Magnitude(ib[i]);
            lo[i] = Outward.Down(a.Lower[ia[i]] + bl, mag, 1);
            hi[i] = Outward.Up(a.Upper[ia[i]] + bu, mag, 1);
        }
        return IntervalBounds.Box(shape, lo, hi);
    }

    /// <summary>CROWN through y = a ± b: variables get the (broadcast-reduced) coefficients, constants join the bias.</summary>
    public static LinearBackward BroadcastSumBackward(LinearBackwardRequest r, double sign)
    {
        var a = r.Inputs[0]!; var b = r.Inputs[1]!;
        var shape = r.Output.Shape;
        var ia = Broadcast.SourceIndex(a.Shape, shape); var ib = Broadcast.SourceIndex(b.Shape, shape);
        int n = ia.Length;
        var bias = new double[r.Rows];
        double[]? Side(IntervalBounds t, int[] idx, double sg)
        {
            var res = t.IsConstant ? null : new double[r.Rows * t.Length];
            for (int s = 0; s < r.Rows; s++)
                for (int i = 0; i < n; i++)
                {
                    double g = sg * r.Lambda[s * n + i];
                    if (res is null) bias[s] += g * t.Lower[idx[i]];
                    else res[s * t.Length + idx[i]] += g;
                }
            return res;
        }
        return new LinearBackward([Side(a, ia, 1), Side(b, ib, sign)], bias);
    }

    /// <summary>IBP of a per-element affine map y = scale·x + shift (BatchNormalization in inference mode).</summary>
    public static IntervalBounds Affine(IntervalBounds x, Func<int, (double scale, double shift)> coef)
    {
        var lo = new double[x.Length]; var hi = new double[x.Length];
        for (int i = 0; i < lo.Length; i++)
        {
            var (a, b) = coef(i);
            double p = a * x.Lower[i] + b, q = a * x.Upper[i] + b, mag = Math.Abs(a) * x.Magnitude(i) + Math.Abs(b);
            lo[i] = Outward.Down(Math.Min(p, q), mag, 8);
            hi[i] = Outward.Up(Math.Max(p, q), mag, 8);
        }
        return IntervalBounds.Box(x.Shape, lo, hi);
    }

    /// <summary>IBP of a monotone non-decreasing element-wise function whose library implementation is within a few ulps.</summary>
    public static IntervalBounds Monotone(IntervalBounds x, Func<double, double> f)
    {
        var lo = new double[x.Length]; var hi = new double[x.Length];
        for (int i = 0; i < lo.Length; i++)
        {
            double a = f(x.Lower[i]), b = f(x.Upper[i]);
            lo[i] = a - 1e-14 * (1 + Math.Abs(a));
            hi[i] = b + 1e-14 * (1 + Math.Abs(b));
        }
        return IntervalBounds.Box(x.Shape, lo, hi);
    }

    /// <summary>
    /// A sound linear relaxation per element: lower line aₗ·x + bₗ ≤ f(x) ≤ aᵤ·x + bᵤ on [l, u].
    /// Row by row, a non-negative coefficient takes the lower line and a negative one the upper line, which is
    /// exactly what a lower bound on Λ·f(x) needs.
    /// </summary>
    public static LinearBackward Relaxed(LinearBackwardRequest r, Func<int, int, (double al, double bl, double au, double bu)> relaxation)
    {
        int n = r.Inputs[0]!.Length;
        var lx = new double[r.Rows * n];
        var bias = new double[r.Rows];
        for (int s = 0; s < r.Rows; s++)
            for (int i = 0; i < n; i++)
            {
                double g = r.Lambda[s * n + i];
                if (g == 0) continue;
                var (al, bl, au, bu) = relaxation(s, i);
                if (g > 0) { lx[s * n + i] = g * al; bias[s] += g * bl; }
                else { lx[s * n + i] = g * au; bias[s] += g * bu; }
            }
        return new LinearBackward([lx], bias);
    }

    /// <summary>
    /// Linear relaxation of a sigmoid-shaped function f (f' unimodal with its maximum at 0, convex on x ≤ 0,
    /// concave on x ≥ 0). Convex part: chord above, tangent at the midpoint below; concave part: the mirror;
    /// straddling 0: two parallel lines of slope k = min(f'(l), f'(u)) — since f' ≥ k on [l,u], f(x) − k·x is
    /// non-decreasing there, so the lines through (l, f(l)) and (u, f(u)) are below and above f. Intercepts are
    /// pushed outward by a margin far above float64 rounding of these few operations.
    /// </summary>
    public static (double al, double bl, double au, double bu) SShaped(double l, double u, Func<double, double> f, Func<double, double> df)
    {
        double fl = f(l), fu = f(u);
        double margin = 1e-12 * (1 + Math.Max(Math.Abs(l), Math.Abs(u)));
        double al, bl, au, bu;
        if (u - l > 1e-6 && (u <= 0 || l >= 0))
        {
            double chord = (fu - fl) / (u - l), mid = 0.5 * (l + u), tk = df(mid), tb = f(mid) - tk * mid;
            double cb = fl - chord * l;
            if (u <= 0) { al = tk; bl = tb; au = chord; bu = cb; }
            else { al = chord; bl = cb; au = tk; bu = tb; }
        }
        else
        {
            double k = Math.Min(df(l), df(u));
            al = k; bl = fl - k * l; au = k; bu = fu - k * u;
        }
        return (al, bl - margin, au, bu + margin);
    }
}
