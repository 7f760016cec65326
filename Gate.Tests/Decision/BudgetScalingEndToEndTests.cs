using System.Text.Json.Nodes;
using Gate.Core.Decision;
using Gate.Tests.Sandbox;
using Gate.Tests.Support;

namespace Gate.Tests.Decision;

/// <summary>
/// Budgets that scale, through <c>gate check</c> in the bubblewrap sandbox: a model over
/// <see cref="BudgetRule.MinParameters"/> (one wide dense layer: 2.4M parameters, a few ms a pass)
/// and a 60 s sandbox that its default budgets cannot fit. The adversarial search is scaled and runs to a verdict;
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
        var hidden = b.Node("Relu", [b.Dense(flat, 64, 1 << 15, rng)]);
        b.Output(b.Dense(hidden, 1 << 15, 10, rng), -1, 10);
        return b.Save(Path.Combine(dir, "wide.onnx"));
    }

    private static string Policy(string dir, string name, int timeoutSeconds, string samples, bool trojan)
    {
        var path = Path.Combine(dir, name);
        File.WriteAllText(path, $$"""
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
                limits: { memory: 2Gi, cpus: 2, timeout: {{timeoutSeconds}}s }
              seed: 1234
              datasets:
                test: { inputs: {{TestPaths.FixtureData("digits_test_x.npy")}}, labels: {{TestPaths.FixtureData("digits_test_y.npy")}} }
              checks:
                - id: robustness
                  type: adversarial
                  dataset: test{{samples}}
                  threat: { norm: linf, epsilon: 0.01 }
                  search: [ { method: pgd } ]
                  require: { robustAccuracy: { min: 0.0 } }
            """ + (trojan ? """

                - id: backdoor
                  type: trojan-scan
                  dataset: test
            """ : ""));
        return path;
    }

    [Fact]
    public void Defaults_are_scaled_to_the_sandbox_and_a_check_that_cannot_fit_is_refused_up_front()
    {
        fixture.Require();
        var dir = TestPaths.TempDir("gate-scaling-e2e");
        var model = WideModel(dir);
        // The pass cost on this machine, as the sandbox measures it (one sample attacked: cheap), so that the timeout
        // sits where scaling is needed whatever the machine: half of what PGD's default 41 passes on all 360 samples
        // take, 3.5× what they take at the floors (100 samples × 21 passes).
        var probe = GateCli.Run("check", "--model", model, "--policy", Policy(dir, "probe.yaml", 300, "\n      samples: 1", trojan: false), "--out", Path.Combine(dir, "probe"), "--sandbox", "bubblewrap");
        Assert.True(probe.ExitCode is 0 or 1 or 2, probe.Stderr);
        double g = (double)JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "probe", "decision.json")))!["sandbox"]!["estimate"]!["cost"]!["gradientSecondsPerSample"]!;
        int timeout = (int)Math.Ceiling(360 * 41 * g / 2 / 0.8) + 2;
        var policy = Policy(dir, "policy.yaml", timeout, "", trojan: true);
        var outDir = Path.Combine(dir, "out");
        var r = GateCli.Run("check", "--model", model, "--policy", policy, "--out", outDir, "--sandbox", "bubblewrap");
        // The user sees what was scaled and what cannot fit before anything runs.
        int estimated = r.Stderr.IndexOf("gate: check robustness estimated: defaults scaled to fit the sandbox: samples ", StringComparison.Ordinal);
        int started = r.Stderr.IndexOf("gate: check robustness started", StringComparison.Ordinal);
        Assert.True(estimated >= 0 && started > estimated, r.Stderr);
        Assert.Contains("gate: check backdoor estimated: cannot fit: at the floors of its defaulted budgets", r.Stderr);

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "decision.json")))!;
        var checks = json["checks"]!.AsArray();
        var robustness = checks.Single(c => (string)c!["id"]! == "robustness")!;
        var scaled = robustness["details"]!["scaledDefaults"]!;
        Assert.StartsWith(BudgetRule.Rule, (string)scaled["samples"]!["rule"]!);
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
