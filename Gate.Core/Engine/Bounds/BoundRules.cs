using Gate.Core.Tensors;

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

    /// <summary>
    /// Every output element is a non-negative combination of input elements plus a constant:
    /// y[o] = Σ_{t ∈ [Start[o], Start[o+1])} Weight[t]·x[Source[t]] + Offset[o], where Source indexes the inputs laid
    /// end to end (constants included). Data movement (Transpose, Slice, Concat, Gather, Pad...), averaging
    /// (AveragePool, GlobalAveragePool, ReduceMean) and sums use it; MaxPool-like rules use the same windows.
    /// Weight null = all 1; Offset null = all 0.
    /// </summary>
    public sealed record SparseMap(int[] Shape, int[] Start, int[] Source, double[]? Weight = null, double[]? Offset = null)
    {
        public int Length => Start.Length - 1;

        /// <summary>One source per output element (-1: the constant <paramref name="fill"/>).</summary>
        public static SparseMap Gather(int[] shape, int[] index, double fill)
        {
            var start = new int[index.Length + 1]; var src = new List<int>(index.Length);
            double[]? offset = null;
            for (int o = 0; o < index.Length; o++)
            {
                if (index[o] >= 0) src.Add(index[o]);
                else if (fill != 0) (offset ??= new double[index.Length])[o] = fill;
                start[o + 1] = src.Count;
            }
            return new SparseMap(shape, start, src.ToArray(), null, offset);
        }

        /// <summary>Output <c>map[i]</c> receives input element i with weight <paramref name="weight"/> (a reduction).</summary>
        public static SparseMap Reduce(int[] shape, int[] map, double weight)
        {
            int n = Tensor.ElementCount(shape);
            var start = new int[n + 1];
            foreach (var o in map) start[o + 1]++;
            for (int o = 0; o < n; o++) start[o + 1] += start[o];
            var fillAt = (int[])start.Clone();
            var src = new int[map.Length];
            for (int i = 0; i < map.Length; i++) src[fillAt[map[i]]++] = i;
            return new SparseMap(shape, start, src, weight == 1 ? null : Enumerable.Repeat(weight, map.Length).ToArray());
        }
    }

    private static (double[] lo, double[] hi) Flat(IntervalBounds?[] inputs)
    {
        int n = inputs.Sum(t => t?.Length ?? 0);
        var lo = new double[n]; var hi = new double[n];
        int off = 0;
        foreach (var t in inputs)
        {
            if (t is null) continue;
            Array.Copy(t.Lower, 0, lo, off, t.Length); Array.Copy(t.Upper, 0, hi, off, t.Length);
            off += t.Length;
        }
        return (lo, hi);
    }

    /// <summary>IBP of a <see cref="SparseMap"/>: exact for pure copies, outward-rounded sums otherwise.</summary>
    public static IntervalBounds Sparse(SparseMap map, params IntervalBounds?[] inputs)
    {
        var (l, u) = Flat(inputs);
        int n = map.Length;
        var lo = new double[n]; var hi = new double[n];
        for (int o = 0; o < n; o++)
        {
            int a = map.Start[o], b = map.Start[o + 1];
            double c = map.Offset?[o] ?? 0;
            if (b - a == 1 && map.Weight is null && c == 0) { lo[o] = l[map.Source[a]]; hi[o] = u[map.Source[a]]; continue; }
            double sl = c, su = c, mag = Math.Abs(c);
            for (int t = a; t < b; t++)
            {
                double w = map.Weight?[t] ?? 1, xl = l[map.Source[t]], xu = u[map.Source[t]];
                sl += w * xl; su += w * xu; mag += w * Math.Max(Math.Abs(xl), Math.Abs(xu));
            }
            lo[o] = Outward.Down(sl, mag, b - a); hi[o] = Outward.Up(su, mag, b - a);
        }
        return IntervalBounds.Box(map.Shape, lo, hi);
    }

    /// <summary>CROWN through a <see cref="SparseMap"/> (exact: it is linear); constant inputs join the bias.</summary>
    public static LinearBackward SparseBackward(LinearBackwardRequest r, SparseMap map)
    {
        var inputs = r.Inputs;
        var (l, _) = Flat(inputs);
        int total = l.Length, n = map.Length;
        var global = new double[r.Rows * total];
        var bias = new double[r.Rows];
        for (int s = 0; s < r.Rows; s++)
            for (int o = 0; o < n; o++)
            {
                double g = r.Lambda[s * n + o];
                if (g == 0) continue;
                if (map.Offset is not null) bias[s] += g * map.Offset[o];
                for (int t = map.Start[o]; t < map.Start[o + 1]; t++) global[s * total + map.Source[t]] += g * (map.Weight?[t] ?? 1);
            }
        var res = new double[]?[inputs.Length];
        int off = 0;
        for (int i = 0; i < inputs.Length; i++)
        {
            var t = inputs[i];
            if (t is null) continue;
            if (t.IsConstant)
                for (int s = 0; s < r.Rows; s++) for (int j = 0; j < t.Length; j++) bias[s] += global[s * total + off + j] * t.Lower[j];
            else
            {
                var li = new double[r.Rows * t.Length];
                for (int s = 0; s < r.Rows; s++) Array.Copy(global, s * total + off, li, s * t.Length, t.Length);
                res[i] = li;
            }
            off += t.Length;
        }
        return new LinearBackward(res, bias);
    }

    /// <summary>
    /// IBP of y[o] = max over a window of x (MaxPool, GlobalMaxPool, ReduceMax): the max of the lower bounds and
    /// the max of the upper bounds (max is monotone in every argument; no rounding happens).
    /// </summary>
    public static IntervalBounds WindowMax(SparseMap windows, IntervalBounds x)
    {
        int n = windows.Length;
        var lo = new double[n]; var hi = new double[n];
        for (int o = 0; o < n; o++)
        {
            if (windows.Start[o] == windows.Start[o + 1]) throw new BoundsUnsupportedException("a max window covers padding only");
            double a = double.NegativeInfinity, b = double.NegativeInfinity;
            for (int t = windows.Start[o]; t < windows.Start[o + 1]; t++) { a = Math.Max(a, x.Lower[windows.Source[t]]); b = Math.Max(b, x.Upper[windows.Source[t]]); }
            lo[o] = a; hi[o] = b;
        }
        return IntervalBounds.Box(windows.Shape, lo, hi);
    }

    /// <summary>
    /// CROWN through a window max: y ≥ x_j for every j in the window (we take the j with the largest lower bound,
    /// exact when that element dominates the window: its lower bound reaches every other upper bound), and
    /// y ≤ max of the upper bounds (a constant), or = x_j when x_j dominates.
    /// </summary>
    public static LinearBackward WindowMaxBackward(LinearBackwardRequest r, SparseMap windows)
    {
        var x = r.Inputs[0]!;
        int n = windows.Length;
        var lx = new double[r.Rows * x.Length];
        var bias = new double[r.Rows];
        var pick = new int[n]; var dominant = new bool[n]; var top = new double[n];
        for (int o = 0; o < n; o++)
        {
            int best = -1; double bl = double.NegativeInfinity, hiMax = double.NegativeInfinity;
            for (int t = windows.Start[o]; t < windows.Start[o + 1]; t++)
            {
                int j = windows.Source[t];
                if (best < 0 || x.Lower[j] > bl) { bl = x.Lower[j]; best = j; }
                hiMax = Math.Max(hiMax, x.Upper[j]);
            }
            pick[o] = best; top[o] = hiMax;
            double others = double.NegativeInfinity;
            for (int t = windows.Start[o]; t < windows.Start[o + 1]; t++)
                if (windows.Source[t] != best) others = Math.Max(others, x.Upper[windows.Source[t]]);
            dominant[o] = bl >= others;
        }
        for (int s = 0; s < r.Rows; s++)
            for (int o = 0; o < n; o++)
            {
                double g = r.Lambda[s * n + o];
                if (g == 0) continue;
                if (g > 0 || dominant[o]) lx[s * x.Length + pick[o]] += g;
                else bias[s] += g * top[o];
            }
        return new LinearBackward([lx], bias);
    }

    /// <summary>Float32 error of a window max: max is 1-Lipschitz in the largest input error and rounds nothing.</summary>
    public static double[] WindowMaxError(SparseMap windows, double[] inputError)
    {
        var e = new double[windows.Length];
        for (int o = 0; o < e.Length; o++)
            for (int t = windows.Start[o]; t < windows.Start[o + 1]; t++) e[o] = Math.Max(e[o], inputError[windows.Source[t]]);
        return e;
    }

    /// <summary>
    /// The constant relaxation, sound for any operator with an interval rule: Λ·y ≥ Σ min(λ·l, λ·u) over the
    /// output's bounds. Used where no linear relaxation is implemented (Softmax, Gelu, LayerNormalization); the
    /// prover then still proves what the interval bounds allow.
    /// </summary>
    public static LinearBackward Concretize(LinearBackwardRequest r)
    {
        var y = r.Output;
        int n = y.Length;
        var bias = new double[r.Rows];
        for (int s = 0; s < r.Rows; s++) bias[s] = Outward.LinearOverBox(r.Lambda.AsSpan(s * n, n), y.Lower, y.Upper, 0).lo;
        return new LinearBackward(new double[]?[r.Inputs.Length], bias);
    }

    /// <summary>
    /// Float32 error of an element-wise function f with |f'| ≤ <paramref name="lipschitz"/>(l, u) on [l, u]: the
    /// carried error times that bound (mean value theorem on the widened interval), plus the runtime's own error,
    /// at most <paramref name="relative"/> of the largest |f| there plus <paramref name="absolute"/>.
    /// </summary>
    public static double[] ElementwiseError(IntervalBounds widened, double[] inputError, Func<double, double, double> lipschitz, Func<double, double, double> maxAbsF, double relative, double absolute)
    {
        var e = new double[widened.Length];
        for (int i = 0; i < e.Length; i++)
        {
            double l = widened.Lower[i], u = widened.Upper[i];
            e[i] = (lipschitz(l, u) * inputError[i] + relative * maxAbsF(l, u) + absolute) * (1 + 1e-9) + 1e-30;
        }
        return e;
    }

    /// <summary>
    /// Stand-ins for running an operator's own shape/index logic at bound time: variable inputs become zero
    /// tensors of their shape, constants stay themselves. Data-movement rules derive their index maps this way,
    /// so the map is the one the forward kernel uses.
    /// </summary>
    public static Tensor?[] StandIns(IntervalBounds?[] inputs) =>
        inputs.Select(t => t is null ? null : t.Constant ?? Tensor.Zeros(DType.Float32, t.Shape)).ToArray();

    /// <summary>CROWN through an operator that only reshapes input 0: the coefficients pass unchanged.</summary>
    public static LinearBackward Passthrough(LinearBackwardRequest r)
    {
        var res = new double[]?[r.Inputs.Length];
        res[0] = r.Lambda;
        return new LinearBackward(res, new double[r.Rows]);
    }

    /// <summary>
    /// IBP of y = a·b (or a / b when <paramref name="divide"/>, b then constant and non-zero) with broadcasting:
    /// the extreme products of the operands' bounds, each rounded outward by one rounding (relative 2⁻⁵³).
    /// </summary>
    public static IntervalBounds? Product(OpContext ctx, IntervalBounds a, IntervalBounds b, bool divide)
    {
        if (divide && (!b.IsConstant || b.Lower.Any(v => v == 0 || !double.IsFinite(v)))) return null;
        var shape = Broadcast.Shape(a.Shape, b.Shape, ctx.Where);
        var ia = Broadcast.SourceIndex(a.Shape, shape); var ib = Broadcast.SourceIndex(b.Shape, shape);
        var lo = new double[ia.Length]; var hi = new double[ia.Length];
        for (int i = 0; i < lo.Length; i++)
        {
            double al = a.Lower[ia[i]], au = a.Upper[ia[i]], bl = b.Lower[ib[i]], bu = b.Upper[ib[i]];
            double p1, p2, p3, p4;
            if (divide) { p1 = al / bl; p2 = au / bl; p3 = p1; p4 = p2; }
            else { p1 = al * bl; p2 = al * bu; p3 = au * bl; p4 = au * bu; }
            double mn = Math.Min(Math.Min(p1, p2), Math.Min(p3, p4)), mx = Math.Max(Math.Max(p1, p2), Math.Max(p3, p4));
            lo[i] = Outward.Down(mn, Math.Abs(mn), 1); hi[i] = Outward.Up(mx, Math.Abs(mx), 1);
        }
        return IntervalBounds.Box(shape, lo, hi);
    }

    /// <summary>
    /// CROWN through y = a·b (or a / b, b constant). With one constant operand the map is linear and exact (the
    /// coefficient g/c of a division is rounded like every other backward product; see BoundNetwork). With two
    /// variables, <see cref="McCormick"/>'s planes: a positive coefficient takes a lower plane, a negative one an upper.
    /// </summary>
    public static LinearBackward? ProductBackward(LinearBackwardRequest r, bool divide)
    {
        var a = r.Inputs[0]!; var b = r.Inputs[1]!;
        var shape = r.Output.Shape;
        var ia = Broadcast.SourceIndex(a.Shape, shape); var ib = Broadcast.SourceIndex(b.Shape, shape);
        int n = ia.Length;
        var la = a.IsConstant ? null : new double[r.Rows * a.Length];
        var lb = b.IsConstant ? null : new double[r.Rows * b.Length];
        var bias = new double[r.Rows];
        if (divide && (lb is not null || b.Lower.Any(v => v == 0))) return null;
        for (int s = 0; s < r.Rows; s++)
            for (int i = 0; i < n; i++)
            {
                double g = r.Lambda[s * n + i];
                if (g == 0) continue;
                double al = a.Lower[ia[i]], au = a.Upper[ia[i]], bl = b.Lower[ib[i]], bu = b.Upper[ib[i]];
                if (la is null && lb is null) { bias[s] += g * al * bl; continue; }
                if (lb is null) { la![s * a.Length + ia[i]] += divide ? g / bl : g * bl; continue; }
                if (la is null) { lb[s * b.Length + ib[i]] += g * al; continue; }
                var (ka, kb, k0) = McCormick(g > 0, al, au, bl, bu);
                la[s * a.Length + ia[i]] += g * ka;
                lb[s * b.Length + ib[i]] += g * kb;
                bias[s] += g * k0;
            }
        return new LinearBackward([la, lb], bias);
    }

    /// <summary>
    /// Float32 error of a·b with both operands variable: ã·b̃ − a·b = ã·(b̃ − b) + b·(ã − a), so it is at most
    /// |ã|·e_b + |b|·e_a (both magnitudes bounded on the widened bounds), plus one float32 rounding of |ã·b̃|.
    /// </summary>
    public static double[] ProductError(OpContext ctx, IntervalBounds a, IntervalBounds b, double[] ea, double[] eb)
    {
        var shape = Broadcast.Shape(a.Shape, b.Shape, ctx.Where);
        var ia = Broadcast.SourceIndex(a.Shape, shape); var ib = Broadcast.SourceIndex(b.Shape, shape);
        const double u32 = 1.0 / (1 << 24);
        var e = new double[ia.Length];
        for (int i = 0; i < e.Length; i++)
        {
            double ma = a.Magnitude(ia[i]), mb = b.Magnitude(ib[i]);
            e[i] = (ma * eb[ib[i]] + mb * ea[ia[i]] + u32 * ma * mb) * (1 + 1e-9) + 1e-30;
        }
        return e;
    }

    /// <summary>
    /// A product of two variable matrices (attention's Q·Kᵀ and weights·V): y[t,i,j] = Σₚ a[t,i,p]·b[t,p,j] over
    /// equal leading (batch) axes. Returns, per output, the (a, b) element pairs of its terms; null when the
    /// shapes are not of that form.
    /// </summary>
    public static (int[] Shape, int K, int[] A, int[] B)? BilinearTerms(int[] sa, int[] sb)
    {
        if (sa.Length < 2 || sa.Length != sb.Length || sa[^1] != sb[^2] || !sa.Take(sa.Length - 2).SequenceEqual(sb.Take(sb.Length - 2))) return null;
        int batch = sa.Take(sa.Length - 2).Aggregate(1, (x, y) => x * y), m = sa[^2], k = sa[^1], n = sb[^1];
        var ta = new int[batch * m * n * k]; var tb = new int[ta.Length];
        int q = 0;
        for (int t = 0; t < batch; t++)
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                    for (int p = 0; p < k; p++) { ta[q] = (t * m + i) * k + p; tb[q] = (t * k + p) * n + j; q++; }
        return ([.. sa.Take(sa.Length - 1), n], k, ta, tb);
    }

    /// <summary>IBP of a sum of K interval products per output (see <see cref="BilinearTerms"/>), rounded outward.</summary>
    public static IntervalBounds Bilinear(int[] shape, int k, int[] ta, int[] tb, IntervalBounds a, IntervalBounds b)
    {
        int n = ta.Length / k;
        var lo = new double[n]; var hi = new double[n];
        for (int o = 0; o < n; o++)
        {
            double sl = 0, su = 0, mag = 0;
            for (int q = o * k; q < (o + 1) * k; q++)
            {
                double al = a.Lower[ta[q]], au = a.Upper[ta[q]], bl = b.Lower[tb[q]], bu = b.Upper[tb[q]];
                double p1 = al * bl, p2 = al * bu, p3 = au * bl, p4 = au * bu;
                sl += Math.Min(Math.Min(p1, p2), Math.Min(p3, p4)); su += Math.Max(Math.Max(p1, p2), Math.Max(p3, p4));
                mag += Math.Max(Math.Max(Math.Abs(p1), Math.Abs(p2)), Math.Max(Math.Abs(p3), Math.Abs(p4)));
            }
            lo[o] = Outward.Down(sl, mag, 2 * k); hi[o] = Outward.Up(su, mag, 2 * k);
        }
        return IntervalBounds.Box(shape, lo, hi);
    }

    /// <summary>CROWN through a sum of products: each product term gets McCormick's plane (see <see cref="ProductBackward"/>).</summary>
    public static LinearBackward BilinearBackward(LinearBackwardRequest r, int k, int[] ta, int[] tb)
    {
        var a = r.Inputs[0]!; var b = r.Inputs[1]!;
        int n = ta.Length / k;
        var la = new double[r.Rows * a.Length]; var lb = new double[r.Rows * b.Length];
        var bias = new double[r.Rows];
        for (int s = 0; s < r.Rows; s++)
            for (int o = 0; o < n; o++)
            {
                double g = r.Lambda[s * n + o];
                if (g == 0) continue;
                for (int q = o * k; q < (o + 1) * k; q++)
                {
                    var (ka, kb, k0) = McCormick(g > 0, a.Lower[ta[q]], a.Upper[ta[q]], b.Lower[tb[q]], b.Upper[tb[q]]);
                    la[s * a.Length + ta[q]] += g * ka; lb[s * b.Length + tb[q]] += g * kb; bias[s] += g * k0;
                }
            }
        return new LinearBackward([la, lb], bias);
    }

    /// <summary>Float32 error of a sum of K products of variables: Σ (|ã|·e_b + |b|·e_a) plus γ(K+2)·Σ|ã·b̃|.</summary>
    public static double[] BilinearError(int k, int[] ta, int[] tb, IntervalBounds a, IntervalBounds b, double[] ea, double[] eb)
    {
        const double u32 = 1.0 / (1 << 24);
        double gamma = (k + 2) * u32 / (1 - (k + 2) * u32);
        int n = ta.Length / k;
        var e = new double[n];
        for (int o = 0; o < n; o++)
        {
            double carried = 0, mag = 0;
            for (int q = o * k; q < (o + 1) * k; q++)
            {
                double ma = a.Magnitude(ta[q]), mb = b.Magnitude(tb[q]);
                carried += ma * eb[tb[q]] + mb * ea[ta[q]]; mag += ma * mb;
            }
            e[o] = (carried + gamma * mag) * (1 + 1e-9) + 1e-30;
        }
        return e;
    }

    /// <summary>
    /// McCormick's planes for a·b on [a_l, a_u]×[b_l, b_u] (coefficients on a, on b, constant): below, b_l·a + a_l·b
    /// − a_l·b_l and b_u·a + a_u·b − a_u·b_u; above, b_u·a + a_l·b − a_l·b_u and b_l·a + a_u·b − a_u·b_l (each
    /// follows from a product of two non-negative factors such as (a − a_l)(b − b_l) ≥ 0). Of each pair the plane
    /// better at the box centre is taken; its constant moves outward by a margin above its one rounding.
    /// </summary>
    public static (double ka, double kb, double k0) McCormick(bool lower, double al, double au, double bl, double bu)
    {
        double ac = 0.5 * (al + au), bc = 0.5 * (bl + bu);
        if (lower)
        {
            double v1 = bl * ac + al * bc - al * bl, v2 = bu * ac + au * bc - au * bu;
            var (ka, kb, k0) = v1 >= v2 ? (bl, al, -al * bl) : (bu, au, -au * bu);
            return (ka, kb, k0 - 4e-16 * Math.Abs(k0) - 1e-300);
        }
        else
        {
            double v1 = bu * ac + al * bc - al * bu, v2 = bl * ac + au * bc - au * bl;
            var (ka, kb, k0) = v1 <= v2 ? (bu, al, -al * bu) : (bl, au, -au * bl);
            return (ka, kb, k0 + 4e-16 * Math.Abs(k0) + 1e-300);
        }
    }
}
