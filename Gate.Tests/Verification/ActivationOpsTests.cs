using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Verification;

/// <summary>The operators this area owns (BatchNormalization, Sigmoid, Tanh): ONNX conformance and gradients.</summary>
public class ActivationOpsTests
{
    public static TheoryData<string> Cases() => new(
        "test_batchnorm_epsilon", "test_batchnorm_example", "test_batchnorm_epsilon_training_mode", "test_batchnorm_example_training_mode",
        "test_sigmoid", "test_sigmoid_example", "test_tanh", "test_tanh_example");

    [Theory]
    [MemberData(nameof(Cases))]
    public void Onnx_conformance_case_passes(string name)
    {
        var dir = Path.Combine(TestPaths.OnnxNodeTests, name);
        var model = OnnxModelLoader.Load(Path.Combine(dir, "model.onnx"));
        var compiled = CompiledModel.Compile(model);
        foreach (var set in Directory.GetDirectories(dir, "test_data_set_*"))
        {
            var inputs = new Dictionary<string, Tensor>();
            for (int i = 0; i < model.Graph.Inputs.Count; i++)
                inputs[model.Graph.Inputs[i].Name] = TensorProtoCodec.ParseSerialized(File.ReadAllBytes(Path.Combine(set, $"input_{i}.pb")), $"input_{i}");
            var outs = compiled.Run(inputs);
            for (int k = 0; k < model.Graph.Outputs.Count; k++)
            {
                var expected = TensorProtoCodec.ParseSerialized(File.ReadAllBytes(Path.Combine(set, $"output_{k}.pb")), $"output_{k}");
                var actual = outs[model.Graph.Outputs[k].Name];
                Assert.Equal(expected.Shape, actual.Shape);
                Assert.Equal(expected.Type, actual.Type);
                for (int j = 0; j < expected.Length; j++)
                {
                    double e = expected.GetDouble(j), a = actual.GetDouble(j);
                    Assert.True(Math.Abs(a - e) <= 1e-7 + 1e-3 * Math.Abs(e), $"{name} output {k}[{j}]: expected {e}, got {a}");
                }
            }
        }
    }

    private static Node MakeNode(string op, int inputs, params (string, float)[] attrs) => new()
    {
        Index = 0, Name = "", OpType = op, Domain = "",
        Inputs = Enumerable.Range(0, inputs).Select(i => $"in{i}").ToArray(), Outputs = ["y"],
        Attributes = attrs.ToDictionary(a => a.Item1, a => new NodeAttribute { Name = a.Item1, Kind = AttributeKind.Float, F = a.Item2 }),
    };

    /// <summary>Central finite differences in float64 of Σ w·f(x) against the VJP with seed w, for every input.</summary>
    [Theory]
    [InlineData("Sigmoid")]
    [InlineData("Tanh")]
    [InlineData("BatchNormalization")]
    public void Vjp_matches_finite_differences(string opType)
    {
        var rng = new Random(opType.Length);
        var op = OperatorRegistry.Find("", opType)!;
        bool bn = opType == "BatchNormalization";
        var ctx = new OpContext(MakeNode(opType, bn ? 5 : 1, ("epsilon", 1e-3f)), 15);
        int[] xs = [2, 3, 2, 2];
        Tensor Rand(int[] shape, double lo, double hi) =>
            Tensor.FromDoubles(shape, Enumerable.Range(0, Tensor.ElementCount(shape)).Select(_ => lo + rng.NextDouble() * (hi - lo)).ToArray());
        var inputs = bn
            ? new[] { Rand(xs, -3, 3), Rand([3], -2, 2), Rand([3], -1, 1), Rand([3], -1, 1), Rand([3], 0.2, 2) }
            : new[] { Rand(xs, -4, 4) };
        var y = op.Forward(ctx, inputs);
        var w = Rand(y[0].Shape, -1, 1);
        var grads = op.Backward(ctx, inputs, y, [w]);
        double Objective(Tensor?[] args) { var o = op.Forward(ctx, args)[0].Doubles!; double s = 0; for (int i = 0; i < o.Length; i++) s += o[i] * w.Doubles![i]; return s; }
        for (int k = 0; k < inputs.Length; k++)
            for (int i = 0; i < inputs[k].Length; i++)
            {
                const double h = 1e-6;
                var plus = inputs.Select(t => (Tensor?)t).ToArray(); var minus = inputs.Select(t => (Tensor?)t).ToArray();
                var p = (double[])inputs[k].Doubles!.Clone(); p[i] += h; plus[k] = Tensor.FromDoubles(inputs[k].Shape, p);
                var m = (double[])inputs[k].Doubles!.Clone(); m[i] -= h; minus[k] = Tensor.FromDoubles(inputs[k].Shape, m);
                double fd = (Objective(plus) - Objective(minus)) / (2 * h);
                double an = grads[k]!.Doubles![i];
                Assert.True(Math.Abs(fd - an) <= 1e-5 * (1 + Math.Abs(fd)), $"{opType} input {k}[{i}]: finite difference {fd}, VJP {an}");
            }
    }

    [Fact]
    public void Float32_forward_matches_float64_forward()
    {
        foreach (var opType in new[] { "Sigmoid", "Tanh" })
        {
            var op = OperatorRegistry.Find("", opType)!;
            var ctx = new OpContext(MakeNode(opType, 1), 13);
            var xd = new double[] { -800, -20, -1.5, -1e-8, 0, 0.3, 2, 40, 800 };
            var yd = op.Forward(ctx, [Tensor.FromDoubles([xd.Length], xd)])[0].Doubles!;
            var yf = op.Forward(ctx, [Tensor.FromFloats([xd.Length], xd.Select(v => (float)v).ToArray())])[0].Floats!;
            for (int i = 0; i < xd.Length; i++)
            {
                Assert.False(double.IsNaN(yd[i]));
                Assert.Equal(yd[i], yf[i], 6);
                Assert.Equal(opType == "Sigmoid" ? 1 / (1 + Math.Exp(-xd[i])) : Math.Tanh(xd[i]), yd[i], 12);
            }
        }
    }
}
