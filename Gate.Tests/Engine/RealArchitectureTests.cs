using System.Text.Json.Nodes;
using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Runtime;
using Gate.Core.Runtime.OnnxRuntime;
using Gate.Core.Tensors;
using Gate.Tests.Runtime;
using Gate.Tests.Support;

namespace Gate.Tests.Engine;

/// <summary>
/// Real architectures trained by scripts/fixtures/make_real_arch_fixtures.py (examples/real-arch): a ResNet-8 on
/// 32×32 RGB shapes and a 2-layer nn.TransformerEncoder text classifier exported by torch at opset 14 (batched
/// MatMul, Softmax, Gather on embeddings, GELU as Erf, LayerNorm as ReduceMean/Pow/Sqrt). The engine must reproduce
/// the clean accuracy torch measured (MANIFEST.json), agree with ONNX Runtime, and differentiate the attention
/// stack correctly (finite differences).
/// </summary>
public class RealArchitectureTests
{
    private static string Dir => Path.Combine(TestPaths.RepoRoot, "examples", "real-arch");
    private static JsonNode Manifest => JsonNode.Parse(File.ReadAllText(Path.Combine(Dir, "MANIFEST.json")))!;

    private static readonly float[] Mean = [0.485f, 0.456f, 0.406f], Std = [0.229f, 0.224f, 0.225f];

    /// <summary>The test images as the ResNet expects them: (pixel - mean)/std per channel.</summary>
    private static Tensor NormalisedShapes()
    {
        var x = Npy.Read(Path.Combine(Dir, "shapes_test_x.npy"));
        var f = x.Floats!.ToArray();
        int plane = 32 * 32;
        for (int i = 0; i < f.Length; i++) { int c = i / plane % 3; f[i] = (f[i] - Mean[c]) / Std[c]; }
        return Tensor.FromFloats(x.Shape, f);
    }

    private static double Accuracy(Tensor logits, Tensor labels)
    {
        int n = logits.Shape[0], k = logits.Shape[1], correct = 0;
        for (int i = 0; i < n; i++)
            if (Enumerable.Range(0, k).MaxBy(j => logits.Floats![i * k + j]) == labels.Longs![i]) correct++;
        return (double)correct / n;
    }

    public static TheoryData<string, string, string> Models() => new()
    {
        { "resnet8-shapes.onnx", "shapes_test_x.npy", "shapes_test_y.npy" },
        { "transformer-tokens.onnx", "tokens_test_x.npy", "tokens_test_y.npy" },
    };

    private static Tensor InputFor(string x) => x.StartsWith("shapes") ? NormalisedShapes() : Npy.Read(Path.Combine(Dir, x));

    [Theory]
    [MemberData(nameof(Models))]
    public void Builtin_engine_reproduces_the_clean_accuracy_torch_measured(string model, string x, string y)
    {
        var m = OnnxModelLoader.Load(Path.Combine(Dir, model));
        var logits = CompiledModel.Compile(m).Run(new Dictionary<string, Tensor> { [m.Graph.Inputs[0].Name] = InputFor(x) })[m.Graph.Outputs[0].Name];
        var labels = Npy.Read(Path.Combine(Dir, y));
        double expected = Manifest[model]!["cleanTestAccuracy"]!.GetValue<double>();
        Assert.InRange(Accuracy(logits, labels), expected - 1.5 / labels.Length, expected + 1.5 / labels.Length);
        Assert.True(expected >= 0.8, $"{model}: the fixture should be a competent model, torch measured {expected}");
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Builtin_engine_and_onnxruntime_agree(string model, string x, string y)
    {
        _ = y;
        OrtTestSupport.RequireOrt();
        var m = OnnxModelLoader.Load(Path.Combine(Dir, model));
        var inputs = new Dictionary<string, Tensor> { [m.Graph.Inputs[0].Name] = InputFor(x) };
        var builtin = CompiledModel.Compile(m).Run(inputs);
        using var ort = new OnnxRuntimeInference().Load(m, new RuntimeOptions(IntraOpThreads: 1));
        var actual = ort.Run(inputs);
        foreach (var o in ort.OutputNames) OrtCompare.AssertClose(model, o, builtin[o], actual[o], OrtCompare.For(builtin[o].Type));
    }

    [Fact]
    public void Transformer_gradients_through_attention_match_finite_differences()
    {
        // Token ids are discrete, so differentiate with respect to the positional embedding (an initializer added to
        // the token embeddings): the gradient then crosses every attention block, softmax, GELU (Erf) and LayerNorm.
        var m = OnnxModelLoader.Load(Path.Combine(Dir, "transformer-tokens.onnx"));
        var ops = m.Graph.Nodes.Select(n => n.OpType).ToHashSet();
        Assert.Superset(new HashSet<string> { "MatMul", "Softmax", "Erf", "Gather" }, ops);
        var pos = m.Graph.Initializers.Single(kv => kv.Value.Shape.SequenceEqual(new[] { 1, 12, 32 })).Key;
        var engine = CompiledModel.Compile(m);
        var ids = Npy.Read(Path.Combine(Dir, "tokens_test_x.npy")).SliceBatch(0, 4);
        string input = m.Graph.Inputs[0].Name, output = m.Graph.Outputs[0].Name;
        var seed = Tensor.FromFloats([4, 2], [1, -1, 0.5f, 2, -1, 1, 1, 0]);
        using var pass = engine.Forward(new Dictionary<string, Tensor> { [input] = ids }, recordForBackward: true);
        var g = engine.Backward(pass, new Dictionary<string, Tensor> { [output] = seed }, [pos])[pos];

        var baseValue = m.Graph.Initializers[pos];
        double Objective(int index, float delta)
        {
            var v = baseValue.Floats!.ToArray(); v[index] += delta;
            var changed = new Dictionary<string, Tensor>(m.Graph.Initializers) { [pos] = Tensor.FromFloats(baseValue.Shape, v) };
            var perturbed = new OnnxModel
            {
                SourcePath = m.SourcePath, Sha256 = m.Sha256, SizeBytes = m.SizeBytes, IrVersion = m.IrVersion, Opsets = m.Opsets,
                ProducerName = m.ProducerName, ProducerVersion = m.ProducerVersion, Metadata = m.Metadata, Bytes = m.Bytes,
                Graph = new Graph { Name = m.Graph.Name, Inputs = m.Graph.Inputs, Outputs = m.Graph.Outputs, Initializers = changed, Nodes = m.Graph.Nodes, ValueInfos = m.Graph.ValueInfos },
            };
            var y = CompiledModel.Compile(perturbed).Run(new Dictionary<string, Tensor> { [input] = ids })[output];
            double s = 0;
            for (int i = 0; i < y.Length; i++) s += (double)y.Floats![i] * seed.Floats![i];
            return s;
        }
        const float h = 1e-2f;
        var rng = new Random(7);
        foreach (var index in Enumerable.Range(0, 8).Select(_ => rng.Next(baseValue.Length)).Append(0).Append(31))
        {
            double fd = (Objective(index, h) - Objective(index, -h)) / (2 * h);
            double an = g.GetDouble(index);
            Assert.True(Math.Abs(fd - an) <= 2e-3 + 2e-2 * Math.Abs(fd), $"element {index}: backward {an}, finite difference {fd}");
        }
    }
}
