using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Model.Proto;
using Gate.Core.Runtime;
using Gate.Core.Runtime.OnnxRuntime;
using Gate.Core.Tensors;
using Gate.Core.Verification;
using Gate.Tests.Runtime;
using Gate.Tests.Support;
using Gate.Tests.Verification;
using Google.Protobuf;

namespace Gate.Tests.Engine;

/// <summary>
/// ConvTranspose against ONNX Runtime (the production runtime) on the attribute combinations exporters emit, with
/// output shapes worked out by hand from the ONNX formula; its bound rules against sampled points of a decoder. The
/// gradients are checked against finite differences in <see cref="GradientTests"/>.
/// </summary>
public class ConvTransposeTests
{
    public sealed record Case(string Name, int[] X, int[] W, int[] Expected, (string Name, object Value)[] Attrs);

    /// <summary>Expected output shapes: stride·(in−1) + output_padding + (k−1)·dilation + 1 − pads, unless SAME_* or
    /// output_shape fix it.</summary>
    private static readonly Case[] All =
    [
        new("defaults", [1, 2, 3, 3], [2, 3, 3, 3], [1, 3, 5, 5], []),
        new("stride-pads-output-padding", [1, 2, 3, 3], [2, 3, 3, 3], [1, 3, 6, 6],
            [("strides", new long[] { 2, 2 }), ("pads", new long[] { 1, 1, 1, 1 }), ("output_padding", new long[] { 1, 1 })]),
        new("groups-dilations-batch", [2, 4, 3, 4], [4, 2, 2, 3], [2, 4, 6, 8],
            [("group", 2), ("strides", new long[] { 2, 1 }), ("dilations", new long[] { 1, 2 })]),
        new("asymmetric-pads", [1, 1, 4, 3], [1, 2, 3, 2], [1, 2, 8, 7], // H: 2·3 + 3 − 0 − 1; W: 3·2 + 2 − 1 − 0
            [("strides", new long[] { 2, 3 }), ("pads", new long[] { 0, 1, 1, 0 })]),
        new("output-shape-larger", [1, 1, 3, 3], [1, 2, 3, 3], [1, 2, 8, 8],
            [("strides", new long[] { 2, 2 }), ("output_shape", new long[] { 8, 8 })]),
        new("one-d", [2, 2, 5], [2, 2, 3], [2, 2, 14], [("strides", new long[] { 3 }), ("pads", new long[] { 1, 0 })]),
        new("three-d", [1, 1, 2, 2, 2], [1, 2, 2, 2, 2], [1, 2, 4, 4, 4], [("strides", new long[] { 2, 2, 2 })]),
    ];

    public static TheoryData<string> Names => new(All.Select(c => c.Name));

    private static (byte[] Bytes, OnnxModel Model, string Output) Build(Case c, Random rng)
    {
        var b = new OnnxBuilder(c.X, opset: 17);
        float[] R(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var w = b.Init(R(Tensor.ElementCount(c.W)), c.W);
        var bias = b.Init(R(c.Expected[1]), c.Expected[1]);
        var y = b.Node("ConvTranspose", [b.InputName, w, bias], c.Attrs);
        var model = b.Build(y, c.Expected);
        return (b.Bytes(), model, y);
    }

    [Theory, MemberData(nameof(Names))]
    public void Matches_onnx_runtime_with_the_shape_of_the_onnx_formula(string name)
    {
        OrtTestSupport.RequireOrt();
        var c = All.Single(k => k.Name == name);
        var rng = new Random(name.Length * 31 + 7);
        var (_, model, y) = Build(c, rng);
        var x = Tensor.FromFloats(c.X, Enumerable.Range(0, Tensor.ElementCount(c.X)).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray());
        var inputs = new Dictionary<string, Tensor> { [model.Graph.Inputs[0].Name] = x };
        var mine = CompiledModel.Compile(model).Run(inputs)[y];
        using var ort = new OnnxRuntimeInference().Load(model, new RuntimeOptions(IntraOpThreads: 1));
        var theirs = ort.Run(inputs, [y])[y];
        Assert.Equal(c.Expected, mine.Shape);
        Assert.Equal(c.Expected, theirs.Shape);
        var a = mine.ToFloatArray(); var e = theirs.ToFloatArray();
        for (int i = 0; i < a.Length; i++)
            Assert.True(Math.Abs(a[i] - e[i]) <= 1e-5 + 1e-5 * Math.Abs(e[i]), $"{name}: element {i}: built-in {a[i]}, ONNX Runtime {e[i]}");
    }

    [Theory]
    [InlineData("SAME_UPPER")]
    [InlineData("SAME_LOWER")]
    public void Same_auto_pad_gives_input_times_stride_and_agrees_with_onnx_runtime_on_which_side_is_cropped(string autoPad)
    {
        OrtTestSupport.RequireOrt();
        var b = new OnnxBuilder([1, 1, 3, 3], opset: 17);
        var rng = new Random(3);
        var w = b.Init(Enumerable.Range(0, 1 * 2 * 3 * 3).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(), 1, 2, 3, 3);
        var output = "y";
        b.Node("ConvTranspose", [b.InputName, w], [output], "convT", OnnxBuilder.Ints("strides", 2, 2),
            new AttributeProto { Name = "auto_pad", Type = 3, S = ByteString.CopyFromUtf8(autoPad) });
        var model = b.Build(output, [1, 2, 6, 6]);
        var x = Tensor.FromFloats([1, 1, 3, 3], Enumerable.Range(0, 9).Select(i => (float)(i + 1)).ToArray());
        var inputs = new Dictionary<string, Tensor> { [b.InputName] = x };
        var mine = CompiledModel.Compile(model).Run(inputs)[output];
        using var ort = new OnnxRuntimeInference().Load(model, new RuntimeOptions(IntraOpThreads: 1));
        var theirs = ort.Run(inputs, [output])[output];
        Assert.Equal([1, 2, 6, 6], mine.Shape);
        // Cropped on the other side, every element would be another sum; here only rounding may differ.
        var a = mine.ToFloatArray(); var e = theirs.ToFloatArray();
        for (int i = 0; i < a.Length; i++)
            Assert.True(Math.Abs(a[i] - e[i]) <= 1e-5 + 1e-5 * Math.Abs(e[i]), $"{autoPad}: element {i}: built-in {a[i]}, ONNX Runtime {e[i]}");
    }

    /// <summary>A decoder as a prover meets one: Gemm → Reshape → ConvTranspose (stride 2, padded) → Relu → Gemm.</summary>
    private static OnnxModel Decoder(Random rng)
    {
        float[] R(int n, double s) => Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() * 2 - 1) * s)).ToArray();
        var b = new OnnxBuilder([1, 6], opset: 17);
        var h = b.Node("Reshape", [b.Dense(b.InputName, 6, 8, rng), b.InitLong([1, 2, 2, 2], 4)]);
        var up = b.Node("ConvTranspose", [h, b.Init(R(2 * 3 * 3 * 3, 0.6), 2, 3, 3, 3), b.Init(R(3, 0.2), 3)],
            ("strides", new long[] { 2, 2 }), ("pads", new long[] { 1, 1, 1, 1 }), ("output_padding", new long[] { 1, 1 }));
        var flat = b.Node("Reshape", [b.Node("Relu", [up]), b.InitLong([1, 3 * 4 * 4], 2)]);
        return b.Build(b.Dense(flat, 48, 3, rng), [1, 3]);
    }

    [Fact]
    public void Sampled_outputs_of_a_decoder_lie_within_its_ibp_and_crown_bounds()
    {
        var rng = new Random(77);
        for (int trial = 0; trial < 6; trial++)
        {
            var model = Decoder(rng);
            var net = new BoundNetwork(model);
            Assert.Null(net.Unsupported);
            var (lo, hi) = BoundSoundnessTests.RandomBox(rng, net.InputSize, trial % 2 == 0 ? 0.05 : 0.8);
            BoundSoundnessTests.AssertInside(model, net, lo, hi, rng, alphaSteps: trial % 3);
        }
    }
}
