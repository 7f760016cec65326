using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Gate.Core.Runtime;
using Gate.Core.Evidence;
using Gate.Core.Model;
using Gate.Core.Policy;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Checks.Adversarial;

/// <summary>
/// End-to-end adversarial checks on the digits fixtures (policy file → plan → executor). The engine searches; the
/// checks whose counterexamples are judged run with <c>runtime: onnxruntime</c>, so a counterexample counts only once
/// ONNX Runtime reproduces it, and the evidence is re-verified independently: norms recomputed here, predictions
/// recomputed by a fresh ONNX Runtime session on the saved .npy — never by the engine that found them.
/// </summary>
public class AdversarialCheckTests
{
    private static readonly long[] Labels = Npy.Read(TestPaths.FixtureData("digits_test_y.npy")).ToLongArray();
    private static readonly float[] Images = Npy.Read(TestPaths.FixtureData("digits_test_x.npy")).ToFloatArray();

    /// <summary>The production runtime the judged checks confirm on.</summary>
    private const string Production = "onnxruntime";

    /// <summary>Every counterexample: in range, within ε, and wrong (or at the target) when replayed in a fresh ONNX Runtime session.</summary>
    private static void AssertEvidenceHolds(AdversarialKit.Run run, string modelFile, double eps, bool linf, int? target = null)
    {
        Assert.NotEqual("builtin", run.Result.Runtime);
        using var ort = ProductionRuntime.OnnxRuntimeFactory!().Load(OnnxModelLoader.Load(TestPaths.FixtureModel(modelFile)), new RuntimeOptions(IntraOpThreads: 1));
        foreach (var rec in run.Counterexamples)
        {
            var x = AdversarialKit.ReadCounterexample(run, rec!);
            Assert.Equal([1, 1, 8, 8], x.Shape);
            int index = (int)rec!["sampleIndex"]!;
            var clean = Images.AsSpan(index * 64, 64);
            double dist = 0;
            for (int i = 0; i < 64; i++)
            {
                Assert.InRange(x.Floats![i], 0f, 1f);
                double diff = Math.Abs((double)x.Floats[i] - clean[i]);
                dist = linf ? Math.Max(dist, diff) : dist + diff * diff;
            }
            if (!linf) dist = Math.Sqrt(dist);
            Assert.True(dist <= eps, $"sample {index}: perturbation {dist} exceeds ε={eps}");
            int predicted = AdversarialKit.ArgMax(ort.RunSingle(x).ToFloatArray());
            Assert.Equal((int)rec["productionPrediction"]!, predicted);
            if (target is { } t) Assert.Equal(t, predicted);
            else Assert.NotEqual(Labels[index], predicted);
        }
    }

    [Fact]
    public void Pgd_finds_confirmed_counterexamples_at_large_epsilon()
    {
        var run = AdversarialKit.Execute("digits-mlp.onnx", """
            samples: 24
            threat: { norm: linf, epsilon: 0.3 }
            search: [ { method: pgd, steps: 20, restarts: 1 } ]
            require: { robustAccuracy: { min: 0.9 } }
            """, runtime: Production);
        var r = run.Result;
        Assert.Equal(Verdict.Fail, r.Verdict);
        Assert.True(r.Metrics["counterexamples"] >= 18, r.Summary);
        Assert.Equal(r.Metrics["counterexamples"], run.Counterexamples.Count);
        Assert.Equal(24, r.Metrics["samples"]);
        Assert.Equal(r.Metrics["robust"] / 24, r.Metrics["robustAccuracy"]);
        Assert.Equal(24, r.Metrics["robust"] + r.Metrics["counterexamples"] + r.Metrics["cleanErrors"]);
        Assert.Equal(r.Metrics["counterexamples"], r.Metrics["found.pgd"]);
        var (lo, hi) = Statistics.WilsonInterval((int)r.Metrics["robust"], 24);
        Assert.Equal(lo, r.Metrics["robustAccuracyLower"]);
        Assert.Equal(hi, r.Metrics["robustAccuracyUpper"]);
        Assert.Contains("PGD 20×1", r.Coverage);
        Assert.Contains("L∞ ε=0.3", r.Coverage);
        Assert.Equal(r.BudgetUsed["pgd.queries"], r.BudgetUsed["queries"]);
        Assert.True(r.BudgetUsed["pgd.queries"] <= 24 * 21);
        // Batched gradient passes (a sample leaves the batch once broken), timed with the first apart.
        var passes = (System.Text.Json.Nodes.JsonObject)r.Details["gradientPasses"]!;
        Assert.InRange((long)passes["count"]!, 2, r.BudgetUsed["pgd.gradients"]);
        Assert.True((double)passes["firstMs"]! > 0 && (double)passes["laterMeanMs"]! > 0, passes.ToJsonString());
        Assert.Contains(r.Evidence, e => e.Path.EndsWith("counterexamples.json", StringComparison.Ordinal));
        Assert.Contains(r.Evidence, e => e.Path.EndsWith("counterexamples-logits-production.npy", StringComparison.Ordinal));
        AssertEvidenceHolds(run, "digits-mlp.onnx", 0.3, linf: true);
    }

    [Theory]
    [InlineData("{ method: apgd, steps: 20 }", "linf", 0.3)]
    [InlineData("{ method: square, queries: 300 }", "linf", 0.3)]
    [InlineData("{ method: pgd, steps: 20 }", "l2", 2.5)]
    [InlineData("{ method: apgd, steps: 20 }", "l2", 2.5)]
    [InlineData("{ method: square, queries: 300 }", "l2", 2.5)]
    public void Each_method_finds_counterexamples(string method, string norm, double eps)
    {
        var run = AdversarialKit.Execute("digits-cnn.onnx", $$"""
            samples: 16
            threat: { norm: {{norm}}, epsilon: {{eps}} }
            search: [ {{method}} ]
            require: { robustAccuracy: { min: 0.0 } }
            """, runtime: Production);
        Assert.True(run.Result.Metrics["attackSuccessRate"] >= 0.75, run.Result.Summary);
        AssertEvidenceHolds(run, "digits-cnn.onnx", eps, linf: norm == "linf");
    }

    [Theory]
    [InlineData("digits-mlp.onnx")]
    [InlineData("digits-cnn.onnx")]
    public void Gradient_masking_sanity_whole_input_range_gives_zero_robust_accuracy(string model)
    {
        var run = AdversarialKit.Execute(model, """
            samples: 16
            threat: { norm: linf, epsilon: 1.0 }
            search: [ { method: pgd, steps: 10, restarts: 1 } ]
            require: { robustAccuracy: { max: 0.0 } }
            """);
        Assert.Equal(0.0, run.Result.Metrics["robustAccuracy"]);
        Assert.Equal(Verdict.Pass, run.Result.Verdict);
    }

    [Fact]
    public void Robust_accuracy_is_monotone_non_increasing_in_epsilon()
    {
        const string search = "search: [ { method: pgd, steps: 20, restarts: 2 } ]";
        double previous = 1.0;
        var independent = new List<double>();
        foreach (var eps in new[] { 0.02, 0.05, 0.1, 0.2, 0.3 })
        {
            var r = AdversarialKit.Execute("digits-cnn.onnx", $"samples: 32\nthreat: {{ norm: linf, epsilon: {eps} }}\n{search}\nrequire: {{ robustAccuracy: {{ min: 0 }} }}").Result;
            double ra = r.Metrics["robustAccuracy"];
            Assert.True(ra <= previous, $"robust accuracy rose from {previous} to {ra} at ε={eps}");
            independent.Add(previous = ra);
        }
        Assert.True(independent[0] > independent[^1], "the search found nothing more at ε=0.3 than at ε=0.02");

        // The sweep gives the same kind of curve in one check; the main ε's point matches the headline metric.
        var sweep = AdversarialKit.Execute("digits-cnn.onnx", $"samples: 32\nthreat: {{ norm: linf, epsilon: 0.1 }}\nsweep: [0.3, 0.02, 0.05, 0.2]\n{search}\nrequire: {{ robustAccuracy: {{ min: 0 }} }}").Result;
        var curve = sweep.Details["curve"]!.AsArray();
        Assert.Equal([0.02, 0.05, 0.1, 0.2, 0.3], curve.Select(p => (double)p!["epsilon"]!));
        var points = curve.Select(p => (double)p!["robustAccuracy"]!).ToList();
        for (int i = 1; i < points.Count; i++) Assert.True(points[i] <= points[i - 1]);
        Assert.Equal(sweep.Metrics["robustAccuracy"], points[2]);
        Assert.All(curve, p => Assert.Equal(32, (int)p!["samples"]!));
    }

    [Fact]
    public void Targeted_search_reaches_class_0_on_the_trojaned_cnn()
    {
        var run = AdversarialKit.Execute("digits-cnn-trojan.onnx", """
            samples: 30
            threat: { norm: linf, epsilon: 0.3 }
            goal: { type: targeted, targetClass: 0 }
            search: [ { method: pgd, steps: 30, restarts: 1 } ]
            require: { attackSuccessRate: { max: 0.1 } }
            """, runtime: Production);
        var r = run.Result;
        int zeros = Labels.Take(30).Count(l => l == 0);
        Assert.Equal(30 - zeros, r.Metrics["samples"]); // samples already of class 0 are excluded
        Assert.True(r.Metrics["attackSuccessRate"] >= 0.8, r.Summary);
        Assert.Equal(Verdict.Fail, r.Verdict);
        Assert.Contains("targeted (class 0)", r.Coverage);
        AssertEvidenceHolds(run, "digits-cnn-trojan.onnx", 0.3, linf: true, target: 0);
    }

    [Fact]
    public void Exhausted_query_budget_leaves_samples_undecided_and_the_check_inconclusive()
    {
        var run = AdversarialKit.Execute("digits-cnn.onnx", """
            samples: 20
            threat: { norm: linf, epsilon: 0.02 }
            search: [ { method: pgd, steps: 40, restarts: 1 } ]
            budget: { queries: 300 }
            require: { robustAccuracy: { min: 0.5 } }
            """);
        var r = run.Result;
        Assert.Equal(Verdict.Inconclusive, r.Verdict);
        Assert.True(r.Metrics["undecided"] > 0);
        Assert.False(r.Metrics.ContainsKey("robustAccuracy")); // not measured, so not reported as if it were
        Assert.True(r.BudgetUsed["queries"] <= 300);
        Assert.Contains(r.Reasons, x => x.Contains("query budget of 300", StringComparison.Ordinal));
        Assert.Contains("not decided", r.Coverage);
        var outcomes = JsonNode.Parse(File.ReadAllText(Path.Combine(run.CheckDir, "samples.json")))!.AsArray();
        Assert.Equal(20, outcomes.Count);
        Assert.Equal((int)r.Metrics["undecided"], outcomes.Count(o => (string)o!["outcome"]! == "undecided"));
    }

    [Fact]
    public void Exhausted_wall_time_is_inconclusive()
    {
        var r = AdversarialKit.Execute("digits-cnn.onnx", """
            samples: 40
            threat: { norm: linf, epsilon: 0.02 }
            search: [ { method: pgd, steps: 200, restarts: 5 } ]
            budget: { wallTime: 1ms }
            require: { robustAccuracy: { min: 0.5 } }
            """).Result;
        Assert.Equal(Verdict.Inconclusive, r.Verdict);
        Assert.Contains(r.Reasons, x => x.Contains("wall-time", StringComparison.Ordinal));
    }

    [Fact]
    public void Exhausted_budget_still_fails_when_the_counterexamples_found_already_decide_it()
    {
        var r = AdversarialKit.Execute("digits-mlp.onnx", """
            samples: 200
            threat: { norm: linf, epsilon: 0.5 }
            search: [ { method: pgd, steps: 40, restarts: 1, stepSize: 0.25 } ]
            budget: { queries: 100 }
            require: { robustAccuracy: { min: 0.95 } }
            """).Result;
        // The budget covers about one batched evaluation: most samples stay undecided, but the violations found
        // already exceed the 5% the requirement allows, whatever the undecided samples would have shown.
        Assert.True(r.Metrics["undecided"] > 100, r.Summary);
        Assert.True(r.Metrics["counterexamples"] + r.Metrics["cleanErrors"] > 10, r.Summary);
        Assert.False(r.Metrics.ContainsKey("robustAccuracy"));
        Assert.Equal(Verdict.Fail, r.Verdict);
    }

    [Fact]
    public void Confidence_judges_the_pessimistic_end_of_the_interval()
    {
        const string body = """
            samples: 40
            threat: { norm: linf, epsilon: 0.02 }
            search: [ { method: pgd, steps: 10, restarts: 1 } ]
            require: { robustAccuracy: { min: 0.85 } }
            """;
        var point = AdversarialKit.Execute("digits-cnn.onnx", body).Result;
        var withCi = AdversarialKit.Execute("digits-cnn.onnx", body + "\nconfidence: 0.95").Result;
        Assert.Equal(point.Metrics["robustAccuracy"], withCi.Metrics["robustAccuracy"]);
        Assert.True(point.Metrics["robustAccuracy"] >= 0.85, point.Summary); // the point estimate passes...
        Assert.Equal(Verdict.Pass, point.Verdict);
        Assert.True(withCi.Metrics["robustAccuracyLower"] < 0.85);           // ...the 95% lower bound does not
        Assert.Equal(Verdict.Fail, withCi.Verdict);
        Assert.Equal(withCi.Metrics["robustAccuracyLower"], withCi.Requirements.Single().Value);
    }

    [Fact]
    public void Same_seed_reproduces_bit_identical_results_and_another_seed_does_not()
    {
        const string body = """
            samples: 16
            threat: { norm: linf, epsilon: 0.15 }
            search:
              - { method: pgd, steps: 8, restarts: 2 }
              - { method: apgd, steps: 8 }
              - { method: square, queries: 60 }
            require: { robustAccuracy: { min: 0 } }
            """;
        string Fingerprint(AdversarialKit.Run run) =>
            string.Join("|", run.Result.Metrics.Select(kv => $"{kv.Key}={kv.Value:R}")) + "#" +
            string.Join("|", run.Result.BudgetUsed.Where(kv => kv.Key != "wallTimeMs").Select(kv => $"{kv.Key}={kv.Value}")) + "#" +
            string.Join("|", Directory.GetFiles(run.CheckDir).Order(StringComparer.Ordinal)
                .Select(f => Path.GetFileName(f) + ":" + Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))));
        var a = Fingerprint(AdversarialKit.Execute("digits-cnn.onnx", body, seed: 99));
        var b = Fingerprint(AdversarialKit.Execute("digits-cnn.onnx", body, seed: 99));
        var c = Fingerprint(AdversarialKit.Execute("digits-cnn.onnx", body, seed: 100));
        Assert.Contains("cex-", a);
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void Missing_production_runtime_makes_the_check_inconclusive_not_a_pass()
    {
        var r = AdversarialKit.Execute("digits-cnn.onnx", """
            samples: 8
            threat: { norm: linf, epsilon: 0.01 }
            search: [ { method: pgd, steps: 5 } ]
            require: { robustAccuracy: { min: 0 } }
            """, runtime: "onnxruntime", openProduction: false, productionReason: "ONNX Runtime is not available in this build of Gate").Result;
        Assert.Equal(Verdict.Inconclusive, r.Verdict);
        Assert.Contains(r.Reasons, x => x.Contains("ONNX Runtime is not available", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("goal: { type: targeted }", "targetClass")]
    [InlineData("goal: { targetClass: 3 }", "targeted")]
    [InlineData("search: [ { method: square, steps: 10 } ]", "queries")]
    [InlineData("search: [ { method: pgd, queries: 10 } ]", "steps × restarts")]
    [InlineData("indices: [1, 2]", "not both")]
    public void Bad_options_are_rejected_at_their_line_before_anything_runs(string extra, string expected)
    {
        string body = "samples: 4\nthreat: { norm: linf, epsilon: 0.1 }\n" +
            (extra.StartsWith("search", StringComparison.Ordinal) ? "" : "search: [ { method: pgd } ]\n") + extra + "\nrequire: { robustAccuracy: { min: 0 } }";
        var policy = AdversarialKit.WritePolicy(AdversarialKit.PolicyYaml(body), out _);
        var model = OnnxModelLoader.Load(TestPaths.FixtureModel("digits-mlp.onnx"));
        var e = Assert.Throws<PolicyException>(() => Gate.Core.Plan.CheckPlan.Create(policy, model));
        Assert.Contains(e.Errors, err => err.Message.Contains(expected, StringComparison.Ordinal) && err.Location.Line > 15);
    }

    [Fact]
    public void Indices_select_exactly_those_samples()
    {
        var run = AdversarialKit.Execute("digits-mlp.onnx", """
            indices: [5, 100, 359]
            threat: { norm: linf, epsilon: 0.4 }
            search: [ { method: pgd, steps: 20 } ]
            require: { robustAccuracy: { min: 0 } }
            """);
        Assert.Equal(3, run.Result.Metrics["samples"]);
        Assert.All(run.Counterexamples, c => Assert.Contains((int)c!["sampleIndex"]!, new[] { 5, 100, 359 }));
        Assert.Equal(3, run.Counterexamples.Count);
    }

    [Fact]
    public void Progress_is_reported_per_method_in_queries_and_matches_the_budget_used()
    {
        var log = new AdversarialKit.ProgressLog();
        var r = AdversarialKit.Execute("digits-cnn.onnx", """
            samples: 12
            threat: { norm: linf, epsilon: 0.05 }
            search: [ { method: pgd, steps: 5, restarts: 2 }, { method: square, queries: 30 } ]
            require: { robustAccuracy: { min: 0 } }
            """, progress: log).Result;
        foreach (var method in new[] { "pgd", "square" })
        {
            var updates = log.Updates.Where(u => u.Task == method).ToList();
            Assert.NotEmpty(updates);
            Assert.All(updates, u => { Assert.Equal("robustness", u.CheckId); Assert.Equal("queries", u.Unit); Assert.True(u.Done <= u.Total); });
            Assert.Equal(r.BudgetUsed[$"{method}.queries"], updates[^1].Done);
            Assert.True(updates.Select(u => u.Done).SequenceEqual(updates.Select(u => u.Done).Order()));
        }
        Assert.Equal((12 - r.Metrics["cleanErrors"]) * 2 * 6, log.Updates.First(u => u.Task == "pgd").Total); // attacked samples × restarts × (steps + 1)
        Assert.Equal(r.BudgetUsed["queries"], r.BudgetUsed["pgd.queries"] + r.BudgetUsed["square.queries"]);
    }

    [Fact]
    public void Clean_inputs_outside_the_declared_range_are_bad_input_not_robust()
    {
        // Declared range [0, 0.5] but the digits reach 1.0: no point of any ball would be admitted.
        var yaml = AdversarialKit.PolicyYaml("""
            samples: 4
            threat: { norm: linf, epsilon: 0.1 }
            search: [ { method: pgd, steps: 2 } ]
            require: { robustAccuracy: { min: 0 } }
            """).Replace("range: [0.0, 1.0]", "range: [0.0, 0.5]", StringComparison.Ordinal);
        var policy = AdversarialKit.WritePolicy(yaml, out var dir);
        var model = OnnxModelLoader.Load(TestPaths.FixtureModel("digits-mlp.onnx"));
        // Refused at plan time (dataset sanity), before any search could call such a sample robust.
        var e = Assert.Throws<PolicyException>(() => Gate.Core.Plan.CheckPlan.Create(policy, model));
        Assert.Contains("is outside the range [0, 0.5] declared for input 'input'", e.Message);
    }
}
