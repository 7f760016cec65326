using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Tensors;
using static Gate.Tests.Engine.SingleNodeModel;

namespace Gate.Tests.Engine;

/// <summary>
/// The float32 fast paths (im2col Conv, blocked-GEMM Gemm/MatMul) have their own forward and backward code; here
/// they must agree with the float64 paths, whose VJPs <see cref="GradientTests"/> checks against finite differences.
/// </summary>
public class Float32PathTests
{
    private static Tensor F32(Tensor t) => Tensor.FromFloats(t.Shape, t.ToFloatArray());

    private static void Agree(string op, NodeAttribute[] attrs, params (string Name, Tensor Value)[] inputs) =>
        Agree(op, attrs, inputs.Select(i => i.Name).ToArray(), inputs);

    /// <summary>Output and the gradients with respect to <paramref name="wrt"/> agree between float64 and float32.</summary>
    private static void Agree(string op, NodeAttribute[] attrs, string[] wrt, params (string Name, Tensor Value)[] inputs)
    {
        var results = new List<(IReadOnlyDictionary<string, Tensor> Y, IReadOnlyDictionary<string, Tensor> G)>();
        foreach (bool wide in new[] { true, false })
        {
            var ins = inputs.ToDictionary(i => i.Name, i => wide ? i.Value : F32(i.Value));
            var engine = CompiledModel.Compile(SingleNodeModel.Create(op, attrs, ins.Select(kv => (kv.Key, kv.Value.Type)).ToList(), 1));
            var pass = engine.Forward(ins, recordForBackward: true);
            var y = pass["y0"];
            var rr = new Random(7);
            var seedValues = Enumerable.Range(0, y.Length).Select(_ => rr.NextDouble() - 0.5).ToArray();
            var seed = wide ? Tensor.FromDoubles(y.Shape, seedValues) : Tensor.FromFloats(y.Shape, seedValues.Select(v => (float)v).ToArray());
            results.Add((pass.Values, engine.Backward(pass, new Dictionary<string, Tensor> { ["y0"] = seed }, wrt)));
        }
        void Same(Tensor d, Tensor f, string what)
        {
            Assert.Equal(d.Shape, f.Shape);
            Assert.Equal(DType.Float32, f.Type);
            for (int i = 0; i < d.Length; i++)
                Assert.True(Math.Abs(d.GetDouble(i) - f.GetDouble(i)) <= 1e-4 * (1 + Math.Abs(d.GetDouble(i))), $"{op} {what}[{i}]: float64 {d.GetDouble(i)}, float32 {f.GetDouble(i)}");
        }
        Same(results[0].Y["y0"], results[1].Y["y0"], "output");
        foreach (var name in wrt) Same(results[0].G[name], results[1].G[name], "d/d" + name);
    }

    private static Tensor Rand(int seed, params int[] shape)
    {
        var r = new Random(seed);
        return Tensor.FromDoubles(shape, Enumerable.Range(0, Tensor.ElementCount(shape)).Select(_ => r.NextDouble() * 2 - 1).ToArray());
    }

    [Theory]
    [InlineData(0, 0)] [InlineData(0, 1)] [InlineData(1, 0)] [InlineData(1, 1)]
    public void Gemm_float32_matches_float64(int ta, int tb) =>
        Agree("Gemm", [Int("transA", ta), Int("transB", tb), Float("alpha", 0.5f), Float("beta", 2f)],
            ("a", Rand(1, ta == 1 ? [7, 9] : [9, 7])), ("b", Rand(2, tb == 1 ? [11, 7] : [7, 11])), ("c", Rand(3, 11)));

    [Fact]
    public void Gemm_float32_matches_float64_for_a_single_row() =>
        Agree("Gemm", [Int("transB", 1)], ("a", Rand(4, 1, 20)), ("b", Rand(5, 6, 20)), ("c", Rand(6, 6)));

    [Fact]
    public void MatMul_float32_matches_float64_with_broadcast_batches() =>
        Agree("MatMul", [], ("a", Rand(7, 2, 1, 9, 5)), ("b", Rand(8, 3, 5, 18)));

    [Theory]
    [InlineData(1, 1, 0)]
    [InlineData(2, 2, 1)]
    [InlineData(1, 2, 1)]
    public void Conv2d_float32_im2col_matches_float64(int group, int stride, int pad) =>
        Agree("Conv", [Int("group", group), Ints("strides", stride, stride), Ints("pads", pad, pad, pad, 0), Ints("dilations", 1, 2)],
            ("x", Rand(9, 3, 2 * group, 7, 8)), ("w", Rand(10, 3 * group, 2, 3, 2)), ("bias", Rand(11, 3 * group)));

    // The direct kernels (Gate.Core/Engine/DirectConv.cs) take over when output channels fill whole vectors or an
    // output row is exactly one vector at stride 1; the cases below are sized from the machine's vector width so
    // that each variant, its remainders (pixels not a multiple of the block, a one-vector channel tail) and
    // asymmetric padding run here, forward and backward (the transposed convolution for dX is direct too).
    public static TheoryData<string, int, int, int, int, int, int, int, int, int> DirectConvCases()
    {
        int vl = System.Numerics.Vector<float>.Count;
        return new()
        {
            // name, C, H, W, M, K, stride, dilation, padBegin, padEnd
            { "channels: one vector, odd pixel count", 3, 5, 7, vl, 3, 1, 1, 1, 0 },
            { "channels: two vectors", 2 * vl, 4, 4, 2 * vl, 3, 1, 1, 1, 1 },
            { "channels: two vectors + one", 5, 6, 5, 3 * vl, 2, 2, 1, 0, 1 },
            { "channels: dilated", vl, 7, 7, vl, 3, 1, 2, 2, 1 },
            { "rows: one vector wide, stride 1", 2, 9, vl, 3, 3, 1, 1, 1, 1 },
            { "rows: single-channel input and its gradient", 1, 10, vl, 2, 3, 1, 1, 1, 1 },
            { "rows: valid padding, channel-vectorised input gradient", vl, 9, vl + 2, vl, 3, 1, 1, 0, 0 },
        };
    }

    [Theory]
    [MemberData(nameof(DirectConvCases))]
    public void Conv2d_float32_direct_kernels_match_float64(string name, int c, int h, int w, int m, int k, int stride, int dilation, int padBegin, int padEnd)
    {
        _ = name;
        NodeAttribute[] attrs = [Ints("strides", stride, stride), Ints("dilations", dilation, dilation), Ints("pads", padBegin, padBegin, padEnd, padEnd)];
        var x = Rand(20 + c, 3, c, h, w); var wt = Rand(30 + m, m, c, k, k); var b = Rand(40, m);
        Agree("Conv", attrs, ("x", x), ("w", wt), ("bias", b));
        // Only dX requested: the kernels skip dW and dB, and dX must not change.
        Agree("Conv", attrs, ["x"], ("x", x), ("w", wt), ("bias", b));
    }

    // Weight matrices of at least ConvOp.LargeWeightFloats floats take the batched im2col + GEMM path in both passes
    // (several samples' columns in one GEMM where planes are small; Wᵀ cached for dX). Three samples, so the two
    // fork-join chunks hold one and two samples.
    public static TheoryData<string, int, int, int, int, int, int, int, int, int> LargeConvCases() => new()
    {
        // name, C, H, W, M, K, stride, dilation, padBegin, padEnd
        { "large: 4×4 plane, samples side by side", 64, 4, 4, 256, 3, 1, 1, 1, 1 },
        { "large: stride 2", 64, 7, 7, 256, 3, 2, 1, 1, 1 },
        { "large: 1×1 projection at the threshold", 512, 3, 3, 256, 1, 2, 1, 0, 0 },
        { "large: dilated, asymmetric padding, one sample per GEMM", 48, 18, 17, 384, 3, 1, 2, 2, 1 },
    };

    [Theory]
    [MemberData(nameof(LargeConvCases))]
    public void Conv2d_float32_large_weight_path_matches_float64(string name, int c, int h, int w, int m, int k, int stride, int dilation, int padBegin, int padEnd)
    {
        Assert.True((long)m * c * k * k >= Gate.Core.Engine.Ops.ConvOp.LargeWeightFloats, $"{name}: not on the large-weight path");
        Conv2d_float32_direct_kernels_match_float64(name, c, h, w, m, k, stride, dilation, padBegin, padEnd);
    }

    // With ≥ 32 output channels and ≥ 64 taps, 512-bit machines run the packed GEMM in both passes (W packed for
    // Y = W·col, Wᵀ packed for dcol = Wᵀ·dY). Sizes off its blocks; batch 1 splits the GEMM itself across the cores (by
    // columns on large planes, by row tiles on small ones), larger batches split samples.
    public static TheoryData<string, int, int, int, int, int, int, int, int, int, int> PackedConvCases() => new()
    {
        // name, N, C, H, W, M, K, stride, dilation, padBegin, padEnd
        { "packed: 64 channels at 18×18, one sample per GEMM, bias in the kernel", 3, 64, 18, 18, 64, 3, 1, 1, 1, 1 },
        { "packed: odd channels, stride 2, 7×7 planes side by side", 3, 61, 13, 13, 67, 3, 2, 1, 1, 1 },
        { "packed: batch 1, columns split across the cores", 1, 53, 29, 29, 70, 3, 1, 1, 1, 1 },
        { "packed: batch 1, 4×4 plane, row tiles split across the cores", 1, 64, 4, 4, 256, 3, 1, 1, 1, 1 },
        { "packed: ResNet's 64-channel 32×32 layer, batch 1", 1, 64, 32, 32, 64, 3, 1, 1, 1, 1 },
        { "packed: a 7×7 stride-2 stem, 3 input channels", 2, 3, 23, 23, 32, 7, 2, 1, 3, 3 },
        { "packed: 1×1 stride-2 projection", 3, 64, 9, 9, 40, 1, 2, 1, 0, 0 },
    };

    [Theory]
    [MemberData(nameof(PackedConvCases))]
    public void Conv2d_float32_packed_gemm_path_matches_float64(string name, int n, int c, int h, int w, int m, int k, int stride, int dilation, int padBegin, int padEnd)
    {
        if (!PackedGemm.IsSupported) Assert.Skip("the packed GEMM needs 512-bit vectors");
        Assert.True(Gate.Core.Engine.Ops.ConvOp.TakesPackedGemm(1, m, c * k * k), $"{name}: not on the packed path");
        NodeAttribute[] attrs = [Ints("strides", stride, stride), Ints("dilations", dilation, dilation), Ints("pads", padBegin, padBegin, padEnd, padEnd)];
        var x = Rand(70 + c, n, c, h, w); var wt = Rand(80 + m, m, c, k, k); var b = Rand(90, m);
        Agree("Conv", attrs, ("x", x), ("w", wt), ("bias", b));
        Agree("Conv", attrs, ["x"], ("x", x), ("w", wt), ("bias", b));
    }

    [Fact]
    public void Packed_weights_cached_for_one_shape_are_not_reused_under_another()
    {
        if (!PackedGemm.IsSupported) Assert.Skip("the packed GEMM needs 512-bit vectors");
        // One float array as W [64, 64, 3, 3] and then as W [128, 32, 3, 3]: the packed-weight cache is keyed by the
        // array, so the second convolution must not read the first one's packing.
        NodeAttribute[] attrs = [Ints("pads", 1, 1, 1, 1)];
        var shared = Rand(95, 64 * 64 * 9).ToFloatArray();
        float[] Run(int m, int c, out Tensor x64, out Tensor w64)
        {
            var x = Rand(96 + c, 2, c, 9, 9);
            var w = Tensor.FromFloats([m, c, 3, 3], shared);
            (x64, w64) = (x, Tensor.FromDoubles([m, c, 3, 3], shared.Select(v => (double)v).ToArray()));
            var engine = CompiledModel.Compile(SingleNodeModel.Create("Conv", attrs, [("x", DType.Float32), ("w", DType.Float32)], 1));
            return engine.Forward(new Dictionary<string, Tensor> { ["x"] = F32(x), ["w"] = w })["y0"].ToFloatArray();
        }
        Run(64, 64, out _, out _);
        var y = Run(128, 32, out var x64, out var w64);
        var reference = CompiledModel.Compile(SingleNodeModel.Create("Conv", attrs, [("x", DType.Float64), ("w", DType.Float64)], 1));
        var expected = reference.Forward(new Dictionary<string, Tensor> { ["x"] = x64, ["w"] = w64 })["y0"];
        for (int i = 0; i < y.Length; i++)
            Assert.True(Math.Abs(expected.GetDouble(i) - y[i]) <= 1e-4 * (1 + Math.Abs(expected.GetDouble(i))), $"y[{i}]: float64 {expected.GetDouble(i)}, float32 {y[i]}");
    }

    [Fact]
    public void Residual_add_float32_gradient_matches_float64()
    {
        Agree("Add", [], ("a", Rand(61, 2, 5, 7)), ("b", Rand(62, 2, 5, 7)));
        Agree("Sub", [], ("a", Rand(63, 2, 5, 7)), ("b", Rand(64, 2, 5, 7)));
        Agree("Sub", [], ["b"], ("a", Rand(63, 2, 5, 7)), ("b", Rand(64, 2, 5, 7)));
    }

    [Fact]
    public void Relu_float32_gradient_matches_float64() =>
        Agree("Relu", [], ("x", Rand(60, 3, 7, 5)));   // 105 elements: whole vectors and a scalar tail

    [Theory]
    [InlineData(2, 9, 8)]   // 2×2 tiles (the unrolled path) with a leftover input row
    [InlineData(3, 7, 11)]  // 3×3 tiles with leftover rows and columns
    public void MaxPool_tiled_float32_matches_float64(int k, int h, int w) =>
        Agree("MaxPool", [Ints("kernel_shape", k, k), Ints("strides", k, k)], ("x", Rand(50 + k, 3, 4, h, w)));

    [Fact]
    public void MaxPool_tiled_gradient_goes_to_the_first_maximum_and_to_the_last_NaN()
    {
        // One plane, three 2×2 windows: a tie (all zero, as after a ReLU), a tie between the 2nd and 4th element,
        // and a window with two NaNs (the forward's arg-max rule lets the last NaN win).
        float nan = float.NaN;
        var x = Tensor.FromFloats([1, 1, 2, 6], [0, 0, 1, 5, nan, 2,
                                                 0, 0, 3, 5, 1, nan]);
        var engine = CompiledModel.Compile(SingleNodeModel.Create("MaxPool", [Ints("kernel_shape", 2, 2), Ints("strides", 2, 2)], [("x", DType.Float32)], 1));
        using var pass = engine.Forward(new Dictionary<string, Tensor> { ["x"] = x }, recordForBackward: true);
        var g = engine.Backward(pass, new Dictionary<string, Tensor> { ["y0"] = Tensor.FromFloats([1, 1, 1, 3], [10, 20, 30]) }, ["x"])["x"];
        Assert.Equal(new float[] { 10, 0, 0, 20, 0, 0,
                                   0, 0, 0, 0, 0, 30 }, g.Floats!);
    }
}
