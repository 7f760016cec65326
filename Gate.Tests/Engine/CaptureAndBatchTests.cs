using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Engine;

/// <summary>Activation capture and batched gradients on the digits MLP, checked against computations done here by hand.</summary>
public class CaptureAndBatchTests
{
    private static readonly OnnxModel Mlp = OnnxModelLoader.Load(TestPaths.FixtureModel("digits-mlp.onnx"));

    private static Tensor FirstImages(int n) => Npy.Read(TestPaths.FixtureData("digits_test_x.npy")).SliceBatch(0, n);

    [Fact]
    public void Captured_hidden_layer_equals_relu_of_first_gemm_computed_by_hand()
    {
        var engine = CompiledModel.Compile(Mlp);
        var gemm = Mlp.Graph.Nodes.First(n => n.OpType == "Gemm");
        var relu = Mlp.Graph.Nodes.First(n => n.OpType == "Relu" && n.Inputs[0] == gemm.Outputs[0]);
        var x = FirstImages(5);
        var pass = engine.Forward(new Dictionary<string, Tensor> { ["input"] = x }, capture: [relu.Outputs[0]]);

        // Only what was asked for comes back: the graph output and the one captured tensor.
        Assert.Equal(new[] { "logits", relu.Outputs[0] }.OrderBy(s => s), pass.Values.Keys.OrderBy(s => s));

        var w = Mlp.Graph.Initializers[gemm.Inputs[1]]; var b = Mlp.Graph.Initializers[gemm.Inputs[2]];
        bool transB = gemm.GetInt("transB", 0) != 0;
        int inF = 64, outF = transB ? w.Shape[0] : w.Shape[1];
        var h = pass[relu.Outputs[0]];
        Assert.Equal(new[] { 5, outF }, h.Shape);
        for (int s = 0; s < 5; s++)
            for (int j = 0; j < outF; j++)
            {
                double acc = b.Floats![j];
                for (int p = 0; p < inF; p++) acc += x.Floats![s * inF + p] * (double)w.Floats![transB ? j * inF + p : p * outF + j];
                Assert.Equal(Math.Max(0, acc), h.Floats![s * outF + j], 4);
            }
    }

    [Fact]
    public void Unrequested_intermediates_are_not_returned()
    {
        var engine = CompiledModel.Compile(Mlp);
        var pass = engine.Forward(new Dictionary<string, Tensor> { ["input"] = FirstImages(2) });
        Assert.Equal(["logits"], pass.Values.Keys);
        Assert.Throws<Gate.Core.GateInputException>(() => engine.Forward(new Dictionary<string, Tensor> { ["input"] = FirstImages(2) }, capture: ["no-such-tensor"]));
    }

    [Fact]
    public void Batched_input_gradients_equal_per_sample_gradients()
    {
        var engine = CompiledModel.Compile(Mlp);
        var x = FirstImages(6);
        var seed = Tensor.FromFloats([6, 10], Enumerable.Range(0, 60).Select(i => (float)Math.Sin(i)).ToArray());
        var pass = engine.Forward(new Dictionary<string, Tensor> { ["input"] = x }, recordForBackward: true);
        var batched = engine.Backward(pass, new Dictionary<string, Tensor> { ["logits"] = seed }, ["input"])["input"];
        Assert.Equal(x.Shape, batched.Shape);
        Assert.Contains(batched.Floats!, v => v != 0);
        for (int s = 0; s < 6; s++)
        {
            var one = engine.Forward(new Dictionary<string, Tensor> { ["input"] = x.SliceBatch(s, 1) }, recordForBackward: true);
            var g = engine.Backward(one, new Dictionary<string, Tensor> { ["logits"] = seed.SliceBatch(s, 1) }, ["input"])["input"];
            // Same math, different float32 summation order (the batched GEMM takes the blocked path).
            for (int i = 0; i < 64; i++)
                Assert.True(Math.Abs(g.Floats![i] - batched.Floats![s * 64 + i]) <= 1e-4 * (1 + Math.Abs(g.Floats[i])), $"sample {s}, pixel {i}: {g.Floats[i]} vs {batched.Floats[s * 64 + i]}");
        }
    }

    [Fact]
    public void Weight_gradients_match_finite_differences_on_the_cnn()
    {
        // End to end through Conv, MaxPool, Relu, Flatten and Gemm: d(logit_3 summed over the batch)/d(W of the first conv).
        var cnn = OnnxModelLoader.Load(TestPaths.FixtureModel("digits-cnn.onnx"));
        var engine = CompiledModel.Compile(cnn);
        var conv = cnn.Graph.Nodes.First(n => n.OpType == "Conv");
        var wName = conv.Inputs[1];
        var w = cnn.Graph.Initializers[wName];
        var x = FirstImages(4);
        var seed = Tensor.FromFloats([4, 10], Enumerable.Range(0, 40).Select(i => i % 10 == 3 ? 1f : 0f).ToArray());
        var pass = engine.Forward(new Dictionary<string, Tensor> { ["input"] = x }, recordForBackward: true);
        var gw = engine.Backward(pass, new Dictionary<string, Tensor> { ["logits"] = seed }, [wName])[wName];
        // Finite differences in float64: every initializer and the input widened, so the loss is smooth to ~1e-12
        // and only a ReLU/max-pool switch within the step (±1e-5) could disturb it.
        var g = cnn.Graph;
        var wide = new Graph
        {
            Name = g.Name, Outputs = g.Outputs, Nodes = g.Nodes, ValueInfos = g.ValueInfos,
            Inputs = g.Inputs.Select(v => v with { ElementType = DType.Float64 }).ToList(),
            Initializers = g.Initializers.ToDictionary(kv => kv.Key, kv => Tensor.FromDoubles(kv.Value.Shape, kv.Value.ToDoubleArray())),
        };
        var engine64 = CompiledModel.Compile(new OnnxModel
        {
            SourcePath = cnn.SourcePath, Sha256 = cnn.Sha256, SizeBytes = cnn.SizeBytes, IrVersion = cnn.IrVersion, Opsets = cnn.Opsets,
            ProducerName = cnn.ProducerName, ProducerVersion = cnn.ProducerVersion, Metadata = cnn.Metadata, Bytes = cnn.Bytes, Graph = wide,
        });
        var x64 = Tensor.FromDoubles(x.Shape, x.ToDoubleArray());
        double Loss(double[] wv)
        {
            var y = engine64.Run(new Dictionary<string, Tensor> { ["input"] = x64, [wName] = Tensor.FromDoubles(w.Shape, wv) })["logits"];
            double s = 0; for (int i = 0; i < 4; i++) s += y.Doubles![i * 10 + 3]; return s;
        }
        const double h = 1e-5;
        for (int i = 0; i < w.Length; i++)
        {
            var plus = w.ToDoubleArray(); plus[i] += h;
            var minus = w.ToDoubleArray(); minus[i] -= h;
            double numeric = (Loss(plus) - Loss(minus)) / (2 * h);
            Assert.True(Math.Abs(numeric - gw.Floats![i]) <= 1e-3 * (1 + Math.Abs(numeric)), $"dL/dW[{i}]: analytic {gw.Floats[i]}, numeric {numeric}");
        }
    }
}
