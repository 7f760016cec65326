using Gate.Core.Policy;
using Gate.Tests.Support;

namespace Gate.Tests.Policy;

/// <summary>
/// The malformed-policy corpus (Gate.Tests/TestData/malformed-policies): each file must be refused with exit 3 and
/// a message that names the place (file:line:col and the path inside the policy) — never a stack trace.
/// </summary>
public class MalformedPolicyTests
{
    public static TheoryData<string, int, int, string> Corpus => new()
    {
        { "syntax-error.yaml", 5, 84, "YAML syntax error" },
        { "wrong-type.yaml", 14, 38, "spec.checks[1].threat.epsilon: must be a number, got string 'lots'" },
        { "unknown-key.yaml", 14, 7, "spec.checks[1].colour: unknown key 'colour'" },
        { "duplicate-key.yaml", 7, 3, "spec.seed: duplicate key 'seed' (first defined at line 6)" },
        { "alias-bomb.yaml", 4, 4, "YAML anchors (&a) are not allowed" },
        { "negative-epsilon.yaml", 14, 38, "spec.checks[1].threat.epsilon: must be > 0" },
        { "unknown-check-type.yaml", 10, 26, "spec.checks[0].type: must be one of static-inspection" },
        { "missing-dataset.yaml", 13, 16, "spec.checks[1].dataset: unknown dataset 'train' (defined: test)" },
        { "duplicate-check-id.yaml", 11, 11, "spec.checks[1].id: duplicate check id 'graph' (first used at line 10)" },
        { "empty.yaml", 1, 1, "policy file is empty" },
        { "missing-model.yaml", 5, 3, "spec.model: is required but missing" },
        { "wrong-api-version.yaml", 1, 13, "apiVersion: must be 'gate/v1'" },
        { "bad-duration.yaml", 16, 27, "spec.checks[1].budget.wallTime: 'two minutes' does not match" },
        { "zero-steps.yaml", 15, 39, "spec.checks[1].search[0].steps: must be ≥ 1" },
        { "two-documents.yaml", 17, 1, "more than one YAML document" },
        { "not-a-mapping.yaml", 1, 1, "a policy must be a mapping" },
        { "inverted-range.yaml", 5, 74, "range must be [min, max] with min < max" },
    };

    private static string PolicyPath(string file) => Path.Combine(TestPaths.RepoRoot, "Gate.Tests", "TestData", "malformed-policies", file);

    [Theory]
    [MemberData(nameof(Corpus))]
    public void Loader_reports_the_place(string file, int line, int col, string fragment)
    {
        var path = PolicyPath(file);
        var e = Assert.Throws<PolicyException>(() => PolicyLoader.Load(path));
        Assert.Contains(e.Errors, err => err.Location.Line == line && err.Location.Column == col && err.ToString().Contains(fragment, StringComparison.Ordinal));
        Assert.StartsWith($"{path}:{line}:{col}: ", e.Errors.First(err => err.Location.Line == line).ToString());
    }

    [Theory]
    [MemberData(nameof(Corpus))]
    public void Cli_exits_3_with_the_message_and_no_stack_trace(string file, int line, int col, string fragment)
    {
        var path = PolicyPath(file);
        var out_ = TestPaths.TempDir();
        var r = GateCli.Run("check", "--model", TestPaths.FixtureModel("digits-cnn.onnx"), "--policy", path, "--out", out_);
        Assert.Equal(3, r.ExitCode);
        Assert.Contains($"{path}:{line}:{col}: ", r.Stderr);
        Assert.Contains(fragment, r.Stderr);
        Assert.DoesNotContain("   at ", r.All);
        Assert.False(File.Exists(Path.Combine(out_, "decision.json")), "no decision may be written for a bad policy");
    }

    [Fact]
    public void Policy_over_one_mebibyte_is_refused_before_parsing()
    {
        var dir = TestPaths.TempDir();
        var path = Path.Combine(dir, "huge.yaml");
        File.WriteAllText(path, "apiVersion: gate/v1\n# " + new string('x', (1 << 20) + 10) + "\n");
        var e = Assert.Throws<PolicyException>(() => PolicyLoader.Load(path));
        Assert.Contains("limit is 1048576 (1 MiB)", e.Message);
    }

    [Fact]
    public void Several_errors_are_reported_together()
    {
        var text = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "policies", "digits-release.yaml"))
            .Replace("epsilon: 0.05", "epsilon: -1").Replace("steps: 40", "steps: 0");
        var e = Assert.Throws<PolicyException>(() => PolicyLoader.Parse(System.Text.Encoding.UTF8.GetBytes(text), "p.yaml"));
        Assert.Contains(e.Errors, x => x.Path.EndsWith("threat.epsilon", StringComparison.Ordinal));
        Assert.Contains(e.Errors, x => x.Path.EndsWith("search[0].steps", StringComparison.Ordinal));
    }

    [Fact]
    public void Data_override_replaces_policy_paths()
    {
        var policy = PolicyLoader.Load(Path.Combine(TestPaths.RepoRoot, "policies", "digits-release.yaml"),
            new Dictionary<string, string> { ["test"] = "/data/x.npy", ["test.labels"] = "/data/y.npy" });
        Assert.Equal("/data/x.npy", policy.Spec.Datasets["test"].InputsPath);
        Assert.Equal("/data/y.npy", policy.Spec.Datasets["test"].LabelsPath);
    }
}
