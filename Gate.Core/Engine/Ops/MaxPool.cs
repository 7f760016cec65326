using Gate.Core.Tensors;

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
        bool columnMajor = ctx.Node.GetInt("storage_order", 0) != 0;
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

    /// <summary>
    /// Max over each tiled window: first the window's rows are folded together a whole input row at a time (SIMD),
    /// then each run of <paramref name="kw"/> columns. Math.Max propagates NaN, as <see cref="ArgMaxes"/> lets a NaN win.
    /// </summary>
    private static void MaxTiled(ReadOnlySpan<float> x, Span<float> y, int planes, int kh, int kw, int h, int w, int oh, int ow)
    {
        Span<float> rowMax = w <= 1024 ? stackalloc float[w] : new float[w];
        int o = 0;
        for (int p = 0; p < planes; p++)
        {
            var plane = x.Slice(p * h * w, h * w);
            for (int oy = 0; oy < oh; oy++)
            {
                plane.Slice(oy * kh * w, w).CopyTo(rowMax);
                for (int ky = 1; ky < kh; ky++) System.Numerics.Tensors.TensorPrimitives.Max(rowMax, plane.Slice((oy * kh + ky) * w, w), rowMax);
                for (int ox = 0; ox < ow; ox++)
                {
                    float bv = rowMax[ox * kw];
                    for (int kx = 1; kx < kw; kx++) bv = Math.Max(bv, rowMax[ox * kw + kx]);
                    y[o++] = bv;
                }
            }
        }
    }

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
        var arg = ArgMaxes(x.Floats!, n * c, g, h, w);
        var gy = grads[0]!.Floats!;
        var dx = new float[x.Length];
        int ohw = g.Output[0] * g.Output[1];
        for (int i = 0; i < arg.Length; i++)
            if (arg[i] >= 0) dx[(i / ohw) * h * w + arg[i]] += gy[i];
        return [Tensor.FromFloats(x.Shape, dx)];
    }

    private static Tensor[] ForwardND(OpContext ctx, Tensor x, SpatialGeometry g)
    {
        var pw = PoolWindows.Build(g);
        var (y, arg) = pw.Max(x);
        var shape = pw.OutShape(x.Shape);
        var result = TensorIndexing.FromDoublesAs(x.Type, shape, y);
        return ctx.Node.Outputs.Length > 1 ? [result, Tensor.FromLongs(shape, arg.Select(a => (long)a).ToArray())] : [result];
    }
}
