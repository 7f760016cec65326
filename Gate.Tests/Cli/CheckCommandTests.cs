using System.Text.Json.Nodes;
using Gate.Tests.Support;

namespace Gate.Tests.Cli;

/// <summary>`gate check` end to end, run as a separate process.</summary>
public class CheckCommandTests
{
    private static string ReleasePolicy => Path.Combine(TestPaths.RepoRoot, "policies", "digits-release.yaml");

    /// <summary>The one end-to-end run of this class as a real process (the exit status as CI sees it); the rest run in-process.</summary>
    [Fact]
    public void Writes_decision_json_and_prints_the_table()
    {
        var dir = TestPaths.TempDir();
        var r = GateProcess.Run("check", "--model", Path.Combine(TestPaths.RepoRoot, "examples", "digits", "digits-cnn.onnx"), "--policy", ReleasePolicy, "--out", dir);
        // The clean CNN passes every check of the release policy (MANIFEST: 98.06% accuracy, no backdoor).
        Assert.True(r.ExitCode == 0, r.All);
        Assert.Contains("graph", r.Stdout);
        Assert.Contains("Decision:", r.Stdout);
        var doc = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "decision.json")))!;
        Assert.Equal("d414327d70c58040d60357c2c80c69de55fe62caaa138f3c58833f9f305ace60", doc["model"]!["sha256"]!.GetValue<string>());
        Assert.Equal(64, doc["policy"]!["sha256"]!.GetValue<string>().Length);
        Assert.False(doc.AsObject().ContainsKey("exitCode"), "decision.json carries the CLI's exit code");
        var checks = doc["checks"]!.AsArray();
        Assert.Equal(["graph", "accuracy", "robustness", "backdoor"], checks.Select(c => c!["id"]!.GetValue<string>()));
        Assert.All(checks, c => Assert.Equal("pass", c!["verdict"]!.GetValue<string>()));
        Assert.Equal("approve", doc["decision"]!.GetValue<string>());
        Assert.Equal("onnxruntime", doc["runtime"]!["name"]!.GetValue<string>());
        foreach (var f in new[] { "report.html", "summary.md", "junit.xml" }) Assert.True(File.Exists(Path.Combine(dir, f)), f);
        Assert.False(string.IsNullOrEmpty(doc["gate"]!["version"]!.GetValue<string>()));
    }

    [Fact]
    public void A_model_outside_the_allowed_operators_is_rejected()
    {
        // The MLP uses Gemm/Relu/Flatten only; restrict the allow list so that static inspection must fail.
        var dir = TestPaths.TempDir();
        var policy = Path.Combine(dir, "strict.yaml");
        File.WriteAllText(policy, File.ReadAllText(ReleasePolicy)
            .Replace("allowOps: [Conv, Relu, MaxPool, Flatten, Gemm]", "allowOps: [Conv, Relu, MaxPool, Flatten]")
            .Replace("../examples/", Path.Combine(TestPaths.RepoRoot, "examples") + "/"));
        var r = GateCli.Run("check", "--model", TestPaths.FixtureModel("digits-mlp.onnx"), "--policy", policy, "--out", dir, "--json");
        Assert.Equal(1, r.ExitCode);
        var doc = JsonNode.Parse(r.Stdout)!;
        Assert.Equal("reject", doc["decision"]!.GetValue<string>());
        Assert.Contains("operators outside the allow list: Gemm", doc["checks"]![0]!["summary"]!.GetValue<string>());
    }

    [Fact]
    public void Allowed_operators_may_be_domain_qualified()
    {
        // "ai.onnx:Gemm" names the default domain's Gemm: the MLP (Gemm/Relu/Flatten) is inside this list.
        var dir = TestPaths.TempDir();
        var policy = Path.Combine(dir, "qualified.yaml");
        File.WriteAllText(policy, File.ReadAllText(ReleasePolicy)
            .Replace("allowOps: [Conv, Relu, MaxPool, Flatten, Gemm]", "allowOps: [ai.onnx:Gemm, ai.onnx:Relu, Flatten, com.microsoft:FusedGemm]")
            .Replace("../examples/", Path.Combine(TestPaths.RepoRoot, "examples") + "/"));
        var r = GateProcess.Run("check", "--model", TestPaths.FixtureModel("digits-mlp.onnx"), "--policy", policy, "--out", dir, "--json");
        var doc = JsonNode.Parse(r.Stdout)!;
        var graph = doc["checks"]![0]!;
        Assert.True(graph["verdict"]!.GetValue<string>() == "pass", graph.ToJsonString());
    }

    [Fact]
    public void Usage_errors_exit_3()
    {
        Assert.Equal(3, GateCli.Run("check", "--model").ExitCode);
        Assert.Equal(3, GateCli.Run("frobnicate").ExitCode);
        var missing = GateCli.Run("check", "--model", "/nonexistent.onnx", "--policy", ReleasePolicy);
        Assert.Equal(3, missing.ExitCode);
        Assert.Contains("/nonexistent.onnx: model file not found", missing.Stderr);
    }

    [Fact]
    public void Missing_dataset_file_is_bad_input_naming_the_dataset()
    {
        var dir = TestPaths.TempDir();
        var r = GateCli.Run("check", "--model", TestPaths.FixtureModel("digits-cnn.onnx"), "--policy", ReleasePolicy, "--out", dir, "--data", "test=/nope/x.npy");
        Assert.Equal(3, r.ExitCode);
        // The error is about the override the user gave: the CLI names it by its flag, as typed.
        Assert.Contains("spec.datasets.test.inputs: --data test=/nope/x.npy: file not found: /nope/x.npy", r.Stderr);
    }

    [Fact]
    public void Policy_input_that_the_model_lacks_is_bad_input()
    {
        var r = GateCli.Run("check", "--model", TestPaths.FixtureModel("absent-supervisor-honest.onnx"), "--policy", ReleasePolicy, "--out", TestPaths.TempDir());
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("spec.model.inputs.input: the model has no input 'input' (model inputs: obs)", r.Stderr);
    }

    [Fact]
    public void Help_teaches_the_exit_codes()
    {
        var r = GateCli.Run("check", "--help");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("0 APPROVE, 1 REJECT, 2 INCONCLUSIVE, 3 bad input", r.Stdout);
    }
}
