using System.Text.Json.Nodes;
using Gate.Core;
using Gate.Core.Attestation;
using Gate.Core.Decision;
using Gate.Core.Report;
using Gate.Tests.Attestation;
using Gate.Tests.Support;

namespace Gate.Tests.Decision;

/// <summary><see cref="GateCheckPipeline.CheckAsync"/> is the whole of <c>gate check</c>: the CLI only parses flags and prints.</summary>
public class GateCheckPipelineTests
{
    /// <summary>
    /// Through Gate.Core alone (no CLI, no process): an earlier run's stale attestation is removed, and the run leaves
    /// decision.json, report.html, summary.md, junit.xml and an attestation that verifies against the model, policy
    /// and evidence, with --require-decision's check, as one set.
    /// </summary>
    [Fact]
    public async Task The_whole_check_runs_in_process_and_its_attestation_verifies()
    {
        var dir = TestPaths.TempDir("gate-pipeline");
        var keyPath = Path.Combine(dir, "gate.key");
        VerificationKey pub;
        using (var k = SigningKey.Generate()) { File.WriteAllText(keyPath, k.PrivatePem); pub = k.Public; }
        var policy = AuditTestKit.WritePolicy(dir, withSandboxCheck: true);
        var outDir = Path.Combine(dir, "out");
        Directory.CreateDirectory(outDir);
        File.WriteAllText(Path.Combine(outDir, DecisionAttestation.FileName), "an earlier run's attestation");
        var notices = new List<string>();

        var outcome = await new GateCheckPipeline(ScriptedSandbox.Passing()).CheckAsync(
            new GateCheckRequest(AuditTestKit.ExampleModel, policy, outDir, SigningKeyPath: keyPath), null, notices.Add, TestContext.Current.CancellationToken);

        Assert.Equal(GateDecision.Approve, outcome.Record.Decision);
        Assert.Equal(pub.KeyId, outcome.SignedBy);
        Assert.Equal(Path.Combine(outDir, "decision.json"), outcome.Written.Decision);
        var decision = JsonNode.Parse(File.ReadAllText(outcome.Written.Decision))!;
        Assert.Equal("approve", decision["decision"]!.GetValue<string>());
        Assert.Equal(["graph", "acc"], decision["checks"]!.AsArray().Select(c => c!["id"]!.GetValue<string>()));
        Assert.Contains("accuracy 0.98", File.ReadAllText(Path.Combine(outDir, ReportWriter.HtmlFile)));
        Assert.Contains("APPROVE", File.ReadAllText(Path.Combine(outDir, ReportWriter.MarkdownFile)));
        Assert.Contains("testcase", File.ReadAllText(Path.Combine(outDir, ReportWriter.JUnitFile)));
        Assert.True(File.Exists(Path.Combine(outDir, "evidence", "acc", "predictions.csv")));
        Assert.Equal(outcome.Written.Attestation, Path.Combine(outDir, DecisionAttestation.FileName));
        Assert.False(Directory.Exists(Path.Combine(outDir, OutputSet.WorkFolder)));
        Assert.Empty(notices);

        var verified = ArtifactVerifier.Verify(outcome.Written.Attestation!, pub, AuditTestKit.ExampleModel, policy,
            Path.Combine(outDir, "evidence"), new HashSet<GateDecision> { GateDecision.Approve });
        Assert.True(verified.Verified, string.Join("\n", verified.Items));
        var rejectOnly = ArtifactVerifier.Verify(outcome.Written.Attestation!, pub, null, null, null, new HashSet<GateDecision> { GateDecision.Reject });
        Assert.Equal(VerifyFailure.DecisionNotAccepted, rejectOnly.Failure);
    }

    /// <summary>The signed predicate says what was decided, never how a CLI process exited.</summary>
    [Fact]
    public async Task Neither_decision_json_nor_the_signed_predicate_carries_an_exit_code()
    {
        var dir = TestPaths.TempDir("gate-pipeline");
        var keyPath = Path.Combine(dir, "gate.key");
        using (var k = SigningKey.Generate()) File.WriteAllText(keyPath, k.PrivatePem);
        var outcome = await new GateCheckPipeline(ScriptedSandbox.Passing()).CheckAsync(
            new GateCheckRequest(AuditTestKit.ExampleModel, AuditTestKit.WritePolicy(dir, withSandboxCheck: true), Path.Combine(dir, "out"), SigningKeyPath: keyPath),
            null, null, TestContext.Current.CancellationToken);
        var env = JsonNode.Parse(File.ReadAllText(outcome.Written.Attestation!))!;
        var predicate = JsonNode.Parse(Convert.FromBase64String(env["payload"]!.GetValue<string>()))!["predicate"]!.AsObject();
        Assert.False(predicate.ContainsKey("exitCode"), "the predicate carries the CLI's exit code");
        Assert.False(JsonNode.Parse(File.ReadAllText(outcome.Written.Decision))!.AsObject().ContainsKey("exitCode"));
    }

    /// <summary>A bad key is bad input found before any check runs, and the earlier run's outputs are gone all the same.</summary>
    [Fact]
    public async Task A_bad_key_fails_before_any_work_and_leaves_no_stale_result()
    {
        var dir = TestPaths.TempDir("gate-pipeline");
        var keyPath = Path.Combine(dir, "gate.key");
        File.WriteAllText(keyPath, "not a key");
        var outDir = Path.Combine(dir, "out");
        Directory.CreateDirectory(outDir);
        File.WriteAllText(Path.Combine(outDir, "decision.json"), "{}");
        var sandbox = ScriptedSandbox.Passing();
        await Assert.ThrowsAsync<GateInputException>(() => new GateCheckPipeline(sandbox).CheckAsync(
            new GateCheckRequest(AuditTestKit.ExampleModel, AuditTestKit.WritePolicy(dir, withSandboxCheck: true), outDir, SigningKeyPath: keyPath),
            null, null, TestContext.Current.CancellationToken));
        Assert.Empty(sandbox.Jobs);
        Assert.False(File.Exists(Path.Combine(outDir, "decision.json")));
    }
}
