using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Gate.Cli;
using Gate.Core;
using Gate.Core.Attestation;
using Gate.Core.Decision;
using Gate.Core.IO;
using Gate.Tests.Support;

namespace Gate.Tests.Attestation;

/// <summary>
/// The standard Sigstore verifier (sigstore-js <c>@sigstore/verify</c>, installed by scripts/setup.d/40-sigstore-js.sh)
/// runs through scripts/sigstore-verify.cjs with the public key only. Missing node or packages skip locally and fail in
/// CI (GATE_REQUIRE_SIGSTORE=1).
/// </summary>
public static class SigstoreJs
{
    public static string Script => Path.Combine(TestPaths.RepoRoot, "scripts", "sigstore-verify.cjs");
    public static string Modules => Path.Combine(TestPaths.RepoRoot, ".cache", "sigstore-js", "node_modules");

    public static (int Exit, string Output) Verify(string bundle, string publicKey, string? subjectSha256 = null)
    {
        Need.Component("GATE_REQUIRE_SIGSTORE", Directory.Exists(Path.Combine(Modules, "@sigstore", "verify")),
            $"sigstore-js is not installed in {Modules} (run scripts/setup.d/40-sigstore-js.sh)");
        var psi = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.Environment["NODE_PATH"] = Modules;
        foreach (var a in new[] { Script, bundle, publicKey }.Concat(subjectSha256 is null ? [] : [subjectSha256])) psi.ArgumentList.Add(a);
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception)
        {
            Need.Component("GATE_REQUIRE_SIGSTORE", false, "node is not installed (scripts/setup.d/40-sigstore-js.sh needs node and npm)");
            throw;
        }
        using (p)
        {
            var o = p.StandardOutput.ReadToEndAsync();
            var e = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(60_000)) { p.Kill(true); Assert.Fail("sigstore-verify.cjs did not finish within 60 s"); }
            p.WaitForExit();
            return (p.ExitCode, o.Result + e.Result);
        }
    }
}

/// <summary>A signed APPROVE decision with all four attestation files and the signer's public key.</summary>
public sealed class SigstoreFixture
{
    public string Dir { get; }
    public string Out => Path.Combine(Dir, "out");
    public string PublicKey { get; }
    public string OtherPublicKey { get; }
    public string ModelSha256 { get; }
    public DecisionRecord Record { get; }

    public SigstoreFixture()
    {
        Dir = TestPaths.TempDir("gate-sigstore");
        var policy = AuditTestKit.WritePolicy(Dir, withSandboxCheck: true);
        File.Copy(AuditTestKit.ExampleModel, Path.Combine(Dir, "model.onnx"));
        Record = new GateCheckPipeline(ScriptedSandbox.Passing()).RunAsync(new GateCheckRequest(Path.Combine(Dir, "model.onnx"), policy, Out)).GetAwaiter().GetResult();
        GateCheckPipeline.WriteDecision(Record, Out);
        using var key = SigningKey.Generate();
        using var other = SigningKey.Generate();
        DecisionAttestation.Write(Record, Out, key);
        PublicKey = Path.Combine(Dir, "gate.pub");
        OtherPublicKey = Path.Combine(Dir, "other.pub");
        File.WriteAllText(PublicKey, key.Public.Pem);
        File.WriteAllText(OtherPublicKey, other.Public.Pem);
        ModelSha256 = AuditTestKit.Sha256Of(Path.Combine(Dir, "model.onnx"));
    }

    /// <summary>A copy of one output file, changed by <paramref name="change"/>, for tampering tests.</summary>
    public string Tampered(string name, Action<JsonObject> change)
    {
        var o = JsonNode.Parse(File.ReadAllText(Path.Combine(Out, name)))!.AsObject();
        change(o);
        var path = Path.Combine(TestPaths.TempDir("gate-sigstore-tampered"), name);
        File.WriteAllText(path, o.ToJsonString());
        return path;
    }
}

public class SigstoreInteropTests(SigstoreFixture fx) : IClassFixture<SigstoreFixture>
{
    private string OutFile(string name) => Path.Combine(fx.Out, name);

    private static string Flip(string b64, Func<byte[], int> at)
    {
        var b = Convert.FromBase64String(b64);
        b[at(b)] ^= 0x01;
        return Convert.ToBase64String(b);
    }

    [Fact]
    public void The_decision_bundle_verifies_with_sigstore_js_using_the_public_key_only()
    {
        var r = SigstoreJs.Verify(OutFile(DecisionAttestation.BundleFileName), fx.PublicKey, fx.ModelSha256);
        Assert.True(r.Exit == 0, r.Output);
        var summary = JsonNode.Parse(r.Output)!;
        Assert.True(summary["verified"]!.GetValue<bool>());
        Assert.Equal(DecisionAttestation.PredicateType, summary["predicateType"]!.GetValue<string>());
        Assert.Equal(fx.ModelSha256, summary["subject"]![0]!["digest"]!["sha256"]!.GetValue<string>());
    }

    [Fact]
    public void The_test_result_bundle_verifies_with_sigstore_js()
    {
        var r = SigstoreJs.Verify(OutFile(DecisionAttestation.TestResultBundleFileName), fx.PublicKey, fx.ModelSha256);
        Assert.True(r.Exit == 0, r.Output);
        Assert.Equal(TestResultAttestation.PredicateType, JsonNode.Parse(r.Output)!["predicateType"]!.GetValue<string>());
    }

    [Fact]
    public void Sigstore_js_catches_a_tampered_payload_signature_key_or_subject()
    {
        var bundle = DecisionAttestation.BundleFileName;
        var payload = fx.Tampered(bundle, b => b["dsseEnvelope"]!["payload"] = Flip(b["dsseEnvelope"]!["payload"]!.GetValue<string>(), x => x.Length / 2));
        var r1 = SigstoreJs.Verify(payload, fx.PublicKey);
        Assert.True(r1.Exit == 1, r1.Output);
        Assert.Contains("signature verification failed", r1.Output);

        var sig = fx.Tampered(bundle, b =>
        {
            var s = b["dsseEnvelope"]!["signatures"]![0]!;
            s["sig"] = Flip(s["sig"]!.GetValue<string>(), x => x.Length - 3);
        });
        Assert.Equal(1, SigstoreJs.Verify(sig, fx.PublicKey).Exit);

        // The payload type is part of the signed PAE: relabelling the statement breaks the signature too.
        var type = fx.Tampered(bundle, b => b["dsseEnvelope"]!["payloadType"] = "application/json");
        Assert.Equal(1, SigstoreJs.Verify(type, fx.PublicKey).Exit);

        var wrongKey = SigstoreJs.Verify(OutFile(bundle), fx.OtherPublicKey);
        Assert.Equal(1, wrongKey.Exit);
        Assert.Contains("key not found", wrongKey.Output); // the hint names another key

        var otherModel = SigstoreJs.Verify(OutFile(bundle), fx.PublicKey, new string('0', 64));
        Assert.Equal(1, otherModel.Exit);
        Assert.Contains("no subject has sha256", otherModel.Output);
    }

    [Fact]
    public void The_bundle_carries_the_same_signed_envelope_as_the_dsse_file_with_a_public_key_hint()
    {
        var dsse = DsseEnvelope.Load(OutFile(DecisionAttestation.FileName));
        var bundle = JsonNode.Parse(File.ReadAllText(OutFile(DecisionAttestation.BundleFileName)))!;
        Assert.Equal("application/vnd.dev.sigstore.bundle.v0.3+json", bundle["mediaType"]!.GetValue<string>());
        var hint = bundle["verificationMaterial"]!["publicKey"]!["hint"]!.GetValue<string>();
        Assert.Equal(AuditTestKit.Sha256Of(fx.PublicKey), hint); // sha256sum gate.pub
        Assert.Empty(bundle["verificationMaterial"]!["tlogEntries"]!.AsArray());
        var env = bundle["dsseEnvelope"]!;
        Assert.Equal(Convert.ToBase64String(dsse.Payload), env["payload"]!.GetValue<string>());
        Assert.Equal(dsse.PayloadType, env["payloadType"]!.GetValue<string>());
        Assert.Equal(Convert.ToBase64String(dsse.Signatures[0].Sig), env["signatures"]![0]!["sig"]!.GetValue<string>());
    }

    [Fact]
    public void Gate_verify_accepts_the_bundle_and_the_test_result_and_gates_on_their_decision()
    {
        foreach (var name in DecisionAttestation.FileNames)
        {
            var r = AuditTestKit.RunGate("verify", "--artifact", OutFile(name), "--key", fx.PublicKey, "--require-decision", "approve",
                "--model", Path.Combine(fx.Dir, "model.onnx"), "--policy", Path.Combine(fx.Dir, "policy.yaml"));
            Assert.True(r.Exit == 0, name + ": " + r.Out + r.Err);
            Assert.Contains("OK   decision: APPROVE", r.Out);
            Assert.Contains("OK   policy", r.Out);
            Assert.Contains("OK   model", r.Out);
            var reject = AuditTestKit.RunGate("verify", "--artifact", OutFile(name), "--key", fx.PublicKey, "--require-decision", "reject");
            Assert.Equal(ExitCodes.Verify.DecisionNotAccepted, reject.Exit);
        }
        var tampered = fx.Tampered(DecisionAttestation.BundleFileName,
            b => b["dsseEnvelope"]!["payload"] = Flip(b["dsseEnvelope"]!["payload"]!.GetValue<string>(), x => x.Length / 2));
        Assert.Equal(ExitCodes.Verify.BadSignature, AuditTestKit.RunGate("verify", "--artifact", tampered, "--key", fx.PublicKey).Exit);

        var testResultWithEvidence = AuditTestKit.RunGate("verify", "--artifact", OutFile(DecisionAttestation.TestResultFileName), "--key", fx.PublicKey,
            "--evidence", Path.Combine(fx.Out, "evidence"));
        Assert.Equal(ExitCodes.Verify.EvidenceMismatch, testResultWithEvidence.Exit); // a summary cannot vouch for evidence
    }

    [Fact]
    public void The_test_result_maps_the_three_valued_decision_and_lists_check_ids()
    {
        var st = JsonNode.Parse(DsseEnvelope.Load(OutFile(DecisionAttestation.TestResultFileName)).Payload)!;
        Assert.Equal("https://in-toto.io/Statement/v1", st["_type"]!.GetValue<string>());
        Assert.Equal("https://in-toto.io/attestation/test-result/v0.1", st["predicateType"]!.GetValue<string>());
        var p = st["predicate"]!;
        Assert.Equal("PASSED", p["result"]!.GetValue<string>());
        Assert.Equal(fx.Record.Policy.Sha256, p["configuration"]![0]!["digest"]!["sha256"]!.GetValue<string>());
        Assert.Equal(["graph", "acc"], p["passedTests"]!.AsArray().Select(n => n!.GetValue<string>()).Order().Reverse());
        Assert.Empty(p["failedTests"]!.AsArray());

        Assert.Equal("PASSED", TestResultAttestation.Result(GateDecision.Approve));
        Assert.Equal("WARNED", TestResultAttestation.Result(GateDecision.Inconclusive)); // never PASSED
        Assert.Equal("FAILED", TestResultAttestation.Result(GateDecision.Reject));
    }

    [Fact]
    public void A_failed_blocking_check_is_a_failed_test_and_an_inconclusive_one_a_warning()
    {
        var record = fx.Record;
        var json = JsonNode.Parse(record.ToJson())!.AsObject();
        var copy = System.Text.Json.JsonSerializer.Deserialize<DecisionRecord>(json.ToJsonString(), GateJson.Options)!;
        copy.Checks.Single(c => c.Id == "acc").Verdict = Gate.Core.Evidence.Verdict.Fail;
        copy.Checks.Single(c => c.Id == "graph").Verdict = Gate.Core.Evidence.Verdict.Inconclusive;
        copy.Decision = GateDecision.Reject;
        var p = JsonNode.Parse(TestResultAttestation.Statement(copy))!["predicate"]!;
        Assert.Equal("FAILED", p["result"]!.GetValue<string>());
        Assert.Equal(["acc"], p["failedTests"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Equal(["graph"], p["warnedTests"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Empty(p["passedTests"]!.AsArray());
    }
}
