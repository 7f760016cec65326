using System.Text.Json.Nodes;
using Gate.Core.Decision;
using Gate.Tests.Sandbox;
using Gate.Tests.Support;

namespace Gate.Tests.Decision;

/// <summary>
/// Budgets that scale, through <c>gate check</c> in the bubblewrap sandbox: a model over
/// <see cref="BudgetScaling.MinParameters"/> (one wide dense layer: 9.7M parameters, a few ms a pass)
/// and a 30 s sandbox that its default budgets cannot fit. The adversarial search is scaled and runs to a verdict;
/// the trojan scan cannot fit even at its floors and is INCONCLUSIVE without running.
/// </summary>
[Collection(nameof(BubblewrapBackendTests))]
public sealed class BudgetScalingEndToEndTests(BubblewrapFixture fixture) : IClassFixture<BubblewrapFixture>
{
    private static string WideModel(string dir)
    {
        var b = new OnnxBuilder([1, 1, 8, 8], input: "input"); // the first axis becomes the batch
        var rng = new Random(7);
        var flat = b.Node("Flatten", ["input"]);
        var hidden = b.Node("Relu", [b.Dense(flat, 64, 1 << 17, rng)]);
        b.Output(b.Dense(hidden, 1 << 17, 10, rng), -1, 10);
        return b.Save(Path.Combine(dir, "wide.onnx"));
    }

    [Fact]
    public void Defaults_are_scaled_to_the_sandbox_and_a_check_that_cannot_fit_is_refused_up_front()
    {
        fixture.Require();
        var dir = TestPaths.TempDir("gate-scaling-e2e");
        var policy = Path.Combine(dir, "policy.yaml");
        File.WriteAllText(policy, $$"""
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata: { name: scaling-e2e }
            spec:
              model:
                format: onnx
                inputs:
                  input: { shape: [-1, 1, 8, 8], range: [0.0, 1.0] }
              runtime: onnxruntime
              sandbox:
                isolation: process
                limits: { memory: 2Gi, cpus: 2, timeout: 30s }
              seed: 1234
              datasets:
                test: { inputs: {{TestPaths.FixtureData("digits_test_x.npy")}}, labels: {{TestPaths.FixtureData("digits_test_y.npy")}} }
              checks:
                - id: robustness
                  type: adversarial
                  dataset: test
                  threat: { norm: linf, epsilon: 0.01 }
                  search: [ { method: pgd } ]
                  require: { robustAccuracy: { min: 0.0 } }
                - id: backdoor
                  type: trojan-scan
                  dataset: test
            """);
        var outDir = Path.Combine(dir, "out");
        var r = GateCli.Run("check", "--model", WideModel(dir), "--policy", policy, "--out", outDir, "--sandbox", "bubblewrap");
        // The user sees what was scaled and what cannot fit before anything runs.
        int estimated = r.Stderr.IndexOf("gate: check robustness estimated: defaults scaled to fit the sandbox: samples ", StringComparison.Ordinal);
        int started = r.Stderr.IndexOf("gate: check robustness started", StringComparison.Ordinal);
        Assert.True(estimated >= 0 && started > estimated, r.Stderr);
        Assert.Contains("gate: check backdoor estimated: cannot fit: at the floors of its defaulted budgets", r.Stderr);

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "decision.json")))!;
        var checks = json["checks"]!.AsArray();
        var robustness = checks.Single(c => (string)c!["id"]! == "robustness")!;
        var scaled = robustness["details"]!["scaledDefaults"]!;
        Assert.StartsWith(BudgetScaling.Rule, (string)scaled["samples"]!["rule"]!);
        Assert.Equal("every sample (360)", (string)scaled["samples"]!["declaredDefault"]!);
        Assert.True((string)robustness["verdict"]! == "pass", robustness.ToJsonString());
        // As many samples attacked as were scaled to, no more.
        Assert.Equal(int.Parse((string)scaled["samples"]!["value"]!), (int)robustness["metrics"]!["samples"]!);

        var backdoor = checks.Single(c => (string)c!["id"]! == "backdoor")!;
        Assert.Equal("inconclusive", (string)backdoor["verdict"]!);
        Assert.Contains(backdoor["reasons"]!.AsArray(), x => ((string)x!).StartsWith("cannot fit", StringComparison.Ordinal));
        Assert.Null(backdoor["budgetUsed"]?["steps"]); // not run: nothing spent
        Assert.Equal(2, r.ExitCode); // INCONCLUSIVE: never APPROVE with a check that could not run

        // decision.json's estimate (made on the host from the sandbox's measured cost) says the same.
        var estimate = json["sandbox"]!["estimate"]!["checks"]!.AsArray();
        Assert.NotEmpty(estimate.Single(c => (string)c!["id"]! == "robustness")!["scaled"]!.AsArray());
        Assert.NotNull(estimate.Single(c => (string)c!["id"]! == "backdoor")!["cannotFit"]);
    }
}
