using Gate.Core.Governance;

namespace Gate.Tests.Governance;

/// <summary>A corpus of policy edits, each with the classification a governance reviewer would give it.</summary>
public class PolicyDiffTests
{
    private const string Base = PolicyLintTests.Strong;
    private const string Trojan = "    - id: trojan\n      type: trojan-scan\n      dataset: test\n";

    public static TheoryData<string, string, string, ChangeKind, string> Corpus => new()
    {
        // name, find, replace (in the base policy), expected classification, path of the single change
        { "ε lowered", "epsilon: 0.05", "epsilon: 0.03", ChangeKind.Weakening, "spec.checks[robustness].threat.epsilon" },
        { "ε raised", "epsilon: 0.05", "epsilon: 0.08", ChangeKind.Strengthening, "spec.checks[robustness].threat.epsilon" },
        { "fewer restarts", "restarts: 5", "restarts: 2", ChangeKind.Weakening, "spec.checks[robustness].search[pgd].restarts" },
        { "more PGD steps", "steps: 40", "steps: 100", ChangeKind.Strengthening, "spec.checks[robustness].search[pgd].steps" },
        { "fewer square queries", "queries: 1000 }", "queries: 500 }", ChangeKind.Weakening, "spec.checks[robustness].search[square].queries" },
        { "attack method removed", "        - { method: square, queries: 1000 }\n", "", ChangeKind.Weakening, "spec.checks[robustness].search[square]" },
        { "attack method added", "        - { method: square, queries: 1000 }\n", "        - { method: square, queries: 1000 }\n        - { method: apgd, steps: 50 }\n", ChangeKind.Strengthening, "spec.checks[robustness].search[apgd]" },
        { "query budget down", "queries: 125000", "queries: 60000", ChangeKind.Weakening, "spec.checks[robustness].budget.queries" },
        { "wall time down", "wallTime: 5m", "wallTime: 30s", ChangeKind.Weakening, "spec.checks[robustness].budget.wallTime" },
        { "wall time up (other unit)", "wallTime: 5m", "wallTime: 1h", ChangeKind.Strengthening, "spec.checks[robustness].budget.wallTime" },
        { "fewer samples", "samples: 100", "samples: 50", ChangeKind.Weakening, "spec.checks[robustness].samples" },
        { "samples limit dropped (whole dataset)", "      samples: 100\n", "", ChangeKind.Strengthening, "spec.checks[robustness].samples" },
        { "robust accuracy threshold lowered", "robustAccuracy: { min: 0.5 }", "robustAccuracy: { min: 0.4 }", ChangeKind.Weakening, "spec.checks[robustness].require.robustAccuracy.min" },
        { "accuracy threshold raised (shorthand)", "require: { min: 0.95 }", "require: { min: 0.97 }", ChangeKind.Strengthening, "spec.checks[accuracy].require.min" },
        { "max threshold loosened", "accuracy: { max: 0.7 }", "accuracy: { max: 0.8 }", ChangeKind.Weakening, "spec.checks[probe].require.accuracy.max" },
        { "upper bound added", "robustAccuracy: { min: 0.5 }", "robustAccuracy: { min: 0.5 }, attackSuccessRate: { max: 0.4 }", ChangeKind.Strengthening, "spec.checks[robustness].require.attackSuccessRate.max" },
        { "check removed", "    - id: probe\n      type: linear-probe\n      dataset: test\n      require: { accuracy: { max: 0.7 } }\n", "", ChangeKind.Weakening, "spec.checks[probe]" },
        { "check added", "  decision:", Trojan + "  decision:", ChangeKind.Strengthening, "spec.checks[trojan]" },
        { "advisory check added", "  decision:", Trojan + "      enforcement: advisory\n  decision:", ChangeKind.Neutral, "spec.checks[trojan]" },
        { "check made advisory", "type: accuracy\n", "type: accuracy\n      enforcement: advisory\n", ChangeKind.Weakening, "spec.checks[accuracy].enforcement" },
        { "isolation downgraded", "isolation: container", "isolation: process-netns", ChangeKind.Weakening, "spec.sandbox.isolation" },
        { "isolation removed (default container: same effect)", "  sandbox:\n    isolation: container\n", "", ChangeKind.Neutral, "spec.sandbox.isolation" },
        { "inconclusive handling relaxed", "onInconclusive: reject", "onInconclusive: inconclusive", ChangeKind.Weakening, "spec.decision.onInconclusive" },
        { "operator allow-list grown", "allowOps: [Conv, Relu, Gemm]", "allowOps: [Conv, Relu, Gemm, Loop]", ChangeKind.Weakening, "spec.checks[graph].allowOps" },
        { "operator allow-list shrunk", "allowOps: [Conv, Relu, Gemm]", "allowOps: [Conv, Relu]", ChangeKind.Strengthening, "spec.checks[graph].allowOps" },
        { "operator allow-list dropped", "      allowOps: [Conv, Relu, Gemm]\n", "", ChangeKind.Weakening, "spec.checks[graph].allowOps" },
        { "parameter cap added", "allowOps: [Conv, Relu, Gemm]", "allowOps: [Conv, Relu, Gemm]\n      maxParameters: 50000", ChangeKind.Strengthening, "spec.checks[graph].maxParameters" },
        { "custom domains allowed", "allowOps: [Conv, Relu, Gemm]", "allowOps: [Conv, Relu, Gemm]\n      allowCustomDomains: true", ChangeKind.Weakening, "spec.checks[graph].allowCustomDomains" },
        { "release flag dropped", "  release: true\n", "", ChangeKind.Weakening, "metadata.release" },
        { "judged on the built-in engine", "  sandbox:", "  runtime: builtin\n  sandbox:", ChangeKind.Weakening, "spec.runtime" },
        { "threat norm changed (incomparable)", "norm: linf", "norm: l2", ChangeKind.Weakening, "spec.checks[robustness].threat.norm" },
        { "test data replaced", "inputs: x.npy", "inputs: x2.npy", ChangeKind.Weakening, "spec.datasets.test.inputs" },
        { "test labels replaced", "labels: y.npy", "labels: y2.npy", ChangeKind.Weakening, "spec.datasets.test.labels" },
        { "confidence level required", "require: { min: 0.95 }", "require: { min: 0.95 }\n      confidence: 0.95", ChangeKind.Strengthening, "spec.checks[accuracy].confidence" },
        { "input range widened", "range: [0.0, 1.0]", "range: [-1.0, 1.0]", ChangeKind.Strengthening, "spec.model.inputs.input.range" },
        { "description added", "  name: strong\n", "  name: strong\n  description: the strong one\n", ChangeKind.Neutral, "metadata.description" },
        { "seed changed", "  sandbox:", "  seed: 99\n  sandbox:", ChangeKind.Neutral, "spec.seed" },
        { "checks reordered", "    - id: graph\n      type: static-inspection\n      allowOps: [Conv, Relu, Gemm]\n", "", ChangeKind.Neutral, "" }, // special-cased below
    };

    [Theory]
    [MemberData(nameof(Corpus))]
    public void Each_edit_is_classified(string name, string find, string replace, ChangeKind expected, string path)
    {
        Assert.Contains(find, Base);
        var oldPolicy = PolicyLintTests.Parse(Base);
        string edited = Base.Replace(find, replace);
        if (name == "checks reordered") edited = edited.Replace("  decision:", find + "  decision:");
        var changes = PolicyDiff.Compare(oldPolicy, PolicyLintTests.Parse(edited));
        if (name == "checks reordered") { Assert.Empty(changes); return; }
        var change = Assert.Single(changes);
        Assert.Equal(path, change.Path);
        Assert.Equal(expected, change.Kind);
        Assert.NotNull(change.At);
        Assert.False(string.IsNullOrWhiteSpace(change.Why));
    }

    [Fact]
    public void Corpus_covers_enough_edits_of_each_kind()
    {
        var kinds = Corpus.Select(row => row.Data.Item4).ToList();
        Assert.True(kinds.Count >= 15);
        Assert.True(kinds.Count(k => k == ChangeKind.Weakening) >= 10);
        Assert.True(kinds.Count(k => k == ChangeKind.Strengthening) >= 5);
        Assert.True(kinds.Count(k => k == ChangeKind.Neutral) >= 3);
    }

    [Fact]
    public void Identical_policies_have_no_changes()
    {
        Assert.Empty(PolicyDiff.Compare(PolicyLintTests.Parse(Base), PolicyLintTests.Parse(Base)));
    }

    [Fact]
    public void Diff_is_antisymmetric_for_strength()
    {
        // Undoing a weakening is a strengthening, edit by edit.
        foreach (var row in Corpus)
        {
            var (name, find, replace, kind, _) = row.Data;
            if (kind == ChangeKind.Neutral || name is "threat norm changed (incomparable)" or "test data replaced" or "test labels replaced") continue;
            var changes = PolicyDiff.Compare(PolicyLintTests.Parse(Base.Replace(find, replace)), PolicyLintTests.Parse(Base));
            var expected = kind == ChangeKind.Weakening ? ChangeKind.Strengthening : ChangeKind.Weakening;
            Assert.True(changes.Count == 1 && changes[0].Kind == expected, $"{name} reversed: {string.Join("; ", changes.Select(c => $"{c.Kind} {c.Path}"))}");
        }
    }

    [Fact]
    public void Markdown_and_text_name_every_change()
    {
        var edited = Base.Replace("epsilon: 0.05", "epsilon: 0.03").Replace("restarts: 5", "restarts: 6").Replace("  name: strong\n", "  name: strong\n  owner: x|y\n");
        var changes = PolicyDiff.Compare(PolicyLintTests.Parse(Base), PolicyLintTests.Parse(edited));
        Assert.Equal(3, changes.Count);
        var md = PolicyDiff.RenderMarkdown(changes, "old.yaml", "new.yaml");
        Assert.Contains("WEAKENS", md);
        Assert.Contains("1 weakening, 1 strengthening, 1 neutral", md);
        var rows = md.Split('\n').Where(l => l.StartsWith("| 🔻") || l.StartsWith("| 🔺") || l.StartsWith("| ▫️")).ToList();
        Assert.Equal(3, rows.Count);
        Assert.Contains("x\\|y", md); // a pipe in a value cannot break the table
        var text = PolicyDiff.RenderText(changes, "old.yaml", "new.yaml");
        Assert.Contains("weakening     spec.checks[robustness].threat.epsilon: 0.05 → 0.03", text);
        Assert.Contains("[p.yaml:", text);
    }
}
