using System.Text.Json.Nodes;
using Gate.Core.Checks.Adversarial;
using Gate.Core.Checks.TrojanScan;
using Gate.Core.Decision;
using Gate.Core.Evidence;
using Gate.Core.Model;
using Gate.Core.Plan;
using Gate.Core.Policy;
using Gate.Tests.Support;

namespace Gate.Tests.Decision;

/// <summary>
/// Default budgets that scale to fit the sandbox (<see cref="BudgetScaling"/>): the pass cost is injected, so nothing
/// here depends on timing. The model's parameter count is given, so the digits model stands in for a large one.
/// </summary>
public class BudgetScalingTests
{
    private const long Large = 11_000_000;

    private static CheckPlan Plan(string checks, string timeout = "20m")
    {
        var dir = TestPaths.TempDir("gate-scaling");
        var path = Path.Combine(dir, "policy.yaml");
        File.WriteAllText(path, $$"""
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata: { name: scaling }
            spec:
              model:
                format: onnx
                inputs:
                  input: { shape: [-1, 1, 8, 8], range: [0.0, 1.0] }
              runtime: onnxruntime
              sandbox:
                isolation: process
                limits: { memory: 2Gi, cpus: 1, timeout: {{timeout}} }
              seed: 1234
              datasets:
                test: { inputs: {{TestPaths.FixtureData("digits_test_x.npy")}}, labels: {{TestPaths.FixtureData("digits_test_y.npy")}} }
              checks:
                - id: accuracy
                  type: accuracy
                  dataset: test
                  require: { min: 0.5 }
            {{checks}}
            """);
        return CheckPlan.Create(PolicyLoader.Load(path), OnnxModelLoader.Load(TestPaths.FixtureModel("digits-cnn.onnx")));
    }

    private const string Defaults = """
                - id: robustness
                  type: adversarial
                  dataset: test
                  threat: { norm: linf, epsilon: 0.05 }
                  search: [ { method: pgd } ]
                  require: { robustAccuracy: { min: 0.1 } }
                - id: trojan
                  type: trojan-scan
                  dataset: test
            """;

    // A large model: 1 ms a forward, 5 ms a forward + input gradient per sample (ResNet-18 on 2 cores: 10–20 ms).
    private static readonly PassCost Slow = new(0.001, 0.005, "injected");

    private static Dictionary<string, long> Rows(CheckPlan plan) => plan.Datasets.ToDictionary(d => d.Name, d => (long)d.Samples);

    private static IReadOnlyList<BudgetScaling.Scaled> Apply(CheckPlan plan, PassCost cost, long parameters = Large) =>
        BudgetScaling.Apply(plan.SandboxChecks.ToList(), Rows(plan), 10, cost, plan.Policy.Spec.Sandbox.Limits.Timeout, parameters);

    private static double Seconds(BudgetScaling.Scaled s, CheckPlan plan, PassCost cost)
    {
        var w = ((IEstimatesWork)s.Check.Options!).Work(Rows(plan)["test"], 10);
        return w.Forward * cost.ForwardSecondsPerSample + w.Gradient * cost.GradientSecondsPerSample;
    }

    [Fact]
    public void Defaults_are_lowered_by_one_factor_until_the_estimate_fits_the_sandbox()
    {
        var plan = Plan(Defaults);
        var before = CostEstimator.Estimate(plan.SandboxChecks, Rows(plan), 10, Slow, TimeSpan.FromMinutes(20));
        Assert.False(before.Fits); // as declared: hours

        var scaled = Apply(plan, Slow);
        double total = scaled.Where(s => s.Check.Runnable).Sum(s => Seconds(s, plan, Slow));
        Assert.InRange(total, 0.9 * 0.8 * 1200, 0.8 * 1200); // fits, and not by lowering more than it had to
        Assert.All(scaled, s => Assert.Null(s.CannotFit));

        // Samples before steps: the adversarial search keeps PGD's 40 steps while fewer samples suffice...
        var adv = (AdversarialOptions)scaled.Single(s => s.Check.Spec.Id == "robustness").Check.Options!;
        var trojan = (TrojanScanOptions)scaled.Single(s => s.Check.Spec.Id == "trojan").Check.Options!;
        Assert.InRange(adv.Samples ?? 360, AdversarialOptions.SamplesFloor, 359);
        Assert.Null(adv.Search[0].Steps);
        // ...and steps are lowered only after the samples reached their floors, never below their own.
        Assert.Equal(TrojanScanCheck.SamplesFloor(10), trojan.Samples);
        Assert.InRange(trojan.NeuralCleanse.Steps, TrojanScanCheck.StepsFloor, 299);
        Assert.Equal(trojan.NeuralCleanse.Steps, trojan.Tabor.Steps);

        // Every lowered value is recorded with its default and the rule; the scan's defaulted wall time became its share.
        var names = scaled.Single(s => s.Check.Spec.Id == "trojan").Defaults.Select(d => d.Option).ToList();
        Assert.Contains("samples", names);
        Assert.Contains("steps", names);
        Assert.Contains("budget.wallTime", names);
        Assert.True(trojan.WallTime > TimeSpan.FromMinutes(5), $"{trojan.WallTime}");
        // The raised budgets leave the sandbox time beside them: they add up to at most 90% of its 20 minutes.
        Assert.True(trojan.WallTime + (adv.WallTime ?? TimeSpan.Zero) <= TimeSpan.FromMinutes(20 * PlanEstimate.ShareOfWallTime) + TimeSpan.FromSeconds(1), $"{trojan.WallTime}");
        Assert.True(trojan.WallTime > TimeSpan.FromMinutes(20 * PlanEstimate.ShareOfWallTime) * 0.5, $"{trojan.WallTime}: the scan is most of the estimate");
        Assert.All(scaled.SelectMany(s => s.Defaults).Where(d => d.Option != "budget.wallTime"), d => Assert.StartsWith(BudgetRule.Rule, d.Rule));

        // The estimate the user sees (and decision.json records) is of the scaled checks, and says what was scaled.
        var after = CostEstimator.Estimate(plan.SandboxChecks, Rows(plan), 10, Slow, TimeSpan.FromMinutes(20), Large);
        Assert.True(after.Fits, string.Join("\n", after.Lines()));
        Assert.Contains("defaults scaled to fit the sandbox: samples 32 (default 64)", after.Checks.Single(c => c.Id == "trojan").Line("injected"));
    }

    [Fact]
    public void Values_the_policy_wrote_are_never_scaled()
    {
        var plan = Plan("""
                - id: trojan
                  type: trojan-scan
                  dataset: test
                  samples: 16
                  steps: 20
                  tabor: { steps: 25 }
                  mmBd: { starts: 2, steps: 10 }
                  budget: { wallTime: 15m }
                - id: robustness
                  type: adversarial
                  dataset: test
                  samples: 300
                  threat: { norm: linf, epsilon: 0.05 }
                  search: [ { method: pgd, steps: 30 }, { method: square } ]
                  require: { robustAccuracy: { min: 0.1 } }
            """);
        var scaled = Apply(plan, new PassCost(0.001, 0.004, "injected"));
        var trojan = (TrojanScanOptions)scaled.Single(s => s.Check.Spec.Id == "trojan").Check.Options!;
        Assert.Equal((16, 20, 25, 2, 10, TimeSpan.FromMinutes(15)), (trojan.Samples, trojan.NeuralCleanse.Steps, trojan.Tabor.Steps, trojan.MaxMargin.Starts, trojan.MaxMargin.Steps, trojan.WallTime));
        Assert.Empty(scaled.Single(s => s.Check.Spec.Id == "trojan").Defaults);
        // Only Square's defaulted queries may give way here.
        var adv = scaled.Single(s => s.Check.Spec.Id == "robustness");
        var o = (AdversarialOptions)adv.Check.Options!;
        Assert.Equal((300, 30), (o.Samples, o.Search[0].Steps));
        Assert.Equal(["search[1].queries"], adv.Defaults.Select(d => d.Option));
        Assert.Equal("1000", adv.Defaults[0].DeclaredDefault);
    }

    [Fact]
    public void A_check_that_cannot_fit_at_its_floors_is_refused_before_it_runs_never_approved()
    {
        var plan = Plan(Defaults, timeout: "2m");
        var scaled = Apply(plan, Slow);
        // At its floors the scan is 32 samples × (150 + 150 steps) × 10 classes × 5 ms = 8 min: over 2 min × 80%.
        var trojan = scaled.Single(s => s.Check.Spec.Id == "trojan");
        Assert.NotNull(trojan.CannotFit);
        Assert.False(trojan.Check.Runnable);
        Assert.StartsWith("cannot fit: at the floors of its defaulted budgets", trojan.Check.NotRunReason);
        // The others are scaled to fit what is left.
        Assert.True(scaled.Single(s => s.Check.Spec.Id == "robustness").Check.Runnable);
        // The estimate says which check cannot fit and why, and the result is INCONCLUSIVE without running.
        var estimate = CostEstimator.Estimate(plan.SandboxChecks, Rows(plan), 10, Slow, TimeSpan.FromMinutes(2), Large);
        var line = estimate.Checks.Single(c => c.Id == "trojan");
        Assert.True(line.OverBudget);
        Assert.Contains("cannot fit", line.Line("injected"));
        Assert.Contains("INCONCLUSIVE without running", line.Line("injected"));
        var result = CheckResult.Inconclusive(trojan.Check.Spec, trojan.Check.NotRunReason!);
        Assert.Equal(Verdict.Inconclusive, result.Verdict);
    }

    [Fact]
    public void Small_models_and_plans_that_fit_keep_their_defaults()
    {
        var plan = Plan(Defaults);
        Assert.All(Apply(plan, Slow, parameters: BudgetRule.MinParameters - 1), s => Assert.Empty(s.Defaults));
        Assert.All(Apply(plan, new PassCost(1e-6, 1e-6, "injected")), s => Assert.Empty(s.Defaults));
        var trojan = (TrojanScanOptions)Apply(plan, new PassCost(1e-6, 1e-6, "injected")).Single(s => s.Check.Spec.Id == "trojan").Check.Options!;
        Assert.Equal(300, trojan.NeuralCleanse.Steps);
    }

    [Fact]
    public void Lowering_takes_what_it_can_from_a_knob_and_passes_the_rest_on()
    {
        Assert.Equal((64L, 1.0), BudgetRule.Lower(64, 16, 1));
        Assert.Equal((32L, 1.0), BudgetRule.Lower(64, 16, 0.5));
        var (v, left) = BudgetRule.Lower(64, 16, 0.1);
        Assert.Equal(16, v);
        Assert.Equal(0.4, left, 9); // 64 × 0.1 = 6.4 samples wanted, 16 taken: steps must give 0.4
        Assert.Equal((8L, 0.0), (BudgetRule.Lower(8, 16, 0.5).Value, 0.0)); // a default below its floor stays
    }

    [Fact]
    public void The_scaled_defaults_join_those_the_check_scaled_with_the_model_in_one_place()
    {
        var plan = Plan(Defaults);
        var spec = plan.SandboxChecks.Single(c => c.Spec.Id == "trojan").Spec;
        var r = CheckResult.Inconclusive(spec, "x");
        r.Details["scaledDefaults"] = new JsonObject { ["budget.wallTime"] = new JsonObject { ["value"] = "300s" } };
        CheckExecutor.RecordScaled(r, [new ScaledDefault("samples", "16", "64", BudgetRule.Rule)]);
        var scaled = r.Details["scaledDefaults"]!;
        Assert.Equal("300s", (string)scaled["budget.wallTime"]!["value"]!);
        Assert.Equal("16", (string)scaled["samples"]!["value"]!);
        Assert.Equal("64", (string)scaled["samples"]!["declaredDefault"]!);
        Assert.Equal(BudgetRule.Rule, (string)scaled["samples"]!["rule"]!);
    }

    [Fact]
    public void Review_says_which_defaults_the_sandbox_may_lower()
    {
        var steps = TrojanScanDeclaration.Value.Option("steps")!;
        Assert.Contains(BudgetRule.Rule, steps.DefaultWords);
        Assert.Contains($"floor {TrojanScanCheck.StepsFloor}", steps.DefaultWords);
    }
}
