using Gate.Core;
using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Tensors;

namespace Gate.Tests.Engine;

/// <summary>Operators met in third-party exports: Range and ReduceProd run (ConvTranspose: ConvTransposeTests); ORT contrib ops without a kernel are refused with the reason.</summary>
public class ExportedModelOpsTests
{
    [Fact]
    public void Range_counts_from_start_to_limit_by_delta_in_the_inputs_type()
    {
        var model = SingleNodeModel.Create("Range", [], [("s", DType.Int64), ("l", DType.Int64), ("d", DType.Int64)], 1);
        var y = CompiledModel.Compile(model).Run(new Dictionary<string, Tensor> { ["s"] = Tensor.ScalarLong(10), ["l"] = Tensor.ScalarLong(1), ["d"] = Tensor.ScalarLong(-3) })["y0"];
        Assert.Equal(new long[] { 10, 7, 4 }, y.Longs);
        var f = SingleNodeModel.Create("Range", [], [("s", DType.Float32), ("l", DType.Float32), ("d", DType.Float32)], 1);
        var yf = CompiledModel.Compile(f).Run(new Dictionary<string, Tensor> { ["s"] = Tensor.Scalar(0), ["l"] = Tensor.Scalar(1), ["d"] = Tensor.Scalar(0.25f) })["y0"];
        Assert.Equal(new float[] { 0, 0.25f, 0.5f, 0.75f }, yf.Floats);
    }

    [Fact]
    public void ReduceProd_forward_and_gradient_match_finite_differences_also_at_zero()
    {
        var model = SingleNodeModel.Create("ReduceProd", [SingleNodeModel.Ints("axes", 1), SingleNodeModel.Int("keepdims", 0)], [("x", DType.Float64)], 1, opset: 13);
        var engine = CompiledModel.Compile(model);
        var x = Tensor.FromDoubles([2, 3], [2, -3, 0.5, 4, 0, 5]);
        using var pass = engine.Forward(new Dictionary<string, Tensor> { ["x"] = x }, recordForBackward: true);
        Assert.Equal(new double[] { -3, 0 }, pass.Values["y0"].Doubles);
        var seed = Tensor.FromDoubles([2], [1, 2]);
        var g = engine.Backward(pass, new Dictionary<string, Tensor> { ["y0"] = seed }, ["x"])["x"];
        const double h = 1e-6;
        for (int i = 0; i < 6; i++)
        {
            double F(double delta)
            {
                var xs = x.Doubles!.ToArray(); xs[i] += delta;
                var y = engine.Run(new Dictionary<string, Tensor> { ["x"] = Tensor.FromDoubles([2, 3], xs) })["y0"].Doubles!;
                return y[0] * 1 + y[1] * 2;
            }
            Assert.Equal((F(h) - F(-h)) / (2 * h), g.GetDouble(i), 6);
        }
    }

    [Theory]
    [InlineData("com.microsoft", "SkipLayerNormalization", "com.microsoft:SkipLayerNormalization (an ONNX Runtime contrib op")]
    public void Unimplemented_operators_are_refused_with_the_reason(string domain, string opType, string fragment)
    {
        var node = new Node { Index = 0, Name = "", OpType = opType, Domain = domain, Inputs = ["x"], Outputs = ["y"], Attributes = new Dictionary<string, NodeAttribute>() };
        var model = SingleNodeModel.Create("Relu", [], [("x", DType.Float32)], 1);
        var withNode = new OnnxModel
        {
            SourcePath = "m.onnx", Sha256 = "", SizeBytes = 0, IrVersion = 9, Opsets = model.Opsets, ProducerName = "test", ProducerVersion = "",
            Metadata = model.Metadata, Bytes = [],
            Graph = new Graph { Name = "g", Inputs = model.Graph.Inputs, Outputs = [new ValueInfo("y", DType.Float32, null)], Initializers = model.Graph.Initializers, Nodes = [node], ValueInfos = model.Graph.ValueInfos },
        };
        var e = Assert.ThrowsAny<GateInputException>(() => CompiledModel.Compile(withNode));
        Assert.Contains(fragment, e.Message);
    }
}
