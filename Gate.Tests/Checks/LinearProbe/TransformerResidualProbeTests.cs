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
