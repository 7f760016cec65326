using Gate.Core.Policy;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gate.Core;
using Gate.Core.Attestation;
using Gate.Core.Decision;
using Gate.Tests.Support;

namespace Gate.Tests.Attestation;

public class AttestationTests
{
    [Fact]
    public async Task Attestation_is_an_in_toto_statement_about_the_model_with_the_decision_record_as_predicate()
    {
        var dir = TestPaths.TempDir("gate-attest");
        var outDir = Path.Combine(dir, "out");
        var record = await new GateCheckPipeline(ScriptedSandbox.Passing()).RunAsync(
            new GateCheckRequest(AuditTestKit.ExampleModel, AuditTestKit.WritePolicy(dir, withSandboxCheck: true), outDir), null, TestContext.Current.CancellationToken);
        var decisionPath = GateCheckPipeline.WriteDecision(record, outDir);
        using var key = SigningKey.Generate();
        var path = DecisionAttestation.Write(record, outDir, key);
        Assert.Equal(Path.Combine(outDir, "attestation.dsse.json"), path);

        var env = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        Assert.Equal("application/vnd.in-toto+json", env["payloadType"]!.GetValue<string>());
        var sig = Assert.Single(env["signatures"]!.AsArray())!;
        Assert.Equal(key.KeyId, sig["keyid"]!.GetValue<string>());

        var st = JsonNode.Parse(Convert.FromBase64String(env["payload"]!.GetValue<string>()))!.AsObject();
        Assert.Equal("https://in-toto.io/Statement/v1", st["_type"]!.GetValue<string>());
        Assert.Equal("https://gate.dev/attestations/decision/v1", st["predicateType"]!.GetValue<string>());
        var subject = Assert.Single(st["subject"]!.AsArray())!;
        Assert.Equal("digits-cnn.onnx", subject["name"]!.GetValue<string>());
        Assert.Equal(AuditTestKit.Sha256Of(AuditTestKit.ExampleModel), subject["digest"]!["sha256"]!.GetValue<string>());
        // The predicate is exactly the record written to decision.json.
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(File.ReadAllText(decisionPath)), st["predicate"]), "predicate differs from decision.json");
        Assert.Equal("evidence/acc/predictions.csv", st["predicate"]!["evidence"]![0]!["path"]!.GetValue<string>());
    }

    [Fact]
    public async Task The_private_key_never_enters_the_sandbox_and_signing_happens_after_it_returns()
    {
        var dir = TestPaths.TempDir("gate-attest");
        var keyDir = Path.Combine(dir, "secret-keys");
        Directory.CreateDirectory(keyDir);
        var keyPath = Path.Combine(keyDir, "release-signing.key");
        using (var k = SigningKey.Generate()) File.WriteAllText(keyPath, k.PrivatePem);
        using var key = SigningKey.Load(keyPath);
        var outDir = Path.Combine(dir, "out");

        bool signedBeforeSandbox = true;
        var passing = ScriptedSandbox.Passing();
        var sandbox = new ScriptedSandbox(IsolationLevel.Process, (job, ev) =>
        {
            signedBeforeSandbox = File.Exists(Path.Combine(outDir, DecisionAttestation.FileName));
            return passing.RunAsync(job, ev, new Progress<Gate.Core.Evidence.ProgressUpdate>(), default).Result;
        });
        var record = await new GateCheckPipeline(sandbox).RunAsync(
            new GateCheckRequest(AuditTestKit.ExampleModel, AuditTestKit.WritePolicy(dir, withSandboxCheck: true), outDir), null, TestContext.Current.CancellationToken);
        GateCheckPipeline.WriteDecision(record, outDir);
        DecisionAttestation.Write(record, outDir, key);
        Assert.False(signedBeforeSandbox);

        var job = Assert.Single(sandbox.Jobs);
        var jobJson = JsonSerializer.Serialize(job);
        var pem = File.ReadAllText(keyPath);
        var pkcs8 = Convert.FromBase64String(string.Concat(pem.Split('\n').Where(l => l.Length > 0 && !l.StartsWith("-----", StringComparison.Ordinal))));
        using var ec = ECDsa.Create();
        ec.ImportPkcs8PrivateKey(pkcs8, out _);
        var d = ec.ExportParameters(true).D!;
        foreach (var secret in new[] { Convert.ToBase64String(pkcs8)[..40], Convert.ToBase64String(d), Convert.ToHexString(d), Convert.ToHexStringLower(d),
                     keyPath, "secret-keys", "PRIVATE KEY" })
            Assert.DoesNotContain(secret, jobJson, StringComparison.Ordinal);
        // Everything the job hands the sandbox is the model, the policy, data overrides, check ids and limits.
        Assert.Equal(["acc"], job.CheckIds);
        Assert.True(DsseEnvelope.Load(Path.Combine(outDir, DecisionAttestation.FileName)).IsSignedBy(key.Public));
    }

    [Fact]
    public void Keygen_writes_a_pem_pair_with_a_private_mode_and_never_overwrites()
    {
        var keys = Path.Combine(TestPaths.TempDir("gate-keygen"), "keys");
        var kg = AuditTestKit.RunGate("keygen", "--out", keys);
        Assert.True(kg.Exit == 0, kg.Err);
        var keyId = System.Text.RegularExpressions.Regex.Match(kg.Out, "key id: +([0-9a-f]{64})").Groups[1].Value;
        using (var key = SigningKey.Load(Path.Combine(keys, "gate.key")))
        {
            Assert.Equal(keyId, key.KeyId);
            Assert.Equal(keyId, VerificationKey.Load(Path.Combine(keys, "gate.pub")).KeyId);
        }
        if (!OperatingSystem.IsWindows())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(keys, "gate.key")));
        var again = AuditTestKit.RunGate("keygen", "--out", keys);
        Assert.Equal(3, again.Exit);
        Assert.Contains("already exists", again.Err);
    }

    private static (string Dir, string Policy, string PrivateKey, string PublicKey) CliSetup()
    {
        var dir = TestPaths.TempDir("gate-attest-cli");
        using var key = SigningKey.Generate();
        File.WriteAllText(Path.Combine(dir, "k.key"), key.PrivatePem);
        File.WriteAllText(Path.Combine(dir, "k.pub"), key.Public.Pem);
        return (dir, AuditTestKit.WritePolicy(dir), Path.Combine(dir, "k.key"), Path.Combine(dir, "k.pub"));
    }

    [Fact]
    public void Cli_check_with_key_signs_and_verify_accepts_it()
    {
        var (dir, policy, priv, pub) = CliSetup();
        var outDir = Path.Combine(dir, "out");
        var check = AuditTestKit.RunGate("check", "--model", AuditTestKit.ExampleModel, "--policy", policy, "--out", outDir, "--key", priv);
        Assert.True(check.Exit == 0, check.Out + check.Err);
        Assert.Contains("Signed:", check.Err);
        var verify = AuditTestKit.RunGate("verify", "--artifact", Path.Combine(outDir, "attestation.dsse.json"), "--key", pub,
            "--model", AuditTestKit.ExampleModel, "--policy", policy, "--evidence", Path.Combine(outDir, "evidence"));
        Assert.True(verify.Exit == 0, verify.Out + verify.Err);
        foreach (var line in new[] { "OK   signature", "OK   model", "OK   policy", "VERIFIED" }) Assert.Contains(line, verify.Out);
    }

    [Fact]
    public void Cli_check_without_key_says_unsigned_and_removes_an_earlier_attestation()
    {
        var (dir, policy, _, _) = CliSetup();
        var outDir = Path.Combine(dir, "out");
        Directory.CreateDirectory(outDir);
        var stale = Path.Combine(outDir, "attestation.dsse.json");
        File.WriteAllText(stale, "{ \"left\": \"by an earlier run\" }");
        var unsigned = AuditTestKit.RunGate("check", "--model", AuditTestKit.ExampleModel, "--policy", policy, "--out", outDir);
        Assert.True(unsigned.Exit == 0, unsigned.Out + unsigned.Err);
        Assert.Contains("Unsigned", unsigned.Err);
        Assert.False(File.Exists(stale)); // it described another run
        Assert.True(File.Exists(Path.Combine(outDir, "decision.json")));
    }

    [Fact]
    public void A_run_that_fails_before_signing_leaves_no_attestation()
    {
        var (dir, _, priv, _) = CliSetup();
        var outDir = Path.Combine(dir, "out");
        Directory.CreateDirectory(outDir);
        var stale = Path.Combine(outDir, "attestation.dsse.json");
        File.WriteAllText(stale, "{ \"left\": \"by an earlier run\" }");

        // The policy names an input the model does not have: bad input after the key was read, before anything runs.
        var policy = AuditTestKit.WritePolicy(dir, name: "wrong-input.yaml");
        File.WriteAllText(policy, File.ReadAllText(policy).Replace("input: {", "pixels: {"));
        var r = AuditTestKit.RunGate("check", "--model", AuditTestKit.ExampleModel, "--policy", policy, "--out", outDir, "--key", priv);
        Assert.Equal(3, r.Exit);
        Assert.Contains("pixels", r.Err);
        Assert.DoesNotContain("   at ", r.Err); // a message, not a stack trace
        Assert.False(File.Exists(stale));
        Assert.Empty(Directory.GetFiles(outDir, "*.tmp"));

        // A bad key is refused before the run starts.
        File.WriteAllText(Path.Combine(dir, "bad.key"), "not a key");
        var badKey = AuditTestKit.RunGate("check", "--model", AuditTestKit.ExampleModel, "--policy", AuditTestKit.WritePolicy(dir, name: "ok.yaml"),
            "--out", Path.Combine(dir, "out2"), "--key", Path.Combine(dir, "bad.key"));
        Assert.Equal(3, badKey.Exit);
        Assert.Contains("bad.key", badKey.Err);
        Assert.False(Directory.Exists(Path.Combine(dir, "out2")));
    }
}
