using System.Text.Json.Nodes;
using Gate.Core;
using Gate.Core.Attestation;
using Gate.Core.IO;
using Gate.Core.Policy;
using Gate.Core.Trust;
using Gate.Tests.Attestation;
using Gate.Tests.Support;

namespace Gate.Tests.Trust;

/// <summary>Signed policy approvals and `--trust`: only a policy approved, unmodified, by enough distinct trusted keys may run.</summary>
public class ApprovalTests
{
    private sealed class Governance : IDisposable
    {
        public string Dir { get; } = TestPaths.TempDir("gate-approvals");
        public Dictionary<string, SigningKey> Keys { get; } = new()
        {
            ["alice"] = SigningKey.Generate(), ["bob"] = SigningKey.Generate(), ["carol"] = SigningKey.Generate(), ["mallory"] = SigningKey.Generate(),
        };

        /// <summary>A trust file naming alice (file), bob (file) and carol (inline PEM); mallory is not trusted.</summary>
        public TrustPolicy Trust(int required)
        {
            Directory.CreateDirectory(Path.Combine(Dir, "keys"));
            foreach (var n in new[] { "alice", "bob" }) File.WriteAllText(Path.Combine(Dir, "keys", $"{n}.pub"), Keys[n].Public.Pem);
            var carol = string.Join("\n", Keys["carol"].Public.Pem.TrimEnd().Split('\n').Select(l => "      " + l));
            var path = Path.Combine(Dir, "trust.yaml");
            File.WriteAllText(path, $"required: {required}\nkeys:\n  - {{ name: alice, publicKey: keys/alice.pub }}\n  - name: bob\n    publicKey: keys/bob.pub\n  - name: carol\n    pem: |\n{carol}\n");
            return TrustPolicy.Load(path);
        }

        public string Approve(string policyPath, string who, string? comment = null)
        {
            var env = PolicyApprovals.Sign(PolicyLoader.Load(policyPath), Keys[who], comment, DateTimeOffset.UtcNow);
            var file = PolicyApprovals.DefaultFile(policyPath, Keys[who].KeyId);
            AtomicFile.WriteText(file, env.ToJson());
            return file;
        }

        public void Dispose() { foreach (var k in Keys.Values) k.Dispose(); }
    }

    [Fact]
    public void Approved_policy_passes_trust_and_the_approval_is_recorded()
    {
        using var g = new Governance();
        var policy = AuditTestKit.WritePolicy(g.Dir);
        var file = g.Approve(policy, "alice", "reviewed in GOV-42");
        Assert.Equal(Path.Combine(policy + ".approvals", g.Keys["alice"].KeyId[..16] + ".dsse.json"), file);

        var approvals = g.Trust(1).RequireApprovals(PolicyLoader.Load(policy));
        var a = Assert.Single(approvals);
        Assert.Equal("alice", a.Signer);
        Assert.Equal(g.Keys["alice"].KeyId, a.KeyId);
        Assert.Equal(AuditTestKit.Sha256Of(policy), a.PolicySha256);
        Assert.Equal("reviewed in GOV-42", a.Comment);
        Assert.Equal(AuditTestKit.Sha256Of(file), a.EnvelopeSha256);

        // The approval payload names the digest, the approver and the policy, and is signed with the approval payload type.
        var env = DsseEnvelope.Load(file);
        Assert.Equal(PolicyApprovals.PayloadType, env.PayloadType);
        var payload = JsonNode.Parse(env.Payload)!;
        Assert.Equal(AuditTestKit.Sha256Of(policy), payload["policy"]!["sha256"]!.GetValue<string>());
        Assert.Equal("audit-test", payload["policy"]!["name"]!.GetValue<string>());
        Assert.Equal(g.Keys["alice"].KeyId, payload["approver"]!["keyid"]!.GetValue<string>());
    }

    [Fact]
    public void Editing_one_threshold_after_approval_is_refused()
    {
        using var g = new Governance();
        var policy = AuditTestKit.WritePolicy(g.Dir);
        g.Approve(policy, "alice");
        AuditTestKit.WritePolicy(g.Dir, maxParameters: 2000000); // same file, one threshold loosened
        var e = Assert.Throws<PolicyNotApprovedException>(() => g.Trust(1).RequireApprovals(PolicyLoader.Load(policy)));
        Assert.Contains("0 valid approval(s)", e.Message);
        Assert.Contains("modified after approval", e.Message);
    }

    [Fact]
    public void An_approval_by_an_untrusted_key_is_refused()
    {
        using var g = new Governance();
        var policy = AuditTestKit.WritePolicy(g.Dir);
        g.Approve(policy, "mallory");
        var e = Assert.Throws<PolicyNotApprovedException>(() => g.Trust(1).RequireApprovals(PolicyLoader.Load(policy)));
        Assert.Contains("not signed by any trusted key", e.Message);
    }

    [Fact]
    public void Two_of_three_needs_two_distinct_trusted_keys()
    {
        using var g = new Governance();
        var policy = AuditTestKit.WritePolicy(g.Dir);
        var trust = g.Trust(2);
        Assert.Equal(3, trust.Keys.Count);

        Assert.Throws<PolicyNotApprovedException>(() => trust.RequireApprovals(PolicyLoader.Load(policy))); // none
        var aliceFile = g.Approve(policy, "alice");
        // A second copy of alice's approval is still one key.
        File.Copy(aliceFile, Path.Combine(Path.GetDirectoryName(aliceFile)!, "copy.dsse.json"));
        g.Approve(policy, "mallory");
        var e = Assert.Throws<PolicyNotApprovedException>(() => trust.RequireApprovals(PolicyLoader.Load(policy)));
        Assert.Contains("1 valid approval(s)", e.Message);
        Assert.Contains("2 required", e.Message);

        g.Approve(policy, "carol"); // carol's key is inline in the trust file
        var ok = trust.RequireApprovals(PolicyLoader.Load(policy));
        Assert.Equal(["alice", "carol"], ok.Select(a => a.Signer));
    }

    [Fact]
    public void A_decision_signature_is_not_an_approval()
    {
        using var g = new Governance();
        var policy = AuditTestKit.WritePolicy(g.Dir);
        var p = PolicyLoader.Load(policy);
        // Same key, same policy digest in the payload, but the decision payload type: DSSE's PAE binds the type.
        var payload = JsonNode.Parse(DsseEnvelope.Load(g.Approve(policy, "alice")).Payload)!.ToJsonString();
        var forged = DsseEnvelope.Sign(DecisionAttestation.PayloadType, System.Text.Encoding.UTF8.GetBytes(payload), g.Keys["alice"]);
        File.WriteAllText(PolicyApprovals.DefaultFile(policy, g.Keys["alice"].KeyId), forged.ToJson());
        var e = Assert.Throws<PolicyNotApprovedException>(() => g.Trust(1).RequireApprovals(p));
        Assert.Contains("payloadType", e.Message);
    }

    [Theory]
    [InlineData("required: 4\nkeys:\n  - { name: a, publicKey: a.pub }\n", "can never be met")]
    [InlineData("required: 0\nkeys:\n  - { name: a, publicKey: a.pub }\n", "integer ≥ 1")]
    [InlineData("required: 1\nkeys:\n  - { name: a, publicKey: missing.pub }\n", "missing.pub: public key file not found")]
    [InlineData("required: 1\nkeys:\n  - { name: a, publicKey: a.pub }\n  - { name: b, publicKey: a.pub }\n", "same key as 'a'")]
    [InlineData("required: 1\nkeys:\n  - { name: a, publicKey: a.pub, weight: 2 }\n", "unknown key 'weight'")]
    [InlineData("required: 1\nkeys: []\n", "non-empty list")]
    public void Bad_trust_files_name_the_line_and_the_problem(string yaml, string expected)
    {
        var dir = TestPaths.TempDir("gate-trust");
        using var k = SigningKey.Generate();
        File.WriteAllText(Path.Combine(dir, "a.pub"), k.Public.Pem);
        var path = Path.Combine(dir, "trust.yaml");
        File.WriteAllText(path, yaml);
        var e = Assert.ThrowsAny<GateInputException>(() => TrustPolicy.Load(path));
        Assert.Contains(expected, e.Message);
        Assert.Matches(@"trust\.yaml:\d+:\d+: ", e.Message);
    }

    [Fact]
    public async Task Trust_is_enforced_before_any_check_or_sandbox_runs()
    {
        using var g = new Governance();
        var policy = AuditTestKit.WritePolicy(g.Dir, withSandboxCheck: true);
        var sandbox = ScriptedSandbox.Passing();
        var outDir = Path.Combine(g.Dir, "out");
        var req = new GateCheckRequest(AuditTestKit.ExampleModel, policy, outDir, Trust: g.Trust(1));
        await Assert.ThrowsAsync<PolicyNotApprovedException>(() => new GateCheckPipeline(sandbox).RunAsync(req, null, TestContext.Current.CancellationToken));
        Assert.Empty(sandbox.Jobs);
        Assert.False(Directory.Exists(outDir));

        g.Approve(policy, "bob", "ok");
        var record = await new GateCheckPipeline(sandbox).RunAsync(req, null, TestContext.Current.CancellationToken);
        Assert.Single(sandbox.Jobs);
        Assert.Equal("bob", Assert.Single(record.Approvals).Signer);
        Assert.Empty(record.Incomplete());
    }

    [Fact]
    public void Cli_approve_then_check_with_trust_and_refusal_after_an_edit()
    {
        var dir = TestPaths.TempDir("gate-approvals-cli");
        var policy = AuditTestKit.WritePolicy(dir);
        Assert.Equal(0, AuditTestKit.RunGate("keygen", "--out", Path.Combine(dir, "alice")).Exit);
        File.WriteAllText(Path.Combine(dir, "trust.yaml"), "required: 1\nkeys:\n  - { name: alice, publicKey: alice/gate.pub }\n");

        var approve = AuditTestKit.RunGate("policy", "approve", policy, "--key", Path.Combine(dir, "alice", "gate.key"), "--comment", "GOV-7");
        Assert.True(approve.Exit == 0, approve.Err);
        Assert.Contains("written: " + policy + ".approvals/", approve.Out);

        var outDir = Path.Combine(dir, "out");
        var check = AuditTestKit.RunGate("check", "--model", AuditTestKit.ExampleModel, "--policy", policy, "--out", outDir, "--trust", Path.Combine(dir, "trust.yaml"));
        Assert.True(check.Exit == 0, check.Out + check.Err);
        var decision = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "decision.json")))!;
        Assert.Equal("alice", decision["approvals"]![0]!["signer"]!.GetValue<string>());
        Assert.Equal("GOV-7", decision["approvals"]![0]!["comment"]!.GetValue<string>());

        AuditTestKit.WritePolicy(dir, maxParameters: 5000); // edit one threshold after approval
        var outDir2 = Path.Combine(dir, "out2");
        var refused = AuditTestKit.RunGate("check", "--model", AuditTestKit.ExampleModel, "--policy", policy, "--out", outDir2, "--trust", Path.Combine(dir, "trust.yaml"));
        Assert.Equal(3, refused.Exit);
        Assert.Contains("modified after approval", refused.Err);
        // Core reports the missing approvals; the CLI says how to approve (its command and flag).
        Assert.Contains($"Approve it with: gate policy approve {policy} --key KEY.pem", refused.Err);
        Assert.False(Directory.Exists(outDir2)); // refused before any check executed

        // An invalid policy cannot be approved.
        File.WriteAllText(policy, "apiVersion: gate/v1\nkind: DeploymentPolicy\n");
        Assert.Equal(3, AuditTestKit.RunGate("policy", "approve", policy, "--key", Path.Combine(dir, "alice", "gate.key")).Exit);
    }
}
