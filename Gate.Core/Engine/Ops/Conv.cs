using Gate.Core.Tensors;
using Gate.Core.Engine.Bounds;

namespace Gate.Core.Engine.Ops;

/// <summary>
/// Convolution (NCHW) with groups, pads, strides, dilations and auto_pad. 2-D float32 uses the direct kernel in
/// <see cref="DirectConv"/> where it applies (one group; 8-wide rows at stride 1 or output channels in whole
/// vectors), else im2col + the SIMD GEMM; the input gradient is the same direct kernel run as a transposed
/// convolution where stride and dilation are 1. Other ranks (1-D, 3-D) and float64 (used by gradient checks) use
/// the direct N-D kernel in <see cref="ConvND"/>.
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
    /// Output columns [ox0, ox1) whose input column ox·stride + ix0 lies inside the plane, for kernel column kx
    /// (the same for every output row), and that first input column ix0.
    /// </summary>
    private static (int Ox0, int Ox1, int Ix0) InBoundsColumns(Geo g, int kx)
    {
        var s = g.S;
        int sx = s.Strides[1], ix0 = kx * s.Dilations[1] - s.PadBegin[1];
        int ox0 = ix0 >= 0 ? 0 : Math.Min(g.OW, (-ix0 + sx - 1) / sx);
        int ox1 = Math.Max(ox0, Math.Min(g.OW, g.W - ix0 <= 0 ? 0 : (g.W - ix0 + sx - 1) / sx));
        return (ox0, ox1, ix0);
    }

    /// <summary>Rows shorter than this are moved element by element: a span copy's call costs more than it saves.</summary>
    private const int ShortRow = 16;

    /// <summary>Column matrix of sample n, group grp: row (c, ky, kx), column (oy, ox); zero where the window hits padding.</summary>
    private static void Im2Col(float[] x, float[] col, Geo g, int n, int grp) => Im2Col(x, col, g, n, grp, g.ColCols, 0);

    /// <summary><see cref="Im2Col(float[], float[], Geo, int, int)"/> into columns [offset, offset + OH·OW) of a
    /// column matrix whose rows are <paramref name="ld"/> long (several samples side by side).</summary>
    private static void Im2Col(float[] x, float[] col, Geo g, int n, int grp, int ld, int offset) => Im2Col(x, col, g, n, grp, ld, offset, 0, g.Cg);

    /// <summary>Input channels [c0, c1) only: their rows of the column matrix are disjoint, so ranges can run in parallel.</summary>
    private static void Im2Col(float[] x, float[] col, Geo g, int n, int grp, int ld, int offset, int c0, int c1)
    {
        var s = g.S;
        int ohw = ld, ow = g.OW, sx = s.Strides[1];
        for (int c = c0; c < c1; c++)
        {
            int planeBase = ((n * g.C) + grp * g.Cg + c) * g.H * g.W;
            for (int ky = 0; ky < g.Kh; ky++)
                for (int kx = 0; kx < g.Kw; kx++)
                {
                    int rowBase = ((c * g.Kh + ky) * g.Kw + kx) * ohw + offset;
                    var (ox0, ox1, ix0) = InBoundsColumns(g, kx);
                    for (int oy = 0; oy < g.OH; oy++)
                    {
                        int iy = oy * s.Strides[0] - s.PadBegin[0] + ky * s.Dilations[0];
                        int d = rowBase + oy * ow;
                        if ((uint)iy >= (uint)g.H) { Array.Clear(col, d, ow); continue; }
                        int src = planeBase + iy * g.W + ix0;
                        if (sx == 1 && ox1 - ox0 >= ShortRow)
                        {
                            Array.Clear(col, d, ox0);
                            Array.Copy(x, src + ox0, col, d + ox0, ox1 - ox0);
                            Array.Clear(col, d + ox1, ow - ox1);
                            continue;
                        }
                        int ox = 0;
                        for (; ox < ox0; ox++) col[d + ox] = 0f;
                        for (; ox < ox1; ox++) col[d + ox] = x[src + ox * sx];
                        for (; ox < ow; ox++) col[d + ox] = 0f;
                    }
                }
        }
    }

    /// <summary>Adds a column matrix back onto sample n's input gradient: the transpose of <see cref="Im2Col"/>.</summary>
    private static void Col2ImAdd(float[] col, float[] dx, Geo g, int n, int grp) => Col2ImAdd(col, dx, g, n, grp, g.ColCols, 0);

    /// <summary><see cref="Col2ImAdd(float[], float[], Geo, int, int)"/> from columns [offset, offset + OH·OW) of rows <paramref name="ld"/> long.</summary>
    private static void Col2ImAdd(float[] col, float[] dx, Geo g, int n, int grp, int ld, int offset) => Col2ImAdd(col, dx, g, n, grp, ld, offset, 0, g.Cg);

    /// <summary>Input channels [c0, c1) only: they write disjoint planes of dX, so ranges can run in parallel.</summary>
    private static void Col2ImAdd(float[] col, float[] dx, Geo g, int n, int grp, int ld, int offset, int c0, int c1)
    {
        var s = g.S;
        int ohw = ld, ow = g.OW, sx = s.Strides[1];
        for (int c = c0; c < c1; c++)
        {
            int planeBase = ((n * g.C) + grp * g.Cg + c) * g.H * g.W;
            for (int ky = 0; ky < g.Kh; ky++)
                for (int kx = 0; kx < g.Kw; kx++)
                {
                    int rowBase = ((c * g.Kh + ky) * g.Kw + kx) * ohw + offset;
                    var (ox0, ox1, ix0) = InBoundsColumns(g, kx);
                    if (ox0 >= ox1) continue;
                    for (int oy = 0; oy < g.OH; oy++)
                    {
                        int iy = oy * s.Strides[0] - s.PadBegin[0] + ky * s.Dilations[0];
                        if ((uint)iy >= (uint)g.H) continue;
                        int d = planeBase + iy * g.W + ix0, src = rowBase + oy * ow;
                        if (sx == 1 && ox1 - ox0 >= ShortRow)
                        {
                            var dst = dx.AsSpan(d + ox0, ox1 - ox0);
                            System.Numerics.Tensors.TensorPrimitives.Add(dst, col.AsSpan(src + ox0, ox1 - ox0), dst);
                        }
                        else for (int ox = ox0; ox < ox1; ox++) dx[d + ox * sx] += col[src + ox];
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
        Action<int, int> samples = ForwardSamples(xf, wf, bf, y, g, parallelGemm: chunks == 1);
        if (chunks == 1) samples(0, g.N);
        else ForkJoin.For(chunks, c => samples((int)((long)g.N * c / chunks), (int)((long)g.N * (c + 1) / chunks)));
        return [Tensor.FromFloats([g.N, g.M, g.OH, g.OW], y)];
    }

    /// <summary>The kernel for samples [n0, n1): <see cref="DirectConv"/> where it applies, else im2col + GEMM.
    /// <paramref name="parallelGemm"/>: the caller runs all samples as one chunk, so a large GEMM uses every core itself.</summary>
    private static Action<int, int> ForwardSamples(float[] xf, float[] wf, float[]? bf, float[] y, Geo g, bool parallelGemm)
    {
        if (LargeWeights(g)) return (n0, n1) => BatchedIm2ColSamples(xf, wf, bf, y, g, n0, n1, parallelGemm);
        if (!DirectConv.Supports(g.M, g.G, g.S.Strides[1], g.OW)) return (n0, n1) => Im2ColSamples(xf, wf, bf, y, g, n0, n1);
        var s = g.S;
        var direct = new DirectConv(g.C, g.H, g.W, g.M, g.Kh, g.Kw, s.Strides[0], s.Strides[1], s.Dilations[0], s.Dilations[1], s.PadBegin[0], s.PadBegin[1], g.OH, g.OW);
        var wT = TapMajorWeights(wf, g.M, g.ColRows);
        return (n0, n1) => DirectSamples(direct, xf, wT, bf, y, g.C * g.H * g.W, g.M * g.OH * g.OW, n0, n1);
    }

    private static void DirectSamples(DirectConv direct, float[] x, float[] wT, float[]? bias, float[] y, int inLen, int outLen, int n0, int n1)
    {
        var pad = System.Buffers.ArrayPool<float>.Shared.Rent(direct.ScratchLength);
        direct.ClearPad(pad);
        for (int n = n0; n < n1; n++)
            direct.Sample(x.AsSpan(n * inLen, inLen), wT, bias, y.AsSpan(n * outLen, outLen), pad);
        System.Buffers.ArrayPool<float>.Shared.Return(pad);
    }

    /// <summary>Tap-major copies of weight matrices ([M, taps] → [taps, M]), cached per weight array like Gemm's transposes.</summary>
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<float[], float[]> TapMajor = new();
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<float[], float[]> FlippedTapMajor = new();

    private static float[] TapMajorWeights(float[] wf, int m, int taps) =>
        BufferPool.IsRecyclable(wf) ? Kernels.Transpose(wf, m, taps)
            : TapMajor.GetValue(wf, w => Kernels.Transpose(w, m, taps));

    /// <summary>
    /// Weights of the transposed convolution that carries dY back to dX (stride 1, no dilation): taps (m, ky, kx)
    /// with the kernel flipped, by input channel c: W[m, c, Kh−1−ky, Kw−1−kx].
    /// </summary>
    private static float[] FlippedWeights(float[] wf, Geo g)
    {
        float[] Make(float[] w)
        {
            var r = new float[g.M * g.Kh * g.Kw * g.C];
            for (int m = 0; m < g.M; m++)
                for (int c = 0; c < g.C; c++)
                    for (int ky = 0; ky < g.Kh; ky++)
                        for (int kx = 0; kx < g.Kw; kx++)
                            r[((m * g.Kh + ky) * g.Kw + kx) * g.C + c] = w[((m * g.C + c) * g.Kh + (g.Kh - 1 - ky)) * g.Kw + (g.Kw - 1 - kx)];
            return r;
        }
        return BufferPool.IsRecyclable(wf) ? Make(wf) : FlippedTapMajor.GetValue(wf, Make);
    }

    /// <summary>
    /// One-group convolutions whose weight matrix has at least this many floats (512 KiB: more than a core's share of
    /// L2) take the batched im2col + GEMM path in both passes. The direct kernel streams the whole weight
    /// matrix once per block of 4–8 output pixels, which on ResNet's 128–512-channel layers made the weights, not the
    /// arithmetic, the cost; the GEMM streams them once per K panel for a whole group of samples' columns.
    /// </summary>
    internal const int LargeWeightFloats = 1 << 17;

    /// <summary>
    /// Where the packed GEMM runs (512-bit vectors), one-group convolutions with at least 32 output channels and 64
    /// taps per output take it in both passes: ResNet's 64-channel layers (~40 GFLOP/s on the direct kernel) and its
    /// 7×7 stride-2 stem (13 GFLOP/s, and its stride-2 input gradient went through the unpacked GEMM). The digits
    /// models' convolutions (8 and 16 channels, 9 and 72 taps) stay on the direct kernel, which is faster at their size.
    /// </summary>
    internal static bool TakesPackedGemm(int groups, int m, int colRows) => PackedGemm.IsSupported && groups == 1 && m >= 32 && colRows >= 16;

    private static bool LargeWeights(Geo g) => TakesPackedGemm(g.G, g.M, g.ColRows) || g.G == 1 && (long)g.M * g.ColRows >= LargeWeightFloats;

    /// <summary>W [M, ColRows] packed as the GEMM's A (forward) and Wᵀ [ColRows, M] (input gradient), cached per weight
    /// array like the transposes; weights computed in the graph are packed per call.</summary>
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<float[], PackedGemm.PackedA> PackedW = new(), PackedWT = new();

    private static PackedGemm.PackedA PackedWeights(float[] wf, Geo g, bool transposed)
    {
        PackedGemm.PackedA Make(float[] w) => transposed
            ? new PackedGemm.PackedA(w.AsSpan(0, g.M * g.ColRows), g.ColRows, g.M, 1, g.ColRows)
            : new PackedGemm.PackedA(w.AsSpan(0, g.M * g.ColRows), g.M, g.ColRows, g.ColRows, 1);
        if (BufferPool.IsRecyclable(wf)) return Make(wf);
        var cached = (transposed ? PackedWT : PackedW).GetValue(wf, Make);
        // The cache is keyed by the array alone: an array seen before under another shape is packed afresh.
        return cached.M == (transposed ? g.ColRows : g.M) && cached.K == (transposed ? g.M : g.ColRows) ? cached : Make(wf);
    }

    /// <summary>Columns the batched path puts side by side in one GEMM: small planes (4×4 at ResNet's last stage)
    /// join several samples so that each pass over the weights does enough arithmetic.</summary>
    private const int MinGemmColumns = 256;

    private static int SamplesPerGemm(Geo g, int available) => Math.Clamp((MinGemmColumns + g.ColCols - 1) / g.ColCols, 1, Math.Max(1, available));

    /// <summary>
    /// Samples [n0, n1) of a large one-group convolution: S samples' column matrices side by side, Y' = W · col as one
    /// GEMM [M, S·OH·OW], then each sample's rows (plus bias) into Y; one sample per GEMM writes Y directly. With
    /// <paramref name="parallel"/> (one chunk: batch 1) the GEMM itself runs on every core.
    /// </summary>
    private static void BatchedIm2ColSamples(float[] xf, float[] wf, float[]? bf, float[] y, Geo g, int n0, int n1, bool parallel)
    {
        int plane = g.ColCols, per = SamplesPerGemm(g, n1 - n0);
        var packed = PackedGemm.IsSupported ? PackedWeights(wf, g, transposed: false) : null;
        var col = System.Buffers.ArrayPool<float>.Shared.Rent(g.ColRows * per * plane);
        var prod = System.Buffers.ArrayPool<float>.Shared.Rent(g.M * per * plane);
        for (int s0 = n0; s0 < n1; s0 += per)
        {
            int count = Math.Min(per, n1 - s0), ld = count * plane;
            if (parallel && count == 1) ByChannels(g, (c0, c1) => Im2Col(xf, col, g, s0, 0, ld, 0, c0, c1));
            else for (int i = 0; i < count; i++) Im2Col(xf, col, g, s0 + i, 0, ld, i * plane);
            if (packed is not null && count == 1)
            {
                PackedGemm.Multiply(packed, col.AsSpan(0, g.ColRows * ld), ld, y.AsSpan(s0 * g.M * plane, g.M * plane), plane, plane, false, bf is null ? default : bf.AsSpan(0, g.M), parallel);
                continue;
            }
            if (packed is not null) PackedGemm.Multiply(packed, col.AsSpan(0, g.ColRows * ld), ld, prod.AsSpan(0, g.M * ld), ld, ld, false, default, parallel);
            else Kernels.MatMul(wf.AsSpan(0, g.M * g.ColRows), col.AsSpan(0, g.ColRows * ld), prod.AsSpan(0, g.M * ld), g.M, g.ColRows, ld);
            for (int i = 0; i < count; i++)
                for (int m = 0; m < g.M; m++)
                {
                    var src = prod.AsSpan(m * ld + i * plane, plane);
                    var dst = y.AsSpan(((s0 + i) * g.M + m) * plane, plane);
                    if (bf is null) src.CopyTo(dst);
                    else System.Numerics.Tensors.TensorPrimitives.Add(src, bf[m], dst);
                }
        }
        System.Buffers.ArrayPool<float>.Shared.Return(col);
        System.Buffers.ArrayPool<float>.Shared.Return(prod);
    }

    /// <summary>
    /// dX for samples [n0, n1) of a large one-group convolution: S samples' dY side by side as [M, S·OH·OW],
    /// dcol = Wᵀ · dY as one GEMM, scattered back per sample by col2im. Where the packed GEMM runs it takes Wᵀ packed
    /// (and one sample's dY in place); else <paramref name="wT"/> is Wᵀ [ColRows, M].
    /// </summary>
    private static void BatchedCol2ImSamples(float[] gy, float[] wf, float[]? wT, float[] dx, Geo g, int n0, int n1, bool parallel)
    {
        int plane = g.ColCols, per = SamplesPerGemm(g, n1 - n0), sampleLen = g.C * g.H * g.W;
        var packed = PackedGemm.IsSupported ? PackedWeights(wf, g, transposed: true) : null;
        dx.AsSpan(n0 * sampleLen, (n1 - n0) * sampleLen).Clear();
        var dy = System.Buffers.ArrayPool<float>.Shared.Rent(g.M * per * plane);
        var dcol = System.Buffers.ArrayPool<float>.Shared.Rent(g.ColRows * per * plane);
        for (int s0 = n0; s0 < n1; s0 += per)
        {
            int count = Math.Min(per, n1 - s0), ld = count * plane;
            if (packed is not null && count == 1)
                PackedGemm.Multiply(packed, gy.AsSpan(s0 * g.M * plane, g.M * plane), plane, dcol.AsSpan(0, g.ColRows * ld), ld, ld, false, default, parallel);
            else
            {
                for (int i = 0; i < count; i++)
                    for (int m = 0; m < g.M; m++)
                        gy.AsSpan(((s0 + i) * g.M + m) * plane, plane).CopyTo(dy.AsSpan(m * ld + i * plane, plane));
                if (packed is not null) PackedGemm.Multiply(packed, dy.AsSpan(0, g.M * ld), ld, dcol.AsSpan(0, g.ColRows * ld), ld, ld, false, default, parallel);
                else Kernels.MatMul(wT.AsSpan(0, g.ColRows * g.M), dy.AsSpan(0, g.M * ld), dcol.AsSpan(0, g.ColRows * ld), g.ColRows, g.M, ld);
            }
            if (parallel && count == 1) ByChannels(g, (c0, c1) => Col2ImAdd(dcol, dx, g, s0, 0, ld, 0, c0, c1));
            else for (int i = 0; i < count; i++) Col2ImAdd(dcol, dx, g, s0 + i, 0, ld, i * plane);
        }
        System.Buffers.ArrayPool<float>.Shared.Return(dy);
        System.Buffers.ArrayPool<float>.Shared.Return(dcol);
    }

    /// <summary>
    /// Input channel ranges of one sample across the cores: at batch 1 the GEMM runs on every core, and im2col or
    /// col2im left on one (7 MB of column matrix for a 64-channel 56×56 layer) took longer than the GEMM itself.
    /// </summary>
    private static void ByChannels(Geo g, Action<int, int> range)
    {
        int parts = (long)g.ColRows * g.ColCols < 1 << 16 ? 1 : Math.Min(g.Cg, Environment.ProcessorCount);
        if (parts <= 1) { range(0, g.Cg); return; }
        ForkJoin.For(parts, t => range((int)((long)g.Cg * t / parts), (int)((long)g.Cg * (t + 1) / parts)));
    }

    /// <summary>Wᵀ per group ([ColRows, Mg] each, side by side), cached per weight array: the input gradient of every
    /// pass needs the same transpose, which for a 512-channel layer is 9 MB.</summary>
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<float[], float[]> GroupTransposed = new();

    private static float[] TransposedWeights(float[] wf, Geo g)
    {
        float[] Make(float[] w)
        {
            var r = new float[g.M * g.ColRows];
            for (int grp = 0; grp < g.G; grp++)
                Kernels.Transpose(w.AsSpan(grp * g.Mg * g.ColRows, g.Mg * g.ColRows), g.Mg, g.ColRows).CopyTo(r, grp * g.Mg * g.ColRows);
            return r;
        }
        return BufferPool.IsRecyclable(wf) ? Make(wf) : GroupTransposed.GetValue(wf, Make);
    }

    /// <summary>Multiply-adds below which a convolution runs on one thread.</summary>
    private const long ParallelWork = 1 << 17;

    /// <summary>
    /// Samples [n0, n1): per sample and group, Y = W · col(X) + B straight into the output (bias first, then the
    /// product accumulated onto it), with one pooled column buffer reused across the chunk.
    /// </summary>
    private static void Im2ColSamples(float[] xf, float[] wf, float[]? bf, float[] y, Geo g, int n0, int n1)
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
        bool needX = ctx.NeedsGradient(0), needW = ctx.NeedsGradient(1), needB = b is not null && ctx.NeedsGradient(2);
        var dx = needX ? ctx.RentFloats(x.Length) : null;
        // Contiguous sample chunks, one per core, as in the forward pass; each chunk sums its own dW.
        long work = (long)g.N * g.M * g.ColRows * g.ColCols;
        int chunks = work < ParallelWork ? 1 : Math.Min(g.N, Environment.ProcessorCount);
        var dwParts = new float[chunks][];
        // dX by direct transposed convolution where it applies (stride 1, no dilation, and DirectConv supports the
        // shape with the input channels as its outputs); otherwise W^T · dY per sample, scattered back by col2im.
        var s = g.S;
        bool batchedDx = dx is not null && LargeWeights(g);
        DirectConv? directDx = dx is not null && !batchedDx && DirectConv.Supports(g.C, g.G, 1, g.W) && s.Strides[0] == 1 && s.Strides[1] == 1 && s.Dilations[0] == 1 && s.Dilations[1] == 1
            ? new DirectConv(g.M, g.OH, g.OW, g.C, g.Kh, g.Kw, 1, 1, 1, 1, g.Kh - 1 - s.PadBegin[0], g.Kw - 1 - s.PadBegin[1], g.H, g.W) : null;
        var flipped = directDx is null ? null : FlippedWeights(wf, g);
        // Transposed weights per group, shared by every sample (only the col2im route needs them).
        var wT = dx is not null && directDx is null && !(batchedDx && PackedGemm.IsSupported) ? TransposedWeights(wf, g) : null;
        void Chunk(int chunk)
        {
            int n0 = (int)((long)g.N * chunk / chunks), n1 = (int)((long)g.N * (chunk + 1) / chunks);
            int sampleLen = g.C * g.H * g.W;
            if (batchedDx)
            {
                BatchedCol2ImSamples(gy, wf, wT, dx!, g, n0, n1, parallel: chunks == 1);
                if (!needW) return;
            }
            else if (directDx is not null)
            {
                var pad = System.Buffers.ArrayPool<float>.Shared.Rent(directDx.ScratchLength);
                directDx.ClearPad(pad);
                for (int n = n0; n < n1; n++)
                    directDx.Sample(gy.AsSpan(n * g.M * outPlane, g.M * outPlane), flipped!, default, dx!.AsSpan(n * sampleLen, sampleLen), pad);
                System.Buffers.ArrayPool<float>.Shared.Return(pad);
                if (!needW) return;
            }
            else if (dx is not null) dx.AsSpan(n0 * sampleLen, (n1 - n0) * sampleLen).Clear();
            // Pooled scratch: Im2Col overwrites col, and MatMul (accumulate: false) overwrites dcol.
            var col = System.Buffers.ArrayPool<float>.Shared.Rent(g.ColRows * g.ColCols);
            var colT = needW ? System.Buffers.ArrayPool<float>.Shared.Rent(g.ColRows * g.ColCols) : null;
            var dcol = System.Buffers.ArrayPool<float>.Shared.Rent(g.ColRows * g.ColCols);
            var dw = needW ? new float[w.Length] : null;
            for (int n = n0; n < n1; n++)
                for (int grp = 0; grp < g.G; grp++)
                {
                    var gyg = gy.AsSpan((n * g.M + grp * g.Mg) * outPlane, g.Mg * outPlane);
                    if (dw is not null)
                    {
                        // dW[grp] += dY · col^T
                        Im2Col(xf, col, g, n, grp);
                        for (int r = 0; r < g.ColRows; r++)
                            for (int q = 0; q < g.ColCols; q++) colT![q * g.ColRows + r] = col[r * g.ColCols + q];
                        Kernels.MatMul(gyg, colT.AsSpan(0, g.ColRows * g.ColCols), dw.AsSpan(grp * g.Mg * g.ColRows, g.Mg * g.ColRows), g.Mg, g.ColCols, g.ColRows, accumulate: true);
                    }
                    if (dx is not null && directDx is null && !batchedDx)
                    {
                        // dcol = W^T · dY, scattered back onto this sample's input gradient (disjoint per sample).
                        Kernels.MatMul(wT.AsSpan(grp * g.Mg * g.ColRows, g.Mg * g.ColRows), gyg, dcol, g.ColRows, g.Mg, g.ColCols);
                        Col2ImAdd(dcol, dx, g, n, grp);
                    }
                }
            dwParts[chunk] = dw ?? [];
            System.Buffers.ArrayPool<float>.Shared.Return(col);
            if (colT is not null) System.Buffers.ArrayPool<float>.Shared.Return(colT);
            System.Buffers.ArrayPool<float>.Shared.Return(dcol);
        }
        if (chunks == 1) Chunk(0);
        else ForkJoin.For(chunks, Chunk);
        Tensor? dW = null;
        if (needW)
        {
            var total = new float[w.Length];
            foreach (var part in dwParts) System.Numerics.Tensors.TensorPrimitives.Add(total, part, total);
            dW = Tensor.FromFloats(w.Shape, total);
        }
        Tensor? db = null;
        if (needB)
        {
            var dbf = new float[g.M];
            for (int n = 0; n < g.N; n++)
                for (int m = 0; m < g.M; m++)
                    dbf[m] += System.Numerics.Tensors.TensorPrimitives.Sum(gy.AsSpan((n * g.M + m) * outPlane, outPlane));
            db = Tensor.FromFloats([g.M], dbf);
        }
        return [dx is null ? null : Tensor.FromFloats(x.Shape, dx), dW, db];
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
