using Gate.Core.Checks.Representation;
using Gate.Core.Engine;
using Gate.Core.Evidence;
using Gate.Core.Model;
using Gate.Core.Numerics;
using Gate.Core.Tensors;
using Gate.Tests.Support;
using Xunit;

namespace Gate.Tests.Checks.Representation;

public class RepresentationAndSurrogateTests
{
    [Fact]
    public void Representation_reports_every_hidden_layer_with_metrics_in_range()
    {
        var (r, _) = MechanisticHarness.Run("digits-mlp.onnx", MechanisticHarness.DigitsPolicy("""
                - id: repr
                  type: representation
                  dataset: test
                  samples: 100
            """));
        Assert.Equal(Verdict.Pass, r.Verdict); // informational without require
        var layers = r.Details["layers"]!.AsArray();
        Assert.Equal(2, layers.Count); // the MLP's two hidden ReLUs
        Assert.Equal([64, 32], layers.Select(l => (int)l!["units"]!));
        Assert.Contains("Roy & Vetterli", r.Details["definitions"]!["effectiveRank"]!.ToString());
        // The values themselves are checked against independent computations in the next test; here: their ranges.
        foreach (var l in layers)
        {
            Assert.InRange((double)l!["sparsity"]!, 0.0, 1.0);
            Assert.InRange((double)l["effectiveRank"]!, 1.0, (int)l["units"]!);
            Assert.True((double)l["codingRate"]! > 0);
        }
    }

    [Fact]
    public void Representation_metrics_on_captured_activations_equal_the_definitions()
    {
        var model = CompiledModel.Compile(OnnxModelLoader.Load(TestPaths.FixtureModel("digits-mlp.onnx")));
        var x = Npy.Read(TestPaths.FixtureData("digits_test_x.npy")).SliceBatch(0, 20);
        var layer = model.Graph.Nodes.First(n => n.OpType == "Relu").Outputs[0];
        var act = model.Forward(new Dictionary<string, Tensor> { ["input"] = x }, [], [layer])[layer];
        var z = SampleMatrix.FromTensor(act);
        // Sparsity by counting zeros of the ReLU.
        Assert.Equal(act.ToFloatArray().Count(v => Math.Abs(v) < 1e-6) / (double)act.Length, RepresentationMetrics.Sparsity(z, 1e-6), 12);
        // Coding rate: log det via the eigenvalues of ZᵀZ (d×d) instead of Cholesky of the 20×20 Gram matrix.
        int n = z.Rows, d = z.Columns;
        var zz = new double[d * d];
        for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) for (int s = 0; s < n; s++) zz[i * d + j] += z.Data[s * d + i] * z.Data[s * d + j];
        double alpha = d / (n * 0.25);
        double viaEig = 0.5 * Gate.Core.Numerics.SymmetricMatrix.Eigenvalues(zz, d).Sum(l => Math.Log(1 + alpha * Math.Max(0, l)));
        Assert.Equal(viaEig, RepresentationMetrics.CodingRate(z, 0.5), 6);
    }

    [Fact]
    public void Representation_requirements_hold_on_every_layer()
    {
        var (r, _) = MechanisticHarness.Run("digits-mlp.onnx", MechanisticHarness.DigitsPolicy("""
                - id: repr
                  type: representation
                  dataset: test
                  samples: 50
                  require: { effectiveRank: { min: 1000 } }
            """));
        Assert.Equal(Verdict.Fail, r.Verdict);
        Assert.Contains("effectiveRank", r.Reasons[0]);
    }

    private const string Surrogate = """
            - id: tree
              type: surrogate
              dataset: test
              maxDepth: 6
              holdout: 0.25
              require: { fidelity: { min: 0.5 } }
        """;

    [Fact]
    public void Surrogate_fidelity_is_deterministic_under_the_seed_and_the_tree_is_evidence()
    {
        var (a, dir) = MechanisticHarness.Run("digits-cnn.onnx", MechanisticHarness.DigitsPolicy(Surrogate, seed: 7));
        var (b, _) = MechanisticHarness.Run("digits-cnn.onnx", MechanisticHarness.DigitsPolicy(Surrogate, seed: 7));
        Assert.Equal(a.Metrics["fidelity"], b.Metrics["fidelity"]);
        Assert.Equal(a.Details["tree"]!.ToString(), b.Details["tree"]!.ToString());
        Assert.Equal(90, a.Metrics["heldOut"]);
        Assert.Equal(Verdict.Pass, a.Verdict); // a depth-6 tree imitates a 98%-accurate digit classifier far above chance
        Assert.True(a.Metrics["depth"] <= 6);
        var text = File.ReadAllText(Path.Combine(dir, "tree", "surrogate-tree.txt"));
        Assert.Contains("if input[0,", text);
    }

    [Fact]
    public void Surrogate_fidelity_is_not_measured_on_a_substitute_when_the_production_runtime_is_missing()
    {
        // The policy names onnxruntime; without it the check must not quietly imitate the built-in engine instead.
        Assert.Throws<Gate.Core.GateComponentMissingException>(() =>
            MechanisticHarness.Run("digits-cnn.onnx", MechanisticHarness.DigitsPolicy(Surrogate, runtime: "onnxruntime"), withoutProduction: true));
    }

    [Fact]
    public void A_shallow_surrogate_cannot_meet_a_high_fidelity_requirement()
    {
        // Depth 2 gives at most 4 leaves for 10 classes: agreement ≤ the 4 largest predicted-class shares (< 0.5 here).
        var (r, _) = MechanisticHarness.Run("digits-cnn.onnx", MechanisticHarness.DigitsPolicy("""
                - id: tree
                  type: surrogate
                  dataset: test
                  maxDepth: 2
                  require: { fidelity: { min: 0.9 } }
            """));
        Assert.Equal(Verdict.Fail, r.Verdict);
        Assert.True(r.Metrics["leaves"] <= 4);
        Assert.True(r.Metrics["fidelity"] < 0.5);
    }
}

public class MechanisticRegistryTests
{
    [Theory]
    [InlineData("static-inspection", typeof(Gate.Core.Checks.StaticInspection.StaticInspectionCheck), Gate.Core.Checks.CheckPlacement.Host)]
    [InlineData("linear-probe", typeof(Gate.Core.Checks.LinearProbe.LinearProbeCheck), Gate.Core.Checks.CheckPlacement.Sandbox)]
    [InlineData("trojan-scan", typeof(Gate.Core.Checks.TrojanScan.TrojanScanCheck), Gate.Core.Checks.CheckPlacement.Sandbox)]
    [InlineData("representation", typeof(RepresentationCheck), Gate.Core.Checks.CheckPlacement.Sandbox)]
    [InlineData("surrogate", typeof(Gate.Core.Checks.Surrogate.SurrogateCheck), Gate.Core.Checks.CheckPlacement.Sandbox)]
    public void Each_check_type_is_found_by_reflection(string type, Type implementation, Gate.Core.Checks.CheckPlacement placement)
    {
        var check = Gate.Core.Checks.CheckRegistry.Find(type);
        Assert.IsType(implementation, check);
        Assert.Equal(placement, check!.Placement);
        Assert.False(string.IsNullOrWhiteSpace(check.Purpose));
    }
}
