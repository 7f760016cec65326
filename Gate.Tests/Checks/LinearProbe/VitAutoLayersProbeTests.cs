using System.Text.Json.Nodes;
using Gate.Core.Checks;
using Gate.Core.Model;
using Gate.Tests.Support;

namespace Gate.Tests.Checks.LinearProbe;

/// <summary>
/// `layers: auto` on a ViT as PyTorch exports it (examples/real-arch/vit-shapes.onnx, made by
/// scripts/fixtures/make_real_arch_fixtures.py: 4×4 patches + CLS, d=32, two pre-norm encoder layers whose MLP's
/// GELU torch 1.13 writes out as x·0.5·(1 + erf(x/√2))). Auto must find those two hidden activations, not the
/// attention softmax or a graph output, and `gate check` must probe them end to end: the shape class, which the
/// model classifies perfectly from the CLS position (MANIFEST.json: clean accuracy 1.0), is read off them linearly.
/// </summary>
public class VitAutoLayersProbeTests
{
    private static string Dir => Path.Combine(TestPaths.RepoRoot, "examples", "real-arch");
    private static string Model => Path.Combine(Dir, "vit-shapes.onnx");
    private static readonly string[] Gelus = ["/blocks/blocks.0/mlp/mlp.1/Mul_1_output_0", "/blocks/blocks.1/mlp/mlp.1/Mul_1_output_0"];

    [Fact]
    public void Auto_layers_are_the_two_encoder_gelus_written_out_as_erf()
    {
        var model = OnnxModelLoader.Load(Model);
        Assert.Equal(2, model.Graph.Nodes.Count(n => n.OpType == "Erf"));
        Assert.Equal(Gelus, MechanisticData.ResolveLayers(model, new LayerChoice(null)));
    }

    [Fact]
    public void Gate_check_probes_the_vit_hidden_activations_chosen_by_auto_and_approves()
    {
        var work = TestPaths.TempDir();
        var policy = Path.Combine(work, "policy.yaml");
        File.WriteAllText(policy, $$"""
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata: { name: vit-probe }
            spec:
              model:
                format: onnx
                inputs:
                  input:
                    shape: [-1, 3, 32, 32]
                    range: [0.0, 1.0]
                    preprocess: { channels: rgb, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }
              runtime: builtin
              sandbox: { isolation: process }
              seed: 7
              datasets:
                shapes: { inputs: "{{Path.Combine(Dir, "shapes_test_x.npy")}}", labels: "{{Path.Combine(Dir, "shapes_test_y.npy")}}" }
              checks:
                - id: acc
                  type: accuracy
                  dataset: shapes
                  require: { accuracy: { min: 0.95 } }
                - id: probe
                  type: linear-probe
                  dataset: shapes
                  concept: shape class
                  pooling: cls
                  require: { accuracy: { min: 0.8 } }

            """);
        var outDir = Path.Combine(work, "out");
        var r = GateCli.Run("check", "--model", Model, "--policy", policy, "--out", outDir);
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}\n{r.All}");
        var checks = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "decision.json")))!["checks"]!.AsArray();
        var probe = checks.Single(c => c!["id"]!.GetValue<string>() == "probe")!;
        Assert.Equal("pass", probe["verdict"]!.GetValue<string>().ToLowerInvariant());
        var layers = probe["details"]!["layers"]!.AsArray();
        Assert.Equal(Gelus, layers.Select(l => l!["name"]!.GetValue<string>()));
        Assert.All(layers, l => Assert.Equal(64, l!["units"]!.GetValue<int>())); // the MLP's hidden width at the CLS position
        Assert.True(layers[^1]!["accuracy"]!.GetValue<double>() >= 0.8, probe.ToJsonString());
    }
}
