using Gate.Core.Tensors;
using Gate.Core.Verification;

namespace Gate.Core.Engine.Ops;

/// <summary>
/// Convolution (NCHW) with groups, pads, strides, dilations and auto_pad. 2-D float32 is computed as im2col + GEMM
/// so that the SIMD matrix kernel does the work (the backward pass reuses the column matrix); other ranks (1-D,
/// 3-D) and float64 (used by gradient checks) use the direct N-D kernel in <see cref="ConvND"/>.
/// </summary>
public sealed class ConvOp : Operator
{
    public override string OpType => "Conv";

    private sealed record Geo(int N, int C, int H, int W, int M, int Cg, int Mg, int Kh, int Kw, int G, SpatialGeometry S)
    {
        public int OH => S.Output[0];
        public int OW => S.Output[1];
        public int ColRows => Cg * Kh * Kw;
        public int ColCols => OH * OW;
    }

    private static Geo Geometry(OpContext ctx, int[] x, int[] w)
    {
        if (x.Length != 4 || w.Length != 4)
            throw new OperatorException($"{ctx.Where}: the built-in Conv supports 2-D convolution (4-D X and W), got X [{string.Join(",", x)}], W [{string.Join(",", w)}]");
        int g = (int)ctx.Node.GetInt("group", 1);
        int c = x[1], m = w[0];
        if (g <= 0 || c % g != 0 || m % g != 0 || w[1] != c / g)
            throw new OperatorException($"{ctx.Where}: channels do not match: X has {c} channels, W is [{string.Join(",", w)}], group={g}");
        var ks = ctx.Node.GetInts("kernel_shape");
        if (ks is { Length: > 0 } && (ks[0] != w[2] || ks[1] != w[3])) throw new OperatorException($"{ctx.Where}: kernel_shape does not match W");
        var s = SpatialGeometry.Compute(ctx, [x[2], x[3]], [w[2], w[3]]);
        return new Geo(x[0], c, x[2], x[3], m, c / g, m / g, w[2], w[3], g, s);
    }

    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s)
    {
        if (s[0] is null || s[1] is null) return [null];
        if (s[0]!.Length != 4) return [ConvND.Plan(ctx, s[0]!, s[1]!).OutShape];
        var g = Geometry(ctx, s[0]!, s[1]!);
        return [[g.N, g.M, g.OH, g.OW]];
    }

    /// <summary>
    /// Column matrix of sample n, group grp: row (c, ky, kx), column (oy, ox). Rows are <paramref name="rowStride"/>
    /// apart (default: one sample's width) and start at column <paramref name="colOffset"/>, so several samples can
    /// share one wide matrix.
    /// </summary>
    private static void Im2Col(ReadOnlySpan<float> x, Span<float> col, Geo g, int n, int grp, int rowStride = 0, int colOffset = 0)
    {
        var s = g.S;
        int ohw = g.ColCols;
        if (rowStride == 0) rowStride = ohw;
        for (int c = 0; c < g.Cg; c++)
        {
            int ch = grp * g.Cg + c;
            var plane = x.Slice(((n * g.C) + ch) * g.H * g.W, g.H * g.W);
            for (int ky = 0; ky < g.Kh; ky++)
                for (int kx = 0; kx < g.Kw; kx++)
                {
                    var row = col.Slice(((c * g.Kh + ky) * g.Kw + kx) * rowStride + colOffset, ohw);
                    // Output columns whose input column lies inside the plane: [ox0, ox1), the same for every row.
                    int sx = s.Strides[1], ix0 = kx * s.Dilations[1] - s.PadBegin[1];
                    int ox0 = ix0 >= 0 ? 0 : Math.Min(g.OW, (-ix0 + sx - 1) / sx);
                    int ox1 = Math.Max(ox0, Math.Min(g.OW, g.W - ix0 <= 0 ? 0 : (g.W - ix0 + sx - 1) / sx));
                    for (int oy = 0; oy < g.OH; oy++)
                    {
                        int iy = oy * s.Strides[0] - s.PadBegin[0] + ky * s.Dilations[0];
                        var dst = row.Slice(oy * g.OW, g.OW);
                        if ((uint)iy >= (uint)g.H) { dst.Clear(); continue; }
                        dst[..ox0].Clear();
                        dst[ox1..].Clear();
                        var src = plane.Slice(iy * g.W);
                        if (sx == 1) src.Slice(ix0 + ox0, ox1 - ox0).CopyTo(dst[ox0..ox1]);
                        else for (int ox = ox0; ox < ox1; ox++) dst[ox] = src[ox * sx + ix0];
                    }
                }
        }
    }

    private static void Col2ImAdd(ReadOnlySpan<float> col, Span<float> dx, Geo g, int n, int grp)
    {
        var s = g.S;
        int ohw = g.ColCols;
        for (int c = 0; c < g.Cg; c++)
        {
            int ch = grp * g.Cg + c;
            var plane = dx.Slice(((n * g.C) + ch) * g.H * g.W, g.H * g.W);
            for (int ky = 0; ky < g.Kh; ky++)
                for (int kx = 0; kx < g.Kw; kx++)
                {
                    var row = col.Slice(((c * g.Kh + ky) * g.Kw + kx) * ohw, ohw);
                    for (int oy = 0; oy < g.OH; oy++)
                    {
                        int iy = oy * s.Strides[0] - s.PadBegin[0] + ky * s.Dilations[0];
                        if ((uint)iy >= (uint)g.H) continue;
                        for (int ox = 0; ox < g.OW; ox++)
                        {
                            int ix = ox * s.Strides[1] - s.PadBegin[1] + kx * s.Dilations[1];
                            if ((uint)ix < (uint)g.W) plane[iy * g.W + ix] += row[oy * g.OW + ox];
                        }
                    }
                }
        }
    }

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var x = inputs[0]!; var w = inputs[1]!; var b = inputs.Length > 2 ? inputs[2] : null;
        if (x.Rank != 4 || x.Floats is null) return [ConvND.Forward(ctx, x, w, b)];
        var g = Geometry(ctx, x.Shape, w.Shape);
        var xf = Kernels.Floats(x, ctx, "X"); var wf = Kernels.Floats(w, ctx, "W");
        var bf = b is null ? null : Kernels.Floats(b, ctx, "B");
        var y = ctx.RentFloats(g.N * g.M * g.OH * g.OW);
        long work = (long)g.N * g.M * g.ColRows * g.ColCols;
        // Samples in contiguous chunks, one per core: per-sample products are small (a few rows by OH·OW columns),
        // so finer tasks would cost more in hand-off than they compute; tiny batches stay on the calling thread.
        int chunks = work < ParallelWork ? 1 : Math.Min(g.N, Environment.ProcessorCount);
        if (chunks == 1) ForwardSamples(xf, wf, bf, y, g, 0, g.N);
        else Parallel.For(0, chunks, c => ForwardSamples(xf, wf, bf, y, g, (int)((long)g.N * c / chunks), (int)((long)g.N * (c + 1) / chunks)));
        return [Tensor.FromFloats([g.N, g.M, g.OH, g.OW], y)];
    }

    /// <summary>Multiply-adds below which a convolution runs on one thread.</summary>
    private const long ParallelWork = 1 << 17;

    /// <summary>
    /// Samples [n0, n1): per sample and group, Y = W · col(X) + B straight into the output (bias first, then the
    /// product accumulated onto it), with one pooled column buffer reused across the chunk.
    /// </summary>
    private static void ForwardSamples(float[] xf, float[] wf, float[]? bf, float[] y, Geo g, int n0, int n1)
    {
        int outPlane = g.OH * g.OW;
        var col = System.Buffers.ArrayPool<float>.Shared.Rent(g.ColRows * g.ColCols);
        for (int n = n0; n < n1; n++)
            for (int grp = 0; grp < g.G; grp++)
            {
                var yg = y.AsSpan((n * g.M + grp * g.Mg) * outPlane, g.Mg * outPlane);
                if (bf is null) yg.Clear();
                else for (int m = 0; m < g.Mg; m++) yg.Slice(m * outPlane, outPlane).Fill(bf[grp * g.Mg + m]);
                Im2Col(xf, col, g, n, grp);
                Kernels.MatMul(wf.AsSpan(grp * g.Mg * g.ColRows, g.Mg * g.ColRows), col.AsSpan(0, g.ColRows * g.ColCols), yg, g.Mg, g.ColRows, g.ColCols, accumulate: true);
            }
        System.Buffers.ArrayPool<float>.Shared.Return(col);
    }

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] grads)
    {
        var x = inputs[0]!; var w = inputs[1]!; var b = inputs.Length > 2 ? inputs[2] : null;
        if (x.Rank != 4 || x.Floats is null) return ConvND.Backward(ctx, x, w, b, grads[0]!);
        var g = Geometry(ctx, x.Shape, w.Shape);
        var xf = x.Floats!; var wf = w.Floats!; var gy = grads[0]!.Floats!;
        int outPlane = g.OH * g.OW;
        var dx = new float[x.Length];
        var dwParts = new float[g.N][];
        bool needW = ctx.NeedsGradient(1);
        // Transposed weights per group, shared by every sample.
        var wT = new float[g.G][];
        for (int grp = 0; grp < g.G; grp++) wT[grp] = Kernels.Transpose(wf.AsSpan(grp * g.Mg * g.ColRows, g.Mg * g.ColRows), g.Mg, g.ColRows);
        Parallel.For(0, g.N, n =>
        {
            // Pooled buffers: Im2Col overwrites col, and MatMul (accumulate: false) clears dcol before use.
            var col = System.Buffers.ArrayPool<float>.Shared.Rent(g.ColRows * g.ColCols);
            var dcol = System.Buffers.ArrayPool<float>.Shared.Rent(g.ColRows * g.ColCols);
            var dw = needW ? new float[w.Length] : [];
            for (int grp = 0; grp < g.G; grp++)
            {
                var gyg = gy.AsSpan((n * g.M + grp * g.Mg) * outPlane, g.Mg * outPlane);
                if (needW)
                {
                    Im2Col(xf, col, g, n, grp);
                    // dW[grp] += dY · col^T
                    var colT = Kernels.Transpose(col, g.ColRows, g.ColCols);
                    Kernels.MatMul(gyg, colT, dw.AsSpan(grp * g.Mg * g.ColRows, g.Mg * g.ColRows), g.Mg, g.ColCols, g.ColRows, accumulate: true);
                }
                // dcol = W^T · dY, scattered back to the input (disjoint per sample, so no race).
                Kernels.MatMul(wT[grp], gyg, dcol, g.ColRows, g.Mg, g.ColCols);
                Col2ImAdd(dcol, dx, g, n, grp);
            }
            dwParts[n] = dw;
            System.Buffers.ArrayPool<float>.Shared.Return(col);
            System.Buffers.ArrayPool<float>.Shared.Return(dcol);
        });
        var dwTotal = new float[w.Length];
        if (needW) foreach (var part in dwParts) System.Numerics.Tensors.TensorPrimitives.Add(dwTotal, part, dwTotal);
        Tensor? db = null;
        if (b is not null)
        {
            var dbf = new float[g.M];
            for (int n = 0; n < g.N; n++)
                for (int m = 0; m < g.M; m++)
                    dbf[m] += System.Numerics.Tensors.TensorPrimitives.Sum(gy.AsSpan((n * g.M + m) * outPlane, outPlane));
            db = Tensor.FromFloats([g.M], dbf);
        }
        return [Tensor.FromFloats(x.Shape, dx), needW ? Tensor.FromFloats(w.Shape, dwTotal) : null, db];
    }

    // Bound rules: X variable (batch of one), W and B constant. Direct float64 loops: bounds need float64 and the
    // tensors a verifier handles are small.
    private static void ConvDouble(Geo g, ReadOnlySpan<double> x, ReadOnlySpan<double> w, Span<double> y, bool absW)
    {
        var s = g.S;
        for (int m = 0; m < g.M; m++)
        {
            int grp = m / g.Mg;
            for (int oy = 0; oy < g.OH; oy++)
                for (int ox = 0; ox < g.OW; ox++)
                {
                    double acc = 0;
                    for (int c = 0; c < g.Cg; c++)
                        for (int ky = 0; ky < g.Kh; ky++)
                        {
                            int iy = oy * s.Strides[0] - s.PadBegin[0] + ky * s.Dilations[0];
                            if ((uint)iy >= (uint)g.H) continue;
                            for (int kx = 0; kx < g.Kw; kx++)
                            {
                                int ix = ox * s.Strides[1] - s.PadBegin[1] + kx * s.Dilations[1];
                                if ((uint)ix >= (uint)g.W) continue;
                                double wv = w[((m * g.Cg + c) * g.Kh + ky) * g.Kw + kx];
                                acc += (absW ? Math.Abs(wv) : wv) * x[((grp * g.Cg + c) * g.H + iy) * g.W + ix];
                            }
                        }
                    y[(m * g.OH + oy) * g.OW + ox] = acc;
                }
        }
    }

    private static Geo? BoundGeometry(OpContext ctx, IntervalBounds?[] inputs)
    {
        var x = inputs[0]!; var w = inputs[1]!; var b = inputs.Length > 2 ? inputs[2] : null;
        if (x.IsConstant || !w.IsConstant || b is { IsConstant: false } || x.Shape.Length != 4 || x.Shape[0] != 1) return null;
        return Geometry(ctx, x.Shape, w.Shape);
    }

    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs)
    {
        if (BoundGeometry(ctx, inputs) is not { } g) return null;
        var x = inputs[0]!; var w = inputs[1]!.Lower; var b = inputs.Length > 2 ? inputs[2]?.Lower : null;
        int n = g.M * g.OH * g.OW, plane = g.OH * g.OW;
        var xc = new double[x.Length]; var xr = new double[x.Length]; var xm = new double[x.Length];
        for (int i = 0; i < xc.Length; i++)
        {
            xc[i] = 0.5 * x.Lower[i] + 0.5 * x.Upper[i];
            xr[i] = Math.Max(x.Upper[i] - xc[i], xc[i] - x.Lower[i]);
            xm[i] = Math.Abs(xc[i]) + xr[i];
        }
        var yc = new double[n]; var yr = new double[n]; var ym = new double[n];
        ConvDouble(g, xc, w, yc, false); ConvDouble(g, xr, w, yr, true); ConvDouble(g, xm, w, ym, true);
        var lo = new double[n]; var hi = new double[n];
        int terms = g.Cg * g.Kh * g.Kw;
        for (int i = 0; i < n; i++)
        {
            double bias = b?[i / plane] ?? 0, mag = ym[i] + Math.Abs(bias);
            lo[i] = Outward.Down(yc[i] - yr[i] + bias, mag, terms);
            hi[i] = Outward.Up(yc[i] + yr[i] + bias, mag, terms);
        }
        return IntervalBounds.Box([1, g.M, g.OH, g.OW], lo, hi);
    }

    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r)
    {
        if (BoundGeometry(ctx, r.Inputs) is not { } g) return null;
        var w = r.Inputs[1]!.Lower; var b = r.Inputs.Length > 2 ? r.Inputs[2]?.Lower : null;
        var s = g.S;
        int n = g.M * g.OH * g.OW, xl = g.C * g.H * g.W;
        var lx = new double[r.Rows * xl];
        var bias = new double[r.Rows];
        for (int row = 0; row < r.Rows; row++)
        {
            var lam = r.Lambda.AsSpan(row * n, n);
            var dst = lx.AsSpan(row * xl, xl);
            for (int m = 0; m < g.M; m++)
            {
                int grp = m / g.Mg;
                for (int oy = 0; oy < g.OH; oy++)
                    for (int ox = 0; ox < g.OW; ox++)
                    {
                        double gv = lam[(m * g.OH + oy) * g.OW + ox];
                        if (gv == 0) continue;
                        if (b is not null) bias[row] += gv * b[m];
                        for (int c = 0; c < g.Cg; c++)
                            for (int ky = 0; ky < g.Kh; ky++)
                            {
                                int iy = oy * s.Strides[0] - s.PadBegin[0] + ky * s.Dilations[0];
                                if ((uint)iy >= (uint)g.H) continue;
                                for (int kx = 0; kx < g.Kw; kx++)
                                {
                                    int ix = ox * s.Strides[1] - s.PadBegin[1] + kx * s.Dilations[1];
                                    if ((uint)ix >= (uint)g.W) continue;
                                    dst[((grp * g.Cg + c) * g.H + iy) * g.W + ix] += gv * w[((m * g.Cg + c) * g.Kh + ky) * g.Kw + kx];
                                }
                            }
                    }
            }
        }
        return new LinearBackward([lx, null, null], bias);
    }
}
