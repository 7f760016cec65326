using Gate.Core.Governance;

namespace Gate.Tests.Governance;

/// <summary>The trojan-scan ensemble's options through lint, review and diff.</summary>
public class TrojanScanPolicyTests
{
    private const string Ensemble = """
            - id: trojan
              type: trojan-scan
              dataset: test
              detectors: [neural-cleanse, tabor, mm-bd]
              steps: 300
              tabor: { steps: 300, smoothness: 0.5 }
              mmBd: { starts: 8, steps: 200 }
              falsePositiveRate: 0.1
              confirmation: 0.75
              require: { anomalyIndex: { max: 100 } }
        """;

    private static string Policy(string check) => PolicyLintTests.Strong.Replace("  decision:", check + "\n  decision:");

    [Fact]
    public void Lint_accepts_the_ensemble_options()
    {
        var r = PolicyLint.Lint(PolicyLintTests.Parse(Policy(Ensemble)));
        Assert.Empty(r.Errors);
    }

    [Fact]
    public void Lint_refuses_an_unknown_detector_with_its_location()
    {
        // The schema refuses it when the policy is loaded, at the item's line and column.
        var ex = Assert.Throws<Gate.Core.Policy.PolicyException>(() => PolicyLintTests.Parse(Policy(Ensemble.Replace("mm-bd]", "abs]"))));
        Assert.Contains("].detectors[2]: must be one of neural-cleanse, tabor, mm-bd; got 'abs'", ex.Message);
        Assert.Contains("p.yaml:", ex.Message);
    }

    [Theory]
    [InlineData("[neural-cleanse, tabor, mm-bd]", "[neural-cleanse]", "spec.checks[trojan].detectors", ChangeKind.Weakening)]
    [InlineData("[neural-cleanse, tabor, mm-bd]", "[neural-cleanse, tabor, mm-bd]\n      threshold: 9", "spec.checks[trojan].threshold", ChangeKind.Weakening)]
    [InlineData("mmBd: { starts: 8, steps: 200 }", "mmBd: { starts: 8, steps: 50 }", "spec.checks[trojan].mmBd.steps", ChangeKind.Weakening)]
    [InlineData("falsePositiveRate: 0.1", "falsePositiveRate: 0.02", "spec.checks[trojan].falsePositiveRate", ChangeKind.Weakening)]
    [InlineData("confirmation: 0.75", "confirmation: 0.5", "spec.checks[trojan].confirmation", ChangeKind.Strengthening)]
    public void Diff_classifies_ensemble_edits(string find, string replace, string path, ChangeKind kind)
    {
        var changes = PolicyDiff.Compare(PolicyLintTests.Parse(Policy(Ensemble)), PolicyLintTests.Parse(Policy(Ensemble.Replace(find, replace))));
        var change = Assert.Single(changes);
        Assert.Equal(path, change.Path);
        Assert.Equal(kind, change.Kind);
    }

    [Fact]
    public void Review_names_each_detector_and_the_calibrated_thresholds()
    {
        var md = PolicyReview.Render(PolicyLintTests.Parse(Policy(Ensemble)), "md", _ => null);
        Assert.Contains("Detectors: neural-cleanse, tabor, mm-bd", md);
        Assert.Contains("MM-BD", md);
        Assert.Contains("TABOR", md);
        Assert.Contains("flag at most 0.1 of clean reference models", md);
    }
}

/// <summary>Defaults that scale with the model are declared with their rule, and review and diff show the rule, not a bare number.</summary>
public class ScaledDefaultTests
{
    private const string Defaults = """
            - id: trojan
              type: trojan-scan
              dataset: test
              require: { anomalyIndex: { max: 100 } }
        """;

    private static string Policy(string check) => PolicyLintTests.Strong.Replace("  decision:", check + "\n  decision:");

    [Fact]
    public void Review_shows_the_scaling_rule_beside_a_default_the_model_scales()
    {
        var md = PolicyReview.Render(PolicyLintTests.Parse(Policy(Defaults)), "md", _ => null);
        Assert.Contains("up to 64 clean inputs (default; scaled with the model: rule max(64, 4 × classes)", md);
        // Set by the policy, it is the policy's number alone (the steps, still defaulted, keep their own rule).
        var set = PolicyReview.Render(PolicyLintTests.Parse(Policy(Defaults.Replace("dataset: test", "dataset: test\n      samples: 32"))), "md", _ => null);
        Assert.Contains("32 clean inputs", set);
        Assert.DoesNotContain("clean inputs (default", set);
    }

    [Fact]
    public void Diff_shows_the_scaling_rule_of_the_default_it_replaces()
    {
        var changes = PolicyDiff.Compare(PolicyLintTests.Parse(Policy(Defaults)),
            PolicyLintTests.Parse(Policy(Defaults.Replace("dataset: test", "dataset: test\n      budget: { wallTime: 2m }"))));
        var change = Assert.Single(changes);
        Assert.Equal("spec.checks[trojan].budget.wallTime", change.Path);
        Assert.Equal(ChangeKind.Weakening, change.Kind);
        Assert.Contains("5m (default; scaled with the model: rule max(5m, 30 s × classes)", change.Old);
    }
}
