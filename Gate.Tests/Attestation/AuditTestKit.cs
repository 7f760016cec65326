using Gate.Core.Policy;
using System.Security.Cryptography;
using Gate.Core.Checks;
using Gate.Core.Evidence;
using Gate.Core.Runtime;
using Gate.Core.Sandbox;
using Gate.Tests.Support;

namespace Gate.Tests.Attestation;

/// <summary>Policies, sandboxes and a CLI runner shared by the decision, attestation and governance tests.</summary>
public static class AuditTestKit
{
    public static string ExampleModel => Path.Combine(TestPaths.RepoRoot, "examples", "digits", "digits-cnn.onnx");
    static string ExampleData(string f) => Path.Combine(TestPaths.RepoRoot, "examples", "digits", "data", f);

    public static string Sha256Of(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

    /// <summary>A policy with one host check (static inspection) and, optionally, one sandbox check (accuracy).</summary>
    public static string WritePolicy(string dir, bool withSandboxCheck = false, string onInconclusive = "inconclusive",
        string accuracyEnforcement = "blocking", long maxParameters = 1000000, string name = "policy.yaml")
    {
        var sandboxCheck = withSandboxCheck ? $$"""

                - id: acc
                  type: accuracy
                  enforcement: {{accuracyEnforcement}}
                  dataset: test
                  require: { min: 0.9 }
            """ : "";
        var text = $$"""
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata: { name: audit-test }
            spec:
              model:
                format: onnx
                inputs:
                  input: { shape: [-1, 1, 8, 8], range: [0.0, 1.0] }
              sandbox: { isolation: process }
              seed: 4242
              datasets:
                test: { inputs: "{{ExampleData("digits_test_x.npy")}}", labels: "{{ExampleData("digits_test_y.npy")}}" }
              checks:
                - id: graph
                  type: static-inspection
                  allowOps: [Conv, Relu, MaxPool, Flatten, Gemm]
                  maxParameters: {{maxParameters}}{{sandboxCheck}}
              decision: { onInconclusive: {{onInconclusive}} }

            """;
        var path = Path.Combine(dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    /// <summary>Runs the gate CLI in-process (see <see cref="GateCli"/>).</summary>
    public static (int Exit, string Out, string Err) RunGate(params string[] args)
    {
        var r = GateCli.Run(args);
        return (r.ExitCode, r.Stdout, r.Stderr);
    }

    public static void FlipByte(string path, int offset)
    {
        var b = File.ReadAllBytes(path);
        b[offset % b.Length] ^= 0x01;
        File.WriteAllBytes(path, b);
    }
}

/// <summary>
/// A sandbox backend whose behaviour the test scripts: it records every job it is given (to inspect what
/// crosses into a sandbox) and answers with whatever outcome the script returns, or throws.
/// </summary>
public sealed class ScriptedSandbox(IsolationLevel isolation, Func<SandboxJob, string, SandboxOutcome> script) : ISandboxBackend
{
    public List<SandboxJob> Jobs { get; } = [];
    public string Name => "scripted";
    public IsolationLevel AchievedIsolation => isolation;

    public Task<SandboxOutcome> RunAsync(SandboxJob job, string evidenceDir, IProgress<ProgressUpdate> progress, CancellationToken ct)
    {
        Jobs.Add(job);
        return Task.FromResult(script(job, evidenceDir));
    }

    public static RuntimeInfo Runtime { get; } = new("test-runtime", "1.2.3", "CPUExecutionProvider", "cpu");

    /// <summary>A sandbox that passes "acc" with metrics, budget, coverage and one evidence file written through EvidenceWriter.</summary>
    public static ScriptedSandbox Passing(IsolationLevel isolation = IsolationLevel.Process) => new(isolation, (job, evidenceDir) =>
    {
        var writer = new EvidenceWriter(evidenceDir).ForCheck("acc");
        var file = writer.WriteText("predictions.csv", "index,label,predicted\n0,3,3\n1,7,7\n", "per-sample predictions");
        var r = new CheckResult
        {
            Id = "acc", Type = "accuracy", Verdict = Verdict.Pass, Summary = "accuracy 0.98",
            Coverage = "360 of 360 test samples", Evidence = [file],
        };
        r.Metrics["accuracy"] = 0.98;
        r.BudgetUsed["samples"] = 360;
        var details = new System.Text.Json.Nodes.JsonObject { ["selfTest"] = new System.Text.Json.Nodes.JsonObject { ["network"] = "blocked" }, ["imageId"] = "sha256:test" };
        return new SandboxOutcome(true, null, [r], isolation, Runtime, details);
    });
}
