using Gate.Core.Decision;
using System.Text.Json.Nodes;
using Gate.Core;
using Gate.Core.Evidence;
using Gate.Core.Model;
using Gate.Core.Plan;
using Gate.Core.Policy;
using Gate.Core.Sandbox;
using Gate.Sandbox.Process;
using Gate.Tests.Sandbox;
using Gate.Tests.Support;

namespace Gate.Tests.Plan;

/// <summary>
/// The plan's cost estimate: each check's work comes from its bound budgets (the same on every host), its cost from
/// a pass the sandbox measures before the checks run. Costs are injected here: no test depends on timing.
/// </summary>
public class CostEstimateTests
{
    private static CheckPlan ShardPolicyPlan() =>
        CheckPlan.Create(PolicyLoader.Load(ShardTests.Policy(samples: 20)), OnnxModelLoader.Load(ShardTests.Model));

    [Fact]
    public void Work_follows_the_bound_budgets_and_a_slow_pass_says_up_front_what_to_change()
    {
        var plan = ShardPolicyPlan();
        var rows = plan.Datasets.Single().Samples;
        // The ResNet-18 through gate check: 127 ms per sample-gradient; a forward a tenth of it.
        var slow = CostEstimator.Estimate(plan, plan.SandboxChecks, new PassCost(0.0127, 0.127, "injected"));
        var acc = slow.Checks.Single(c => c.Id == "accuracy");
        var adv = slow.Checks.Single(c => c.Id == "robustness");
        Assert.Equal(new CheckWork(rows, 0), acc.Work);
        Assert.Equal(20, adv.Work.Forward);
        // 20 samples × (PGD 8 steps × 2 restarts + Square's 60 queries, each method's own cost model) × 2 ε points.
        Assert.Equal(20 * (8 * 2 + 60) * 2, adv.Work.Gradient, tolerance: 20 * 2 * 2); // a method may add its start query
        Assert.Equal(acc.Seconds + adv.Seconds, slow.TotalSeconds, 9);
        Assert.Equal(300, slow.WallTimeSeconds);
        Assert.False(slow.Fits);
        Assert.Contains("'robustness'", slow.Advice);
        Assert.Contains("raise sandbox.limits.timeout", slow.Advice);
        Assert.Contains("does not fit", slow.Lines().Last());

        // The digits CNN's real cost fits easily, and says so.
        var fast = CostEstimator.Estimate(plan, plan.SandboxChecks, new PassCost(2e-5, 2e-4, "injected"));
        Assert.True(fast.Fits);
        Assert.Null(fast.Advice);
        Assert.EndsWith("fits", fast.Lines().Last());
    }

    [Fact]
    public void A_sandbox_measured_cost_is_used_only_when_its_numbers_are_sane()
    {
        Assert.Null(CostEstimator.Accept(new PassCost(double.NaN, 1, "x")));
        Assert.Null(CostEstimator.Accept(new PassCost(1, -1, "x")));
        Assert.Null(CostEstimator.Accept(new PassCost(1, double.PositiveInfinity, "x")));
        var ok = CostEstimator.Accept(new PassCost(0.001, 0.01, "measured\u001b[31m" + new string('a', 500)))!;
        Assert.DoesNotContain('\u001b', ok.Source);
        Assert.True(ok.Source.Length <= 200);
    }

    [Fact]
    public async Task Gate_check_records_the_estimate_beside_the_sandbox_never_among_the_reproducible_results()
    {
        var notes = new List<string>();
        var record = await new GateCheckPipeline(new ProcessBackend()).RunAsync(
            new GateCheckRequest(ShardTests.Model, ShardTests.Policy(samples: 4), TestPaths.TempDir("gate-estimate-out")),
            ct: TestContext.Current.CancellationToken, notice: notes.Add);

        var estimate = record.Sandbox.Estimate;
        Assert.NotNull(estimate);
        Assert.Equal(["accuracy", "robustness"], estimate.Checks.Select(c => c.Id));
        Assert.True(estimate.Cost.GradientSecondsPerSample > 0);
        Assert.StartsWith("measured: median of 3 batches of", estimate.Cost.Source);
        Assert.True(estimate.Fits, string.Join("\n", estimate.Lines()));
        Assert.Contains(notes, n => n.StartsWith("estimate: total", StringComparison.Ordinal));
        // Machine-readable under sandbox, and nowhere in what shards must reproduce.
        var json = JsonNode.Parse(record.ToJson())!;
        Assert.NotNull(json["sandbox"]!["estimate"]!["checks"]);
        Assert.True((bool)json["sandbox"]!["estimate"]!["fits"]!);
        json.AsObject().Remove("sandbox");
        Assert.DoesNotContain("estimate", json.ToJsonString());
        Assert.All(record.Checks, c => Assert.NotEqual(Verdict.Inconclusive, c.Verdict));
    }

    /// <summary>
    /// Before any check runs, gate check prints each check's estimate (stderr lines that work outside a terminal) and
    /// records it in the decision with the check's budget.
    /// </summary>
    [Fact]
    public void Gate_check_prints_each_estimate_before_any_check_starts()
    {
        var dir = TestPaths.TempDir("gate-estimate-cli");
        var r = GateCli.Run("check", "--model", ShardTests.Model, "--policy", ShardTests.Policy(samples: 4), "--out", dir, "--sandbox", "process");
        Assert.True(r.ExitCode is 0 or 1, r.Stderr);
        int estimated = r.Stderr.IndexOf("gate: check robustness estimated: ~", StringComparison.Ordinal);
        int started = r.Stderr.IndexOf("gate: check accuracy started", StringComparison.Ordinal);
        Assert.True(estimated >= 0 && started > estimated, r.Stderr);
        Assert.Contains("against a budget of 5 min (sandbox.limits.timeout)", r.Stderr);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "decision.json")))!;
        var robustness = json["sandbox"]!["estimate"]!["checks"]!.AsArray().Single(c => (string)c!["id"]! == "robustness")!;
        Assert.Equal(300, (double)robustness["budgetSeconds"]!);
        Assert.False((bool)robustness["overBudget"]!);
    }

    /// <summary>A check estimated past its own wall-time budget is INCONCLUSIVE up front, saying so, and the others still run.</summary>
    [Fact]
    public void A_check_estimated_past_its_budget_is_inconclusive_before_it_runs()
    {
        var policy = ShardTests.Policy(samples: 4);
        File.WriteAllText(policy, File.ReadAllText(policy).Replace("      require: { robustAccuracy:", "      budget: { wallTime: 1ms }\n      require: { robustAccuracy:"));
        var dir = TestPaths.TempDir("gate-estimate-over");
        var r = GateCli.Run("check", "--model", ShardTests.Model, "--policy", policy, "--out", dir, "--sandbox", "process");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("over budget, INCONCLUSIVE without running", r.Stderr);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "decision.json")))!;
        var checks = json["checks"]!.AsArray();
        var robustness = checks.Single(c => (string)c!["id"]! == "robustness")!;
        Assert.Equal("inconclusive", (string)robustness["verdict"]!);
        Assert.Contains(robustness["reasons"]!.AsArray(), x => ((string)x!).StartsWith("estimated ", StringComparison.Ordinal) && ((string)x!).Contains("> budget 0 s (budget.wallTime)"));
        // Not run: no attack query was spent.
        Assert.Null(robustness["budgetUsed"]?["queries"]);
        Assert.Equal("pass", (string)checks.Single(c => (string)c!["id"]! == "accuracy")!["verdict"]!);
    }

    [Fact]
    public void An_estimate_says_what_it_leaves_out_of_its_model_passes()
    {
        // The probe's fits and the representation's Gram matrices are not model passes: their lines say so.
        const string checks = """
                - { id: probe, type: linear-probe, dataset: concept, concept: supervisor present, layers: auto, folds: 4, require: { accuracy: { max: 0.6 } } }
                - { id: repr, type: representation, dataset: concept }
            """;
        var dir = TestPaths.TempDir("gate-estimate-notcounted");
        var path = Path.Combine(dir, "policy.yaml");
        File.WriteAllText(path, Gate.Tests.Checks.MechanisticHarness.AgentPolicy(checks));
        var plan = CheckPlan.Create(PolicyLoader.Load(path), OnnxModelLoader.Load(TestPaths.FixtureModel("absent-supervisor-honest.onnx")));
        var estimate = CostEstimator.Estimate(plan, plan.SandboxChecks, new PassCost(1e-4, 1e-3, "injected"));
        var lines = estimate.Lines().ToList();
        Assert.Contains(lines, l => l.StartsWith("probe (linear-probe): ", StringComparison.Ordinal) && l.Contains("; not counted: fitting the probes (4 folds per layer"));
        Assert.Contains(lines, l => l.StartsWith("repr (representation): ", StringComparison.Ordinal) && l.Contains("; not counted: each layer's Gram matrix"));
        // Recorded with the estimate too (decision.json's sandbox.estimate), not only printed.
        Assert.Contains("4 folds", estimate.Checks.Single(c => c.Id == "probe").NotEstimated);
    }
}
