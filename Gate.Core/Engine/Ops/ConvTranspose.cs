using Gate.Core.Engine.Bounds;
using Gate.Core.Tensors;

namespace Gate.Core.Engine.Ops;

/// <summary>
/// ConvTranspose (decoders, segmentation heads, GAN generators), any spatial rank, with groups, strides, dilations,
/// pads, output_padding, output_shape and auto_pad. Every input element scatters its kernel into the output: input
/// position p and kernel cell k land on output position p·stride + k·dilation − pad. One map of those (input, cell,
/// output) triples, built once per call, serves the forward pass, both gradients and both bound rules, so they
/// cannot disagree about the geometry. Computed in float64 and returned in X's type, like <see cref="ConvND"/>:
/// decoders in gated models are small next to their encoders, and exactness makes the rules easy to check.
/// </summary>
public sealed class ConvTransposeOp : Operator
{
    public override string OpType => "ConvTranspose";

    /// <summary>The geometry of one call: sizes, and the scatter map as three parallel arrays.</summary>
    internal sealed record Geometry(int N, int C, int M, int G, int Cg, int Mg, int InPlane, int OutPlane, int KernelCells, int[] OutShape,
        int[] From, int[] Cell, int[] To);

    internal static Geometry Plan(OpContext ctx, int[] x, int[] w)
    {
        int rank = x.Length - 2;
        if (rank < 1 || w.Length != x.Length)
            throw new OperatorException($"{ctx.Where}: X [{string.Join(",", x)}] and W [{string.Join(",", w)}] must be [N, C, D1, ...] and [C, M/group, k1, ...]");
        int g = (int)ctx.Node.GetInt("group", 1), c = x[1];
        if (g <= 0 || c % g != 0 || w[0] != c)
            throw new OperatorException($"{ctx.Where}: channels do not match: X has {c} channels, W is [{string.Join(",", w)}] (its first axis must be X's channels), group={g}");
        int mg = w[1], m = mg * g;
        var kernel = w[2..];
        if (ctx.Node.GetInts("kernel_shape") is { Length: > 0 } ks && !ks.Select(v => (int)v).SequenceEqual(kernel))
            throw new OperatorException($"{ctx.Where}: kernel_shape [{string.Join(",", ks)}] does not match W's [{string.Join(",", kernel)}]");
        int[] Attr(string name, int fill, int count)
        {
            var v = ctx.Node.GetInts(name);
            if (v is null || v.Length == 0) return Enumerable.Repeat(fill, count).ToArray();
            if (v.Length != count) throw new OperatorException($"{ctx.Where}: {name} has {v.Length} values, expected {count}");
            return v.Select(e => checked((int)e)).ToArray();
        }
        var strides = Attr("strides", 1, rank);
        var dilations = Attr("dilations", 1, rank);
        var outputPadding = Attr("output_padding", 0, rank);
        if (strides.Any(s => s < 1) || dilations.Any(d => d < 1) || outputPadding.Any(p => p < 0))
            throw new OperatorException($"{ctx.Where}: strides and dilations must be at least 1 and output_padding not negative");
        var input = x[2..];
        // The full extent each input position reaches, before pads are taken off.
        var natural = Enumerable.Range(0, rank).Select(i => strides[i] * (input[i] - 1) + outputPadding[i] + (kernel[i] - 1) * dilations[i] + 1).ToArray();
        string autoPad = ctx.Node.GetString("auto_pad", "NOTSET") is { Length: > 0 } a ? a : "NOTSET";
        var requested = ctx.Node.GetInts("output_shape") is { Length: > 0 } os ? os.TakeLast(rank).Select(v => checked((int)v)).ToArray() : null;
        var padBegin = new int[rank];
        var outShape = new int[rank];
        bool samePad = autoPad is "SAME_UPPER" or "SAME_LOWER";
        if (!samePad && autoPad is not ("NOTSET" or "VALID"))
            throw new OperatorException($"{ctx.Where}: auto_pad '{autoPad}' is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER");
        var pads = samePad || autoPad == "VALID" ? null : ctx.Node.GetInts("pads") is { Length: > 0 } pv ? Attr("pads", 0, 2 * rank) : null;
        for (int i = 0; i < rank; i++)
        {
            if (pads is not null)
            {
                padBegin[i] = pads[i];
                outShape[i] = requested?[i] ?? natural[i] - pads[i] - pads[rank + i];
            }
            else if (samePad || requested is not null)
            {
                // ONNX: the total padding makes the output the requested size (input × stride under SAME_*); SAME_UPPER
                // takes the smaller half at the start, everything else the larger half.
                int target = requested?[i] ?? input[i] * strides[i];
                int total = natural[i] - target;
                padBegin[i] = autoPad == "SAME_UPPER" ? FloorHalf(total) : total - FloorHalf(total);
                outShape[i] = target;
            }
            else outShape[i] = natural[i];
            if (outShape[i] < 1) throw new OperatorException($"{ctx.Where}: the output would have {outShape[i]} elements along spatial axis {i}");
        }

        int inPlane = Tensor.ElementCount(input), outPlane = Tensor.ElementCount(outShape), cells = Tensor.ElementCount(kernel);
        var from = new List<int>(); var cell = new List<int>(); var to = new List<int>();
        var p = new int[rank]; var k = new int[rank];
        for (int pi = 0; pi < inPlane; pi++)
        {
            Unflatten(pi, input, p);
            for (int ki = 0; ki < cells; ki++)
            {
                Unflatten(ki, kernel, k);
                int o = 0;
                bool inside = true;
                for (int i = 0; i < rank && inside; i++)
                {
                    int oi = p[i] * strides[i] + k[i] * dilations[i] - padBegin[i];
                    inside = (uint)oi < (uint)outShape[i];
                    o = o * outShape[i] + oi;
                }
                if (!inside) continue;
                from.Add(pi); cell.Add(ki); to.Add(o);
            }
        }
        return new Geometry(x[0], c, m, g, c / g, mg, inPlane, outPlane, cells, [x[0], m, .. outShape], [.. from], [.. cell], [.. to]);
    }

    /// <summary>⌊t/2⌋, also for a negative total padding (an output_shape past the natural size).</summary>
    private static int FloorHalf(int t) => (int)Math.Floor(t / 2.0);

    private static void Unflatten(int index, int[] shape, int[] into)
    {
        for (int i = shape.Length - 1; i >= 0; i--) { into[i] = index % shape[i]; index /= shape[i]; }
    }

    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) =>
        s[0] is null || s[1] is null ? [null] : [Plan(ctx, s[0]!, s[1]!).OutShape];

    /// <summary>y[n, m] = bias[m] + Σ over the group's input channels c and the map of x[n, c, from] · w[c, m mod Mg, cell] at to.</summary>
    private static double[] Scatter(Geometry p, double[] x, double[] w, double[]? bias, bool absWeights)
    {
        var y = new double[p.N * p.M * p.OutPlane];
        ForkJoin.For(p.N * p.M, job =>
        {
            int n = job / p.M, m = job % p.M, grp = m / p.Mg, ml = m % p.Mg;
            var yo = y.AsSpan(job * p.OutPlane, p.OutPlane);
            if (bias is not null) yo.Fill(bias[m]);
            for (int c = grp * p.Cg; c < (grp + 1) * p.Cg; c++)
            {
                int xb = (n * p.C + c) * p.InPlane, wb = (c * p.Mg + ml) * p.KernelCells;
                for (int t = 0; t < p.From.Length; t++)
                {
                    double wv = w[wb + p.Cell[t]];
                    yo[p.To[t]] += x[xb + p.From[t]] * (absWeights ? Math.Abs(wv) : wv);
                }
            }
        });
        return y;
    }

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var x = inputs[0]!; var w = inputs[1]!; var b = inputs.Length > 2 ? inputs[2] : null;
        var p = Plan(ctx, x.Shape, w.Shape);
        if (b is not null && b.Length != p.M) throw new OperatorException($"{ctx.Where}: B has {b.Length} values, expected {p.M} (output channels)");
        var y = Scatter(p, TensorIndexing.AsDoubles(x), TensorIndexing.AsDoubles(w), b is null ? null : TensorIndexing.AsDoubles(b), absWeights: false);
        return [TensorIndexing.FromDoublesAs(x.Type, p.OutShape, y)];
    }

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] outputGrads)
    {
        var x = inputs[0]!; var w = inputs[1]!; var b = inputs.Length > 2 ? inputs[2] : null;
        var p = Plan(ctx, x.Shape, w.Shape);
        if (outputGrads[0] is not { } gyT) return [null, null, null];
        var gy = TensorIndexing.AsDoubles(gyT); var xv = TensorIndexing.AsDoubles(x); var wv = TensorIndexing.AsDoubles(w);
        var t = x.Type == DType.Float64 ? DType.Float64 : DType.Float32;
        Tensor? dx = null, dw = null, db = null;
        if (ctx.NeedsGradient(0))
        {
            // The transpose of the scatter: each input element gathers the output gradients its kernel reached.
            var d = new double[x.Length];
            ForkJoin.For(p.N * p.C, job =>
            {
                int n = job / p.C, c = job % p.C, grp = c / p.Cg;
                var dst = d.AsSpan(job * p.InPlane, p.InPlane);
                for (int ml = 0; ml < p.Mg; ml++)
                {
                    int gb = (n * p.M + grp * p.Mg + ml) * p.OutPlane, wb = (c * p.Mg + ml) * p.KernelCells;
                    for (int k = 0; k < p.From.Length; k++) dst[p.From[k]] += gy[gb + p.To[k]] * wv[wb + p.Cell[k]];
                }
            });
            dx = TensorIndexing.FromDoublesAs(t, x.Shape, d);
        }
        if (ctx.NeedsGradient(1))
        {
            var d = new double[w.Length];
            ForkJoin.For(p.C, c =>
            {
                int grp = c / p.Cg;
                for (int ml = 0; ml < p.Mg; ml++)
                {
                    var dst = d.AsSpan((c * p.Mg + ml) * p.KernelCells, p.KernelCells);
                    for (int n = 0; n < p.N; n++)
                    {
                        int xb = (n * p.C + c) * p.InPlane, gb = (n * p.M + grp * p.Mg + ml) * p.OutPlane;
                        for (int k = 0; k < p.From.Length; k++) dst[p.Cell[k]] += xv[xb + p.From[k]] * gy[gb + p.To[k]];
                    }
                }
            });
            dw = TensorIndexing.FromDoublesAs(t, w.Shape, d);
        }
        if (b is not null && ctx.NeedsGradient(2))
        {
            var d = new double[p.M];
            for (int n = 0; n < p.N; n++)
                for (int m = 0; m < p.M; m++)
                    for (int o = 0; o < p.OutPlane; o++) d[m] += gy[(n * p.M + m) * p.OutPlane + o];
            db = TensorIndexing.FromDoublesAs(t, [p.M], d);
        }
        return [dx, dw, db];
    }

    /// <summary>Bound rules need one sample (the prover's batch), a variable X and constant weights and bias.</summary>
    private static Geometry? BoundGeometry(OpContext ctx, IntervalBounds?[] inputs)
    {
        var x = inputs[0]!; var w = inputs[1]!; var b = inputs.Length > 2 ? inputs[2] : null;
        if (x.IsConstant || !w.IsConstant || b is { IsConstant: false } || x.Shape.Length < 3 || x.Shape[0] != 1) return null;
        return Plan(ctx, x.Shape, w.Shape);
    }

    /// <summary>IBP in centre/radius form: y = W·xc ± |W|·xr, each output a sum of at most Cg × kernel cells products,
    /// rounded outward by that count's γ on the magnitude |W|·(|xc| + xr) + |b|.</summary>
    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs)
    {
        if (BoundGeometry(ctx, inputs) is not { } p) return null;
        var x = inputs[0]!; var w = inputs[1]!.Lower; var b = inputs.Length > 2 ? inputs[2]?.Lower : null;
        var xc = new double[x.Length]; var xr = new double[x.Length]; var xm = new double[x.Length];
        for (int i = 0; i < xc.Length; i++)
        {
            xc[i] = 0.5 * x.Lower[i] + 0.5 * x.Upper[i];
            xr[i] = Math.Max(x.Upper[i] - xc[i], xc[i] - x.Lower[i]);
            xm[i] = Math.Abs(xc[i]) + xr[i];
        }
        var yc = Scatter(p, xc, w, null, false); var yr = Scatter(p, xr, w, null, true); var ym = Scatter(p, xm, w, null, true);
        int terms = p.Cg * p.KernelCells;
        var lo = new double[yc.Length]; var hi = new double[yc.Length];
        for (int i = 0; i < yc.Length; i++)
        {
            double bias = b?[i / p.OutPlane] ?? 0, mag = ym[i] + Math.Abs(bias);
            lo[i] = Outward.Down(yc[i] - yr[i] + bias, mag, terms);
            hi[i] = Outward.Up(yc[i] + yr[i] + bias, mag, terms);
        }
        return IntervalBounds.Box(p.OutShape, lo, hi);
    }

    /// <summary>CROWN: the operator is linear in X, so Λ·y = (Λ through the transposed scatter)·x + Σ Λ·b exactly.</summary>
    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r)
    {
        if (BoundGeometry(ctx, r.Inputs) is not { } p) return null;
        var w = r.Inputs[1]!.Lower; var b = r.Inputs.Length > 2 ? r.Inputs[2]?.Lower : null;
        int outLength = p.M * p.OutPlane, inLength = p.C * p.InPlane;
        var lx = new double[r.Rows * inLength];
        var bias = new double[r.Rows];
        ForkJoin.For(r.Rows, row =>
        {
            var lam = r.Lambda.AsSpan(row * outLength, outLength);
            var dst = lx.AsSpan(row * inLength, inLength);
            if (b is not null)
                for (int m = 0; m < p.M; m++)
                {
                    double s = 0;
                    foreach (var v in lam.Slice(m * p.OutPlane, p.OutPlane)) s += v;
                    bias[row] += s * b[m];
                }
            for (int c = 0; c < p.C; c++)
            {
                int grp = c / p.Cg;
                for (int ml = 0; ml < p.Mg; ml++)
                {
                    int lb = (grp * p.Mg + ml) * p.OutPlane, wb = (c * p.Mg + ml) * p.KernelCells, xb = c * p.InPlane;
                    for (int k = 0; k < p.From.Length; k++) dst[xb + p.From[k]] += lam[lb + p.To[k]] * w[wb + p.Cell[k]];
                }
            }
        });
        return new LinearBackward([lx, null, null], bias);
    }
}
