using System.Text.Json.Nodes;
using Gate.Core.Checks;
using Gate.Core.Model;
using Gate.Tests.Support;

namespace Gate.Tests.Checks.LinearProbe;

/// <summary>
/// `gate check` end to end on the 2-layer nn.TransformerEncoder text classifier (examples/real-arch, made by
/// scripts/fixtures/make_real_arch_fixtures.py): int64 token ids as the dataset, accuracy on them, and a linear probe
/// and the representation metrics on the residual stream pooled at the CLS position. The probe's concept is the
/// task label, which the model classifies perfectly from the CLS position (MANIFEST.json: clean accuracy 1.0), so the
/// last residual tensor must encode it.
/// </summary>
public class TransformerResidualProbeTests
{
    private static string Dir => Path.Combine(TestPaths.RepoRoot, "examples", "real-arch");
    private static string Model => Path.Combine(Dir, "transformer-tokens.onnx");

    private static string Policy(string dir, string layers, string pooling)
    {
        var path = Path.Combine(dir, "policy.yaml");
        File.WriteAllText(path, $$"""
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata: { name: transformer-probe }
            spec:
              model:
                format: onnx
                inputs:
                  input_ids: { shape: [-1, 12], range: [0, 15] }
              runtime: builtin
              sandbox: { isolation: process }
              seed: 7
              datasets:
                tokens: { inputs: "{{Path.Combine(Dir, "tokens_test_x.npy")}}", labels: "{{Path.Combine(Dir, "tokens_test_y.npy")}}" }
              checks:
                - id: acc
                  type: accuracy
                  dataset: tokens
                  require: { accuracy: { min: 0.95 } }
                - id: probe
                  type: linear-probe
                  dataset: tokens
                  concept: token 3 outnumbers token 4
                  layers: {{layers}}
                  pooling: {{pooling}}
                  require: { accuracy: { min: 0.9 } }
                - id: repr
                  type: representation
                  dataset: tokens
                  samples: 64
                  layers: {{layers}}
                  pooling: {{pooling}}

            """);
        return path;
    }

    [Fact]
    public void Gate_check_probes_the_residual_stream_of_a_transformer_on_token_ids_and_approves()
    {
        var work = TestPaths.TempDir();
        var outDir = Path.Combine(work, "out");
        var r = GateCli.Run("check", "--model", Model, "--policy", Policy(work, "residual", "cls"), "--out", outDir);
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}\n{r.All}");
        var decision = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "decision.json")))!;
        var checks = decision["checks"]!.AsArray();
        var probe = checks.Single(c => c!["id"]!.GetValue<string>() == "probe")!;
        Assert.Equal("pass", probe["verdict"]!.GetValue<string>().ToLowerInvariant());
        var layers = probe["details"]!["layers"]!.AsArray();
        // Two post-norm encoder layers: x + attention(x) and x + mlp(x) in each, so four residual tensors of width 32.
        Assert.Equal(4, layers.Count);
        Assert.All(layers, l => Assert.Equal(32, l!["units"]!.GetValue<int>()));
        Assert.True(layers[^1]!["accuracy"]!.GetValue<double>() >= 0.9, probe.ToJsonString());
        var repr = checks.Single(c => c!["id"]!.GetValue<string>() == "repr")!;
        Assert.Equal(4, repr["details"]!["layers"]!.AsArray().Count);
    }

    [Fact]
    public void Residual_stream_is_the_tensors_entering_each_layer_norm()
    {
        var stream = MechanisticData.ResidualStream(OnnxModelLoader.Load(Model));
        Assert.Equal(["/encoder/layers.0/Add_output_0", "/encoder/layers.0/Add_2_output_0", "/encoder/layers.1/Add_output_0", "/encoder/layers.1/Add_2_output_0"], stream);
    }

    [Fact]
    public void Auto_layers_find_the_gelus_that_torch_writes_out_as_erf()
    {
        var layers = MechanisticData.ResolveLayers(OnnxModelLoader.Load(Model), new LayerChoice(null));
        Assert.Equal(["/encoder/layers.0/Mul_1_output_0", "/encoder/layers.1/Mul_1_output_0"], layers);
    }

    /// <summary>
    /// <c>gate check</c> with <c>layers: auto</c> on the ViT (untrained, opset 17) and images whose concept is their
    /// brightness: the probe and the representation metrics run on the two GELU activations ([N, tokens, 32]
    /// pooled by mean), and the brightness is linearly readable from them, as from any random features of pixels.
    /// </summary>
    [Fact]
    public void Gate_check_probes_a_vits_auto_layers_end_to_end()
    {
        var work = TestPaths.TempDir();
        var rng = new Random(17);
        int n = 160, size = 3 * 8 * 8;
        var labels = Enumerable.Range(0, n).Select(i => (long)(i % 2)).ToArray();
        var pixels = new float[n * size];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < size; j++) pixels[i * size + j] = (float)(rng.NextDouble() * 0.5 + (labels[i] == 1 ? 0.4 : 0.1));
        Gate.Core.Tensors.Npy.Write(Path.Combine(work, "x.npy"), Gate.Core.Tensors.Tensor.FromFloats([n, 3, 8, 8], pixels));
        Gate.Core.Tensors.Npy.Write(Path.Combine(work, "y.npy"), Gate.Core.Tensors.Tensor.FromLongs([n], labels));
        var policy = Path.Combine(work, "policy.yaml");
        File.WriteAllText(policy, """
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata: { name: vit-probe }
            spec:
              model:
                format: onnx
                inputs:
                  input: { shape: [-1, 3, 8, 8], range: [0.0, 1.0] }
              runtime: builtin
              sandbox: { isolation: process }
              seed: 7
              datasets:
                images: { inputs: x.npy, labels: y.npy }
              checks:
                - id: probe
                  type: linear-probe
                  dataset: images
                  concept: the image is bright
                  layers: auto
                  pooling: mean
                  require: { accuracy: { min: 0.8 } }
                - id: repr
                  type: representation
                  dataset: images
                  samples: 64
                  layers: auto
                  pooling: mean
            """);
        var outDir = Path.Combine(work, "out");
        var model = Path.Combine(AppContext.BaseDirectory, "TestData", "transformer", "vit-tiny-opset17.onnx");
        var r = GateCli.Run("check", "--model", model, "--policy", policy, "--out", outDir);
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}\n{r.All}");
        var checks = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "decision.json")))!["checks"]!.AsArray();
        var probe = checks.Single(c => c!["id"]!.GetValue<string>() == "probe")!;
        var layers = probe["details"]!["layers"]!.AsArray();
        Assert.Equal(2, layers.Count);
        Assert.All(layers, l => Assert.Equal(32, l!["units"]!.GetValue<int>())); // the MLP's hidden width, pooled over tokens
        Assert.Equal("pass", probe["verdict"]!.GetValue<string>().ToLowerInvariant());
        Assert.Equal(2, checks.Single(c => c!["id"]!.GetValue<string>() == "repr")!["details"]!["layers"]!.AsArray().Count);
    }

    /// <summary>The same on a ViT as torch.onnx exports it at opset 13 and 17 (patch embedding by Conv, 2 encoder
    /// layers): auto finds each MLP's GELU, the Mul that ends x·½·(1 + erf(x/√2)), and nothing else.</summary>
    [Theory]
    [InlineData("vit-tiny-opset13.onnx")]
    [InlineData("vit-tiny-opset17.onnx")]
    public void Auto_layers_find_the_gelus_of_a_vit(string file)
    {
        var model = OnnxModelLoader.Load(Path.Combine(AppContext.BaseDirectory, "TestData", "transformer", file));
        var layers = MechanisticData.ResolveLayers(model, new LayerChoice(null));
        Assert.Equal(2, model.Graph.Nodes.Count(n => n.OpType == "Erf"));
        Assert.Equal(2, layers.Count);
        foreach (var layer in layers)
        {
            var producer = model.Graph.Nodes.Single(n => n.Outputs.Contains(layer));
            Assert.Equal("Mul", producer.OpType);
            // Walk back from the Mul (at most 3 nodes) to the Erf it scales.
            var frontier = new List<Node> { producer };
            bool erf = false;
            for (int depth = 0; depth < 3 && !erf; depth++)
            {
                frontier = frontier.SelectMany(n => n.Inputs).SelectMany(i => model.Graph.Nodes.Where(m => m.Outputs.Contains(i))).ToList();
                erf = frontier.Any(n => n.OpType == "Erf");
            }
            Assert.True(erf, $"{file}: auto layer {layer} is not a GELU written out with Erf");
        }
    }

    [Fact]
    public void Pooling_takes_the_cls_last_or_mean_position_and_leaves_other_ranks_alone()
    {
        // 1 sample, 3 positions, width 2.
        double[] a = [1, 10, 2, 20, 3, 30];
        int[] shape = [1, 3, 2];
        Assert.Equal([1, 10], MechanisticData.Pool(a, shape, Pooling.Cls));
        Assert.Equal([3, 30], MechanisticData.Pool(a, shape, Pooling.Last));
        Assert.Equal([2, 20], MechanisticData.Pool(a, shape, Pooling.Mean));
        Assert.Equal(a, MechanisticData.Pool(a, shape, Pooling.Flatten));
        Assert.Equal(a, MechanisticData.Pool(a, [1, 6], Pooling.Cls));
    }
}
