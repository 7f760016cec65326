using Gate.Tests.Support;

namespace Gate.Tests.Governance;

/// <summary>The `gate policy` commands as a user runs them: a real process, its output and its exit code.</summary>
public class PolicyCommandTests
{
    /// <summary>gate in <paramref name="workDir"/>: these tests name files relative to it, as a reviewer would.</summary>
    internal static (int Exit, string Out, string Err) Gate(string workDir, params string[] args)
    {
        var r = GateProcess.Run(args, null, TimeSpan.FromSeconds(60), workDir);
        return (r.ExitCode, r.Stdout, r.Stderr);
    }

    private static string Dir(out string strong)
    {
        var dir = TestPaths.TempDir("gate-policy-cli");
        strong = Path.Combine(dir, "strong.yaml");
        File.WriteAllText(strong, PolicyLintTests.Strong);
        return dir;
    }

    [Fact]
    public void Lint_exit_codes_are_0_clean_1_warnings_3_errors()
    {
        var dir = Dir(out _);
        File.WriteAllText(Path.Combine(dir, "weak.yaml"), PolicyLintTests.Strong.Replace("restarts: 5", "restarts: 0"));
        File.WriteAllText(Path.Combine(dir, "bad.yaml"), PolicyLintTests.Strong.Replace("epsilon: 0.05", "epsilon: -1"));

        var clean = Gate(dir, "policy", "lint", "strong.yaml");
        Assert.Equal(0, clean.Exit);
        Assert.Contains("ok, no warnings", clean.Out);

        var weak = Gate(dir, "policy", "lint", "weak.yaml");
        Assert.Equal(1, weak.Exit);
        Assert.Matches(@"weak\.yaml:\d+:\d+: warning: spec\.checks\[2\]\.search\[0\]\.restarts: zero restarts", weak.Out);

        var bad = Gate(dir, "policy", "lint", "bad.yaml");
        Assert.Equal(3, bad.Exit);
        Assert.Matches(@"bad\.yaml:\d+:\d+: error: spec\.checks\[2\]\.threat\.epsilon: must be > 0", bad.Out);
        Assert.DoesNotContain("   at ", bad.Out + bad.Err); // no stack trace

        var missing = Gate(dir, "policy", "lint", "nope.yaml");
        Assert.Equal(3, missing.Exit);
    }

    [Fact]
    public void Diff_exits_1_on_weakening_unless_allowed_and_writes_markdown()
    {
        var dir = Dir(out _);
        File.WriteAllText(Path.Combine(dir, "weaker.yaml"), PolicyLintTests.Strong.Replace("epsilon: 0.05", "epsilon: 0.02"));
        File.WriteAllText(Path.Combine(dir, "stronger.yaml"), PolicyLintTests.Strong.Replace("epsilon: 0.05", "epsilon: 0.1"));

        var weaker = Gate(dir, "policy", "diff", "strong.yaml", "weaker.yaml");
        Assert.Equal(1, weaker.Exit);
        Assert.Contains("weakening     spec.checks[robustness].threat.epsilon: 0.05 → 0.02", weaker.Out);

        var allowed = Gate(dir, "policy", "diff", "strong.yaml", "weaker.yaml", "--allow-weakening", "--format", "md");
        Assert.Equal(0, allowed.Exit);
        Assert.Contains("| 🔻 | weakening | `spec.checks[robustness].threat.epsilon` | 0.05 | 0.02 |", allowed.Out);

        Assert.Equal(0, Gate(dir, "policy", "diff", "strong.yaml", "stronger.yaml").Exit);
        Assert.Equal(3, Gate(dir, "policy", "diff", "strong.yaml", "weaker.yaml", "--format", "pdf").Exit);
    }

    [Fact]
    public void Review_writes_markdown_or_html_to_a_file()
    {
        var dir = Dir(out _);
        var r = Gate(dir, "policy", "review", "strong.yaml", "--format", "html", "--out", "review.html");
        Assert.Equal(0, r.Exit);
        var html = File.ReadAllText(Path.Combine(dir, "review.html"));
        Assert.StartsWith("<!DOCTYPE html>", html);
        Assert.Contains("What APPROVE will mean", html);
        var md = Gate(dir, "policy", "review", "strong.yaml");
        Assert.Equal(0, md.Exit);
        Assert.StartsWith("# Policy review: strong", md.Out);
    }
}
