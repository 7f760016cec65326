using System.Text;
using Gate.Core.Governance;
using Gate.Core.Policy;

namespace Gate.Tests.Governance;

public class PolicyLintTests
{
    /// <summary>A strong release policy: lint must find nothing. Each test weakens one setting.</summary>
    internal const string Strong = """
        apiVersion: gate/v1
        kind: DeploymentPolicy
        metadata:
          name: strong
          release: true
        spec:
          model:
            format: onnx
            inputs:
              input: { shape: [-1, 1, 8, 8], range: [0.0, 1.0] }
          sandbox:
            isolation: container
          datasets:
            test:
              inputs: x.npy
              labels: y.npy
              sha256: { inputs: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, labels: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb }
          checks:
            - id: graph
              type: static-inspection
              allowOps: [Conv, Relu, Gemm]
            - id: accuracy
              type: accuracy
              dataset: test
              require: { min: 0.95 }
            - id: robustness
              type: adversarial
              dataset: test
              samples: 100
              threat: { norm: linf, epsilon: 0.05 }
              search:
                - { method: pgd, steps: 40, restarts: 5 }
                - { method: square, queries: 1000 }
              budget: { queries: 125000, wallTime: 5m }
              require: { robustAccuracy: { min: 0.5 } }
            - id: probe
              type: linear-probe
              dataset: test
              require: { accuracy: { max: 0.7 } }
          decision:
            onInconclusive: reject
        """;

    internal static DeploymentPolicy Parse(string yaml) => PolicyLoader.Parse(Encoding.UTF8.GetBytes(yaml), "p.yaml");

    private static int LineOf(string yaml, string text) =>
        yaml.Split('\n').Select((l, i) => (l, i)).First(x => x.l.Contains(text, StringComparison.Ordinal)).i + 1;

    [Fact]
    public void Strong_policy_is_clean()
    {
        var r = PolicyLint.Lint(Parse(Strong));
        Assert.Empty(r.Errors);
        Assert.Empty(r.Warnings);
        Assert.True(r.Clean);
    }

    public static TheoryData<string, string, string, string, string> Weakenings => new()
    {
        // name, find, replace, expected message fragment, text on the line the warning must point at
        { "zero restarts", "restarts: 5", "restarts: 0", "zero restarts", "restarts: 0" },
        { "tiny epsilon", "epsilon: 0.05", "epsilon: 0.0005", "proves almost nothing", "epsilon: 0.0005" },
        { "vacuous max", "accuracy: { max: 0.7 }", "accuracy: { max: 1.0 }", "max 1.0 on accuracy is vacuous", "max: 1.0" },
        { "vacuous min (shorthand)", "require: { min: 0.95 }", "require: { min: 0 }", "min 0 on accuracy is vacuous", "require: { min: 0 }" },
        { "vacuous min", "robustAccuracy: { min: 0.5 }", "robustAccuracy: { min: 0.0 }", "min 0.0 on robustAccuracy is vacuous", "robustAccuracy" },
        { "budget below samples × search", "queries: 125000", "queries: 100000", "cannot reach every sample: 100 samples × 1205", "queries: 100000" },
        { "release tolerates inconclusive", "onInconclusive: reject", "onInconclusive: inconclusive", "lets INCONCLUSIVE through", "onInconclusive" },
        { "release with process isolation", "isolation: container", "isolation: process", "isolation 'process'", "isolation: process" },
        { "too few samples", "samples: 100", "samples: 10", "too few", "samples: 10" },
        { "check without require", "type: linear-probe\n      dataset: test\n      require: { accuracy: { max: 0.7 } }\n", "type: representation\n      dataset: test\n", "has no require block", "id: probe" },
    };

    [Theory]
    [MemberData(nameof(Weakenings))]
    public void Each_weak_setting_is_warned_at_its_line(string name, string find, string replace, string message, string lineText)
    {
        Assert.Contains(find, Strong);
        var yaml = Strong.Replace(find, replace);
        var r = PolicyLint.Lint(Parse(yaml));
        Assert.Empty(r.Errors);
        var w = Assert.Single(r.Warnings);
        Assert.Contains(message, w.Message);
        Assert.True(w.IsWarning);
        Assert.Equal(LineOf(yaml, lineText), w.Location.Line);
        Assert.StartsWith("p.yaml:", w.ToString());
        Assert.True(r.Errors.Count == 0 && r.Warnings.Count > 0);
        _ = name;
    }

    [Fact]
    public void Advisory_only_policy_is_warned_that_it_can_never_approve()
    {
        var yaml = Strong.Replace("type: static-inspection", "type: static-inspection\n      enforcement: advisory")
            .Replace("type: accuracy", "type: accuracy\n      enforcement: advisory")
            .Replace("type: adversarial", "type: adversarial\n      enforcement: advisory")
            .Replace("type: linear-probe", "type: linear-probe\n      enforcement: advisory");
        var w = Assert.Single(PolicyLint.Lint(Parse(yaml)).Warnings);
        Assert.Contains("can never be APPROVE", w.Message);
    }

    [Fact]
    public void Release_only_warnings_do_not_apply_to_other_policies()
    {
        var yaml = Strong.Replace("release: true", "release: false").Replace("onInconclusive: reject", "onInconclusive: inconclusive").Replace("isolation: container", "isolation: process");
        Assert.Empty(PolicyLint.Lint(Parse(yaml)).Warnings);
    }

    [Fact]
    public void Schema_errors_are_errors_with_file_line_col_and_exit_3()
    {
        var dir = Gate.Tests.Support.TestPaths.TempDir("gate-lint");
        var path = Path.Combine(dir, "bad.yaml");
        var yaml = Strong.Replace("epsilon: 0.05", "epsilon: 0").Replace("restarts: 5", "restart: 5");
        File.WriteAllText(path, yaml);
        var r = PolicyLint.Lint(path);
        Assert.NotEmpty(r.Errors);
        Assert.Contains(r.Errors, e => e.Location.Line == LineOf(yaml, "epsilon: 0") && e.Message.Contains("must be > 0"));
        Assert.Contains(r.Errors, e => e.Location.Line == LineOf(yaml, "restart: 5") && e.Message.Contains("unknown key 'restart'"));
        Assert.All(r.Errors, e => Assert.StartsWith(path + ":", e.ToString()));
    }

    [Fact]
    public void Example_policies_in_the_repository_validate()
    {
        foreach (var file in Directory.GetFiles(Path.Combine(Gate.Tests.Support.TestPaths.RepoRoot, "policies"), "*.yaml"))
            Assert.Empty(PolicyLint.Lint(file).Errors);
    }
}
