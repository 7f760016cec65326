using System.Text.Json.Nodes;
using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Model.Proto;
using Gate.Core.Tensors;
using Gate.Tests.Support;

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

    /// <summary>
    /// <c>gate check</c> (process sandbox) on a model whose input is quantized to uint8 (QDQ) before a dense layer:
    /// the decision's white-box record, and the adversarial check's own details, say that gradients cross the
    /// quantizer by a straight-through estimator.
    /// </summary>
    [Fact]
    public void A_quantized_models_decision_says_its_gradients_are_straight_through()
    {
        Gate.Tests.Runtime.OrtTestSupport.RequireOrt();
        var dir = TestPaths.TempDir("gate-qdq");
        var rng = new Random(11);
        var b = new OnnxBuilder([1, 16]);
        var zero = new TensorProto { Name = "zp", DataType = 2 }; // uint8 zero point
        zero.Int32Data.Add(0);
        b.Graph.Initializer.Add(zero);
        var scale = b.Init([1f / 255]);
        var dq = b.Node("DequantizeLinear", [b.Node("QuantizeLinear", [b.InputName, scale, "zp"]), scale, "zp"]);
        b.Build(b.Dense(b.Node("Tanh", [b.Dense(dq, 16, 32, rng)]), 32, 4, rng), [1, 4]);
        var model = b.Save(Path.Combine(dir, "qdq.onnx"));
        Npy.Write(Path.Combine(dir, "x.npy"), Tensor.FromFloats([4, 16], Enumerable.Range(0, 64).Select(_ => rng.NextSingle()).ToArray()));
        Npy.Write(Path.Combine(dir, "y.npy"), Tensor.FromLongs([4], [0, 1, 2, 3]));
        File.WriteAllText(Path.Combine(dir, "policy.yaml"), """
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata: { name: qdq, owner: tests }
            spec:
              model:
                format: onnx
                inputs:
                  x: { shape: [-1, 16], range: [0.0, 1.0] }
              runtime: onnxruntime
              sandbox:
                isolation: process
                limits: { memory: 2Gi, cpus: 1, timeout: 5m }
              seed: 1
              datasets:
                d: { inputs: x.npy, labels: y.npy }
              checks:
                - id: pgd
                  type: adversarial
                  dataset: d
                  samples: 4
                  threat: { norm: linf, epsilon: 0.05 }
                  search:
                    - { method: pgd, steps: 3, restarts: 1 }
                  require: { robustAccuracy: { min: 0.0 } }
            """);
        var r = GateCli.Run(["check", "-m", model, "-p", Path.Combine(dir, "policy.yaml"), "--sandbox", "process", "-o", Path.Combine(dir, "out")], TimeSpan.FromMinutes(5));
        Assert.True(r.ExitCode is 0 or 1, $"gate check exited {r.ExitCode}\n{r.All}");
        var decision = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "out", "decision.json")))!;
        var whiteBox = decision["runtime"]?["whiteBox"] ?? throw new Xunit.Sdk.XunitException($"no runtime.whiteBox record:\n{decision}");
        Assert.StartsWith("gradients cross 1 QuantizeLinear node(s) by a straight-through estimator", (string?)whiteBox["gradient"]);
        var check = decision["checks"]!.AsArray().Single(c => (string?)c!["id"] == "pgd")!;
        Assert.Equal((string?)whiteBox["gradient"], (string?)check["details"]?["gradient"]);
    }
}
