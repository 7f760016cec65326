using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Tensors;

namespace Gate.Tests.Engine;

/// <summary>QuantizeLinear/DequantizeLinear (QDQ): forward by hand-computed values; gradient = clipped straight-through estimator.</summary>
public class QuantizationTests
{
    private static Tensor Run(string op, Tensor[] inputs, params NodeAttribute[] attrs)
    {
        var names = new[] { "x", "scale", "zp" }.Take(inputs.Length).ToArray();
        var model = SingleNodeModel.Create(op, attrs, names.Select((n, i) => (n, inputs[i].Type)).ToList(), 1, opset: 21);
        return CompiledModel.Compile(model).Run(names.Select((n, i) => (n, inputs[i])).ToDictionary(p => p.n, p => p.Item2))["y0"];
    }

    [Fact]
    public void QuantizeLinear_rounds_half_to_even_adds_the_zero_point_and_saturates()
    {
        var y = Run("QuantizeLinear", [Tensor.FromFloats([5], [-1, 0.25f, 0.75f, 100, -100]), Tensor.Scalar(0.5f), Tensor.FromLongs([], [128], DType.UInt8)]);
        Assert.Equal(DType.UInt8, y.Type);
        Assert.Equal(new long[] { 126, 128, 130, 255, 0 }, y.Longs);
    }

    [Fact]
    public void QuantizeLinear_per_axis_uses_one_scale_and_zero_point_per_channel()
    {
        var x = Tensor.FromFloats([1, 2, 2], [1, 2, 1, 2]);
        var y = Run("QuantizeLinear", [x, Tensor.FromFloats([2], [1, 0.5f]), Tensor.FromLongs([2], [0, -1], DType.Int8)], SingleNodeModel.Int("axis", 1));
        Assert.Equal(DType.Int8, y.Type);
        Assert.Equal(new long[] { 1, 2, 1, 3 }, y.Longs);
    }

    [Fact]
    public void DequantizeLinear_maps_back_in_the_scale_type()
    {
        var y = Run("DequantizeLinear", [Tensor.FromLongs([3], [-128, 0, 127], DType.Int8), Tensor.Scalar(0.5f), Tensor.FromLongs([], [-1], DType.Int8)]);
        Assert.Equal(DType.Float32, y.Type);
        Assert.Equal(new float[] { -63.5f, 0.5f, 64 }, y.Floats);
    }

    [Fact]
    public void Gradient_through_quantize_then_dequantize_is_the_clipped_straight_through_estimator()
    {
        // x → QuantizeLinear(scale 0.5, int8) → DequantizeLinear → y. Rounding is treated as the identity, so dy/dx = 1
        // while x/scale stays inside int8's range (±127.5 after rounding), 0 where the quantizer saturates.
        var qNode = new Node { Index = 0, Name = "q", OpType = "QuantizeLinear", Domain = "", Inputs = ["x", "s", "z"], Outputs = ["xq"], Attributes = new Dictionary<string, NodeAttribute>() };
        var dqNode = new Node { Index = 1, Name = "dq", OpType = "DequantizeLinear", Domain = "", Inputs = ["xq", "s", "z"], Outputs = ["y"], Attributes = new Dictionary<string, NodeAttribute>() };
        var model = new OnnxModel
        {
            SourcePath = "qdq.onnx", Sha256 = "", SizeBytes = 0, IrVersion = 9,
            Opsets = new Dictionary<string, long> { [""] = 21 }, ProducerName = "test", ProducerVersion = "",
            Metadata = new Dictionary<string, string>(), Bytes = [],
            Graph = new Graph
            {
                Name = "g", Inputs = [new ValueInfo("x", DType.Float32, null)], Outputs = [new ValueInfo("y", DType.Float32, null)],
                Initializers = new Dictionary<string, Tensor> { ["s"] = Tensor.Scalar(0.5f), ["z"] = Tensor.FromLongs([], [0], DType.Int8) },
                Nodes = [qNode, dqNode], ValueInfos = new Dictionary<string, ValueInfo>(),
            },
        };
        var engine = CompiledModel.Compile(model);
        var x = Tensor.FromFloats([4], [0.3f, -10, 63, -70]);
        using var pass = engine.Forward(new Dictionary<string, Tensor> { ["x"] = x }, recordForBackward: true);
        Assert.Equal(new float[] { 0.5f, -10, 63, -64 }, pass.Values["y"].Floats); // -70 saturates at -128·0.5
        var g = engine.Backward(pass, new Dictionary<string, Tensor> { ["y"] = Tensor.FromFloats([4], [1, 2, 3, 4]) }, ["x"])["x"];
        Assert.Equal(new float[] { 1, 2, 3, 0 }, g.Floats);
        // Evidence of a gradient check on this model says how its gradients were obtained.
        Assert.Contains("straight-through estimator", Gate.Core.Engine.Ops.QuantizeLinearOp.StraightThroughNote(model));
        Assert.Null(Gate.Core.Engine.Ops.QuantizeLinearOp.StraightThroughNote(OnnxModelLoader.Load(Gate.Tests.Support.TestPaths.FixtureModel("digits-cnn.onnx"))));
    }
}
