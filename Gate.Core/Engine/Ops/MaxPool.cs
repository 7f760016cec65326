using Gate.Core.Tensors;
using Gate.Core.Engine.Bounds;

namespace Gate.Core.Engine.Ops;

/// <summary>
/// Max pooling (NCHW). 2-D float32 has a direct kernel; other ranks (1-D, 3-D) and integer inputs go through the
/// N-D <see cref="PoolWindows"/>. The gradient goes to the first maximum of each window, as in the forward pass.
/// </summary>
public sealed class MaxPoolOp : Operator
{
    public override string OpType => "MaxPool";

    private static SpatialGeometry Geometry(OpContext ctx, int[] x)
    {
        return PoolWindows.Geometry(ctx, x);
    }

    // Bounds of the values (output 0): a window max over the same windows as the N-D kernel.
    private static BoundRules.SparseMap BoundMap(OpContext ctx, int[] x) => PoolWindows.Build(Geometry(ctx, x)).AsSparse(x, null);
    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs) => BoundRules.WindowMax(BoundMap(ctx, inputs[0]!.Shape), inputs[0]!);
    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r) => BoundRules.WindowMaxBackward(r, BoundMap(ctx, r.Inputs[0]!.Shape));
    public override double[]? FloatError(OpContext ctx, IntervalBounds?[] inputs, double[]?[] errors) => BoundRules.WindowMaxError(BoundMap(ctx, inputs[0]!.Shape), errors[0]!);

    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s)
    {
        if (s[0] is null) return [null, null];
        var g = Geometry(ctx, s[0]!);
        int[] o = [s[0]![0], s[0]![1], .. g.Output];
        return [o, o];
    }

    /// <summary>Index (within the input plane) of the first maximum of each output window; -1 if the window is all padding.</summary>
    private static int[] ArgMaxes(ReadOnlySpan<float> x, int planes, SpatialGeometry g, int h, int w)
    {
        int oh = g.Output[0], ow = g.Output[1];
        var arg = new int[planes * oh * ow];
        for (int p = 0; p < planes; p++)
        {
            var plane = x.Slice(p * h * w, h * w);
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                {
                    int best = -1; float bv = float.NegativeInfinity;
                    for (int ky = 0; ky < g.Kernel[0]; ky++)
                    {
                        int iy = oy * g.Strides[0] - g.PadBegin[0] + ky * g.Dilations[0];
                        if ((uint)iy >= (uint)h) continue;
                        for (int kx = 0; kx < g.Kernel[1]; kx++)
                        {
                            int ix = ox * g.Strides[1] - g.PadBegin[1] + kx * g.Dilations[1];
                            if ((uint)ix >= (uint)w) continue;
                            float v = plane[iy * w + ix];
                            if (best < 0 || v > bv || float.IsNaN(v)) { bv = v; best = iy * w + ix; }
                        }
                    }
                    arg[(p * oh + oy) * ow + ox] = best;
                }
        }
        return arg;
    }

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var x = inputs[0]!;
        var g = Geometry(ctx, x.Shape);
        bool columnMajor = ctx.Node.GetBool("storage_order", false);
        if (x.Rank != 4 || x.Floats is null)
            return columnMajor ? throw new OperatorException($"{ctx.Where}: storage_order=1 is supported for 2-D pooling only") : ForwardND(ctx, x, g);
        int n = x.Shape[0], c = x.Shape[1], h = x.Shape[2], w = x.Shape[3];
        var xf = Kernels.Floats(x, ctx, "X");
        int[] shape = [n, c, g.Output[0], g.Output[1]];
        int ohw = g.Output[0] * g.Output[1];
        if (ctx.Node.Outputs.Length < 2 || ctx.Node.Outputs[1].Length == 0)
        {
            // Values only: no index arrays, and tiled windows (the usual 2×2 stride 2) take a branch-light path.
            var yv = ctx.RentFloats(n * c * ohw);
            if (IsTiling(g, h, w)) MaxTiled(xf, yv, n * c, g.Kernel[0], g.Kernel[1], h, w, g.Output[0], g.Output[1]);
            else
            {
                var a = ArgMaxes(xf, n * c, g, h, w);
                for (int i = 0; i < a.Length; i++) yv[i] = a[i] < 0 ? float.NegativeInfinity : xf[i / ohw * h * w + a[i]];
            }
            return [Tensor.FromFloats(shape, yv, x.Type)];
        }
        var arg = ArgMaxes(xf, n * c, g, h, w);
        var y = new float[arg.Length];
        var idx = new long[arg.Length];
        for (int i = 0; i < arg.Length; i++)
        {
            int plane = i / ohw;
            y[i] = arg[i] < 0 ? float.NegativeInfinity : xf[plane * h * w + arg[i]];
            // storage_order=1 numbers the Indices output column-major within each plane.
            idx[i] = arg[i] < 0 ? -1 : (long)plane * h * w + (columnMajor ? arg[i] % w * h + arg[i] / w : arg[i]);
        }
        return [Tensor.FromFloats(shape, y, x.Type), Tensor.FromLongs(shape, idx)];
    }

    /// <summary>Windows that sit inside the input without padding, overlap or dilation (stride = kernel).</summary>
    private static bool IsTiling(SpatialGeometry g, int h, int w) =>
        g.PadBegin[0] == 0 && g.PadBegin[1] == 0 && g.Dilations[0] == 1 && g.Dilations[1] == 1
        && g.Strides[0] == g.Kernel[0] && g.Strides[1] == g.Kernel[1]
        && g.Output[0] * g.Kernel[0] <= h && g.Output[1] * g.Kernel[1] <= w;

    /// <summary>Elements above which tiled pooling splits its planes across cores.</summary>
    private const int ParallelElements = 1 << 16;

    /// <summary>Runs <paramref name="body"/>(p0, p1) over plane ranges: one per core for large inputs, else inline.</summary>
    private static void OverPlanes(int planes, int planeSize, Action<int, int> body)
    {
        int chunks = (long)planes * planeSize < ParallelElements ? 1 : Math.Min(planes, Environment.ProcessorCount);
        if (chunks == 1) { body(0, planes); return; }
        ForkJoin.For(chunks, c => body((int)((long)planes * c / chunks), (int)((long)planes * (c + 1) / chunks)));
    }

    /// <summary>
    /// Max over each tiled window, element by element (rows of a digits-sized plane are too short for SIMD calls to
    /// pay), with the common 2×2 window unrolled. Math.Max propagates NaN, as <see cref="ArgMaxes"/> lets a NaN win.
    /// </summary>
    private static void MaxTiled(float[] x, float[] y, int planes, int kh, int kw, int h, int w, int oh, int ow) =>
        OverPlanes(planes, h * w, (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                int o = p * oh * ow;
                for (int oy = 0; oy < oh; oy++)
                {
                    int r0 = p * h * w + oy * kh * w;
                    if (kh == 2 && kw == 2)
                        for (int ox = 0; ox < ow; ox++, o++)
                        {
                            int a = r0 + 2 * ox;
                            y[o] = Math.Max(Math.Max(x[a], x[a + 1]), Math.Max(x[a + w], x[a + w + 1]));
                        }
                    else
                        for (int ox = 0; ox < ow; ox++, o++)
                        {
                            int first = r0 + ox * kw;
                            float bv = x[first];
                            for (int ky = 0; ky < kh; ky++)
                                for (int kx = 0; kx < kw; kx++) bv = Math.Max(bv, x[first + ky * w + kx]);
                            y[o] = bv;
                        }
                }
            }
        });

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] grads)
    {
        var x = inputs[0]!;
        var g = Geometry(ctx, x.Shape);
        if (x.Rank != 4 || x.Floats is null)
        {
            var (_, args) = PoolWindows.Build(g).Max(x);
            var gy1 = TensorIndexing.AsDoubles(grads[0]!);
            var d = new double[x.Length];
            for (int i = 0; i < args.Length; i++) if (args[i] >= 0) d[args[i]] += gy1[i];
            return [TensorIndexing.FromDoublesAs(x.Type == DType.Float64 ? DType.Float64 : DType.Float32, x.Shape, d)];
        }
        int n = x.Shape[0], c = x.Shape[1], h = x.Shape[2], w = x.Shape[3];
        var gy = grads[0]!.Floats!;
        var dx = ctx.RentFloats(x.Length);
        if (IsTiling(g, h, w))
        {
            TiledBackward(x.Floats!, outputs[0].Floats!, gy, dx, n * c, g.Kernel[0], g.Kernel[1], h, w, g.Output[0], g.Output[1]);
            return [Tensor.FromFloats(x.Shape, dx)];
        }
        dx.AsSpan(0, x.Length).Clear();
        var arg = ArgMaxes(x.Floats!, n * c, g, h, w);
        int ohw = g.Output[0] * g.Output[1];
        for (int i = 0; i < arg.Length; i++)
            if (arg[i] >= 0) dx[(i / ohw) * h * w + arg[i]] += gy[i];
        return [Tensor.FromFloats(x.Shape, dx)];
    }

    /// <summary><paramref name="g"/> when <paramref name="bit"/> is 1, +0 when it is 0, without a branch.</summary>
    private static float Keep(float g, int bit) => BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(g) & -bit);

    /// <summary>
    /// Gradient of tiled pooling without index arrays: windows are disjoint, so every input element is written once:
    /// the window's first maximum (chosen exactly as <see cref="ArgMaxes"/> chooses it) receives the output
    /// gradient, every other element 0, and rows or columns beyond the last window 0. <paramref name="y"/> is the
    /// forward output, used to find 2×2 maxima by equality.
    /// </summary>
    private static void TiledBackward(float[] x, float[] y, float[] gy, float[] dx, int planes, int kh, int kw, int h, int w, int oh, int ow) =>
        OverPlanes(planes, h * w, (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                int pb = p * h * w, o = p * oh * ow;
                Array.Clear(dx, pb + oh * kh * w, (h - oh * kh) * w);
                for (int oy = 0; oy < oh; oy++)
                {
                    int r0 = pb + oy * kh * w;
                    if (ow * kw < w) for (int ky = 0; ky < kh; ky++) Array.Clear(dx, r0 + ky * w + ow * kw, w - ow * kw);
                    for (int ox = 0; ox < ow; ox++, o++)
                    {
                        int first = r0 + ox * kw;
                        float max = y[o], gv = gy[o];
                        if (kh == 2 && kw == 2 && !float.IsNaN(max))
                        {
                            // The forward's maximum is known, so the window's first maximum is the first element equal
                            // to it: compares instead of data-dependent branches. (A NaN window takes the rule below.)
                            int e0 = x[first] == max ? 1 : 0, e1 = x[first + 1] == max ? 1 : 0, e2 = x[first + w] == max ? 1 : 0;
                            dx[first] = Keep(gv, e0);
                            dx[first + 1] = Keep(gv, e1 & (e0 ^ 1));
                            dx[first + w] = Keep(gv, e2 & ((e0 | e1) ^ 1));
                            dx[first + w + 1] = Keep(gv, (e0 | e1 | e2) ^ 1);
                            continue;
                        }
                        int best = first;
                        float bv = x[first];
                        for (int ky = 0; ky < kh; ky++)
                            for (int kx = 0; kx < kw; kx++)
                            {
                                int at = first + ky * w + kx;
                                float v = x[at];
                                dx[at] = 0f;
                                if (v > bv || float.IsNaN(v)) { bv = v; best = at; }
                            }
                        dx[best] = gv;
                    }
                }
            }
        });

    private static Tensor[] ForwardND(OpContext ctx, Tensor x, SpatialGeometry g)
    {
        var pw = PoolWindows.Build(g);
        var (y, arg) = pw.Max(x);
        var shape = pw.OutShape(x.Shape);
        var result = TensorIndexing.FromDoublesAs(x.Type, shape, y);
        return ctx.Node.Outputs.Length > 1 ? [result, Tensor.FromLongs(shape, arg.Select(a => (long)a).ToArray())] : [result];
    }
}
