using System.Text.Json.Nodes;
using Gate.Core.Checks;
using Gate.Core.Decision;
using Gate.Core.Governance;
using Gate.Core.Report;

namespace Gate.Tests.Governance;

/// <summary>
/// Regression tests for the defects of issue 20: the governance tools disagreed with what the binders bind, because each
/// kept its own idea of a check's defaults and cost. Now all read the check type's declaration.
/// </summary>
public class DeclaredDefaultsTests
{
    private static string WithCheck(string check) => PolicyLintTests.Strong.Replace("  decision:", check + "  decision:");

    /// <summary>(a) Dropping an explicit sample count compares it with the count the check then binds, not with "unlimited".</summary>
    [Theory]
    [InlineData("trojan-scan", 100, 64)]
    [InlineData("representation", 1000, 512)]
    [InlineData("formal", 50, 20)]
    public void Removing_samples_is_compared_with_the_declared_default(string type, int explicitSamples, int boundDefault)
    {
        string extra = type == "formal" ? "      property: { type: local-robustness, epsilon: 0.01 }\n" : "";
        string with = $"    - id: extra\n      type: {type}\n      dataset: test\n{extra}      samples: {explicitSamples}\n";
        string without = $"    - id: extra\n      type: {type}\n      dataset: test\n{extra}";
        var change = Assert.Single(PolicyDiff.Compare(PolicyLintTests.Parse(WithCheck(with)), PolicyLintTests.Parse(WithCheck(without))));
        Assert.Equal("spec.checks[extra].samples", change.Path);
        Assert.Equal(ChangeKind.Weakening, change.Kind);
        // A default that scales with the model says so, with its rule (ScaledDefaultTests).
        if (type == "trojan-scan")
            Assert.Equal($"{boundDefault} (default; scaled with the model: rule {Gate.Core.Checks.TrojanScan.TrojanScanCheck.SamplesRule}; " +
                         $"{Gate.Core.Decision.BudgetRule.RuleWithFloor(Gate.Core.Checks.TrojanScan.TrojanScanCheck.SamplesFloorText)})", change.New);
        else Assert.Equal($"{boundDefault} (default)", change.New);
    }

    /// <summary>(b) Review states the sample count the check binds, not "every clean input".</summary>
    [Fact]
    public void Review_states_the_default_sample_count_of_a_trojan_scan()
    {
        var policy = PolicyLintTests.Parse(WithCheck("    - id: trojan\n      type: trojan-scan\n      dataset: test\n"));
        var md = PolicyReview.Render(policy, "md", _ => null);
        Assert.DoesNotContain("every clean input", md);
        Assert.Contains("Data: up to 64 clean inputs (default; scaled with the model: rule max(64, 4 × classes)", md);
        // The steps' default is scaled on large models too (BudgetRule), and review says so with the floor.
        Assert.Contains($"300 (default; scaled with the model: rule {Gate.Core.Decision.BudgetRule.RuleWithFloor($"{Gate.Core.Checks.TrojanScan.TrojanScanCheck.StepsFloor}")}) optimisation steps per class", md);
    }

    /// <summary>(c) Lint uses the attack methods' own cost model, default steps and queries included.</summary>
    [Fact]
    public void Lint_counts_default_steps_and_queries_with_the_methods_cost_model()
    {
        // pgd with default steps (40) and one run costs 41 queries per sample, square with default queries 1000:
        // 100 samples need 104 100 queries; the old re-implementation counted 0 per sample and said nothing.
        var yaml = PolicyLintTests.Strong
            .Replace("- { method: pgd, steps: 40, restarts: 5 }", "- { method: pgd }")
            .Replace("- { method: square, queries: 1000 }", "- { method: square }")
            .Replace("queries: 125000", "queries: 50000");
        var w = Assert.Single(PolicyLint.Lint(PolicyLintTests.Parse(yaml)).Warnings, x => x.Message.Contains("cannot reach every sample"));
        Assert.Contains("100 samples × 1041 queries per sample", w.Message);
        Assert.Equal("spec.checks[2].budget.queries", w.Path);
    }

    /// <summary>(d) An undecided sweep point is shown as undecided, and a curve that cannot be read is reported, not dropped.</summary>
    [Fact]
    public void An_undecided_sweep_point_is_drawn_as_undecided_and_a_bad_curve_is_reported()
    {
        var record = Gate.Tests.Report.SampleRecords.Full();
        var adversarial = record.Checks.Single(c => c.Type == "adversarial");
        // What the adversarial producer writes for a point with undecided samples: no value, only its bounds.
        adversarial.Details["curve"] = JsonNode.Parse("""[{"epsilon":0.01,"robustAccuracy":0.9,"robustAccuracyLower":0.85,"robustAccuracyUpper":0.93,"samples":100,"undecided":0},""" +
                                                      """{"epsilon":0.05,"robustAccuracy":null,"robustAccuracyLower":0.3,"robustAccuracyUpper":0.7,"samples":100,"undecided":12}]""");
        var html = ReportWriter.RenderHtml(record);
        Assert.Contains("Robust accuracy against ε", html);
        Assert.Contains("class=\"undecided\"", html);
        Assert.Contains("12 of 100 samples undecided", html);

        adversarial.Details["curve"] = JsonNode.Parse("""[{"epsilon":"wide","robustAccuracy":0.5}]""");
        var bad = ReportWriter.RenderHtml(record);
        Assert.Contains("The robustness curve cannot be drawn: details.curve could not be read", bad);
    }
}
