using Gate.Core.Policy;
using System.Text.Json.Nodes;
using Gate.Core;
using Gate.Core.Attestation;
using Gate.Core.Decision;
using Gate.Core.Evidence;
using Gate.Core.Sandbox;
using Gate.Tests.Attestation;
using Gate.Tests.Support;

namespace Gate.Tests.Decision;

/// <summary>decision.json names everything needed to re-check the decision later, and its evidence digests re-verify from the files.</summary>
public class DecisionRecordTests
{
    private static async Task<(DecisionRecord Record, string Out, string Policy)> Run(ScriptedSandbox sandbox)
    {
        var dir = TestPaths.TempDir("gate-record");
        var policy = AuditTestKit.WritePolicy(dir, withSandboxCheck: true);
        var outDir = Path.Combine(dir, "out");
        var record = await new GateCheckPipeline(sandbox).RunAsync(new GateCheckRequest(AuditTestKit.ExampleModel, policy, outDir),
            null, TestContext.Current.CancellationToken);
        return (record, outDir, policy);
    }

    [Fact]
    public async Task Record_names_model_policy_gate_runtime_sandbox_seed_checks_evidence_and_times()
    {
        var before = DateTimeOffset.UtcNow;
        var (record, outDir, policyPath) = await Run(ScriptedSandbox.Passing());
        var json = JsonNode.Parse(File.ReadAllText(GateCheckPipeline.WriteDecision(record, outDir)))!.AsObject();

        Assert.Equal("digits-cnn.onnx", json["model"]!["name"]!.GetValue<string>());
        Assert.Equal(AuditTestKit.Sha256Of(AuditTestKit.ExampleModel), json["model"]!["sha256"]!.GetValue<string>());
        Assert.Equal(AuditTestKit.Sha256Of(policyPath), json["policy"]!["sha256"]!.GetValue<string>());
        Assert.Equal("audit-test", json["policyName"]!.GetValue<string>());
        Assert.NotNull(json["approvals"] as JsonArray);
        Assert.False(string.IsNullOrEmpty(json["gate"]!["version"]!.GetValue<string>()));
        Assert.False(string.IsNullOrEmpty(json["gate"]!["commit"]!.GetValue<string>()));
        Assert.Equal("test-runtime", json["runtime"]!["name"]!.GetValue<string>());
        Assert.Equal("CPUExecutionProvider", json["runtime"]!["provider"]!.GetValue<string>());
        Assert.Equal("cpu", json["runtime"]!["device"]!.GetValue<string>());
        Assert.Equal("process", json["sandbox"]!["isolation"]!.GetValue<string>());
        Assert.Equal("blocked", json["sandbox"]!["selfTest"]!["network"]!.GetValue<string>());
        Assert.Equal(4242UL, json["seed"]!.GetValue<ulong>());

        var acc = json["checks"]!.AsArray().Single(c => c!["id"]!.GetValue<string>() == "acc")!;
        Assert.Equal("pass", acc["verdict"]!.GetValue<string>());
        Assert.Equal(0.98, acc["metrics"]!["accuracy"]!.GetValue<double>());
        Assert.Equal(360, acc["budgetUsed"]!["samples"]!.GetValue<long>());
        Assert.Equal("360 of 360 test samples", acc["coverage"]!.GetValue<string>());
        var graph = json["checks"]!.AsArray().Single(c => c!["id"]!.GetValue<string>() == "graph")!;
        Assert.True(graph["metrics"]!["parameters"]!.GetValue<double>() > 0);

        var started = json["startedAt"]!.GetValue<DateTimeOffset>();
        var ended = json["endedAt"]!.GetValue<DateTimeOffset>();
        Assert.True(started >= before.AddSeconds(-1) && ended >= started && ended <= DateTimeOffset.UtcNow.AddSeconds(1));
        Assert.Empty(record.Incomplete());
    }

    [Fact]
    public async Task Evidence_paths_are_relative_to_the_output_folder_and_their_digests_reverify_from_the_files()
    {
        var (record, outDir, _) = await Run(ScriptedSandbox.Passing());
        var entry = Assert.Single(record.Evidence);
        Assert.Equal("evidence/acc/predictions.csv", entry.Path);
        Assert.Equal("acc", entry.CheckId);
        var onDisk = Path.Combine(outDir, entry.Path);
        Assert.Equal(AuditTestKit.Sha256Of(onDisk), entry.Sha256);
        Assert.Equal(new FileInfo(onDisk).Length, entry.Bytes);
        Assert.Equal(GateDecision.Approve, record.Decision);
    }

    [Fact]
    public async Task Evidence_that_changed_after_the_check_wrote_it_makes_the_check_inconclusive()
    {
        var sandbox = new ScriptedSandbox(IsolationLevel.Process, (job, evidenceDir) =>
        {
            var file = new EvidenceWriter(evidenceDir).ForCheck("acc").WriteText("cex.txt", "original", "counterexample");
            File.WriteAllText(Path.Combine(evidenceDir, "acc", "cex.txt"), "rewritten later");
            return new SandboxOutcome(true, null, [new CheckResult { Id = "acc", Type = "accuracy", Verdict = Verdict.Pass, Evidence = [file] }], IsolationLevel.Process, null);
        });
        var (record, _, _) = await Run(sandbox);
        var acc = record.Checks.Single(c => c.Id == "acc");
        Assert.Equal(Verdict.Inconclusive, acc.Verdict);
        Assert.Contains("changed after the check wrote it", acc.Summary);
        Assert.NotEqual(GateDecision.Approve, record.Decision);
        // The index holds the digest of what is actually on disk, so verify will agree with the files.
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData("rewritten later"u8.ToArray())), record.Evidence.Single().Sha256);
    }

    [Theory]
    [InlineData("../../escape.txt")]
    [InlineData("acc/missing.npy")]
    public async Task Evidence_outside_the_folder_or_missing_makes_the_check_inconclusive(string claimedPath)
    {
        var sandbox = new ScriptedSandbox(IsolationLevel.Process, (_, _) => new SandboxOutcome(true, null,
            [new CheckResult { Id = "acc", Type = "accuracy", Verdict = Verdict.Pass, Evidence = [new EvidenceFile(claimedPath, new string('0', 64), 1, "claimed")] }],
            IsolationLevel.Process, null));
        var (record, _, _) = await Run(sandbox);
        Assert.Equal(Verdict.Inconclusive, record.Checks.Single(c => c.Id == "acc").Verdict);
        Assert.Empty(record.Evidence);
        Assert.Equal(GateDecision.Inconclusive, record.Decision);
    }

    [Fact]
    public async Task An_incomplete_record_is_never_signed()
    {
        var (record, outDir, _) = await Run(ScriptedSandbox.Passing());
        using var key = SigningKey.Generate();
        record.EndedAt = default;
        Assert.Contains("end time", record.Incomplete());
        var e = Assert.Throws<InvalidOperationException>(() => DecisionAttestation.Write(record, outDir, key));
        Assert.Contains("incomplete", e.Message);
        Assert.False(File.Exists(Path.Combine(outDir, DecisionAttestation.FileName)));
    }
}
