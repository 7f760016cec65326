using System.Text.Json.Nodes;
using Gate.Cli;
using Gate.Core;
using Gate.Core.Attestation;
using Gate.Tests.Support;

namespace Gate.Tests.Attestation;

/// <summary>One signed decision with an evidence file, made once; each test tampers with its own copy.</summary>
public sealed class SignedDecisionFixture
{
    public string Dir { get; }
    public string PublicKey { get; }
    public string OtherPublicKey { get; }

    public SignedDecisionFixture()
    {
        Dir = TestPaths.TempDir("gate-verify-fixture");
        var policy = AuditTestKit.WritePolicy(Dir, withSandboxCheck: true);
        File.Copy(AuditTestKit.ExampleModel, Path.Combine(Dir, "model.onnx"));
        var outDir = Path.Combine(Dir, "out");
        var record = new GateCheckPipeline(ScriptedSandbox.Passing()).RunAsync(
            new GateCheckRequest(Path.Combine(Dir, "model.onnx"), policy, outDir)).GetAwaiter().GetResult();
        GateCheckPipeline.WriteDecision(record, outDir);
        using var key = SigningKey.Generate();
        using var other = SigningKey.Generate();
        DecisionAttestation.Write(record, outDir, key);
        PublicKey = Path.Combine(Dir, "signer.pub");
        OtherPublicKey = Path.Combine(Dir, "other.pub");
        File.WriteAllText(PublicKey, key.Public.Pem);
        File.WriteAllText(OtherPublicKey, other.Public.Pem);
    }

    /// <summary>A private copy: model.onnx, policy.yaml, out/ (attestation + evidence).</summary>
    public string Copy()
    {
        var dest = TestPaths.TempDir("gate-verify");
        foreach (var f in Directory.GetFiles(Dir, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(dest, Path.GetRelativePath(Dir, f));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(f, target);
        }
        return dest;
    }
}

/// <summary>`gate verify` as a process: intact artifacts verify; each kind of tampering fails with its own exit code and says what broke.</summary>
public class VerifyCliTests(SignedDecisionFixture fx) : IClassFixture<SignedDecisionFixture>
{
    private (int Exit, string Out, string Err) Verify(string dir, string? key = null, params string[] only)
    {
        var args = new List<string> { "verify", "--artifact", Path.Combine(dir, "out", "attestation.dsse.json"), "--key", key ?? fx.PublicKey };
        if (only.Length == 0 || only.Contains("model")) args.AddRange(["--model", Path.Combine(dir, "model.onnx")]);
        if (only.Length == 0 || only.Contains("policy")) args.AddRange(["--policy", Path.Combine(dir, "policy.yaml")]);
        if (only.Length == 0 || only.Contains("evidence")) args.AddRange(["--evidence", Path.Combine(dir, "out", "evidence")]);
        return AuditTestKit.RunGate([.. args]);
    }

    private static void RewriteEnvelope(string dir, Func<JsonObject, JsonObject> change)
    {
        var path = Path.Combine(dir, "out", "attestation.dsse.json");
        File.WriteAllText(path, change(JsonNode.Parse(File.ReadAllText(path))!.AsObject()).ToJsonString());
    }

    private static string FlipBase64(string b64, Func<byte[], int> offset)
    {
        var bytes = Convert.FromBase64String(b64);
        bytes[offset(bytes)] ^= 0x01;
        return Convert.ToBase64String(bytes);
    }

    [Fact]
    public void Intact_artifact_verifies_every_item()
    {
        var r = Verify(fx.Copy());
        Assert.True(r.Exit == 0, r.Out + r.Err);
        foreach (var item in new[] { "OK   signature", "OK   model", "OK   policy", "OK   evidence: evidence/acc/predictions.csv", "1 of 1 attested evidence" })
            Assert.Contains(item, r.Out);
        Assert.DoesNotContain("FAIL", r.Out);
    }

    [Fact]
    public void Help_documents_the_exit_codes()
    {
        var r = AuditTestKit.RunGate("verify", "--help");
        foreach (var code in new[] { "10 bad signature", "11 model", "12 policy", "13 evidence", "3 unreadable" })
            Assert.Contains(code, r.Out);
    }

    [Fact]
    public void A_flipped_payload_byte_breaks_the_signature()
    {
        var dir = fx.Copy();
        // Flip a byte inside the predicate (e.g. the decision or a digest), keeping valid base64.
        RewriteEnvelope(dir, env => { env["payload"] = FlipBase64(env["payload"]!.GetValue<string>(), b => b.Length / 2); return env; });
        var r = Verify(dir);
        Assert.Equal(ExitCodes.Verify.BadSignature, r.Exit);
        Assert.Contains("FAIL signature", r.Out);
        Assert.DoesNotContain("OK ", r.Out); // nothing from an unverified payload is reported as holding
    }

    [Fact]
    public void A_flipped_signature_byte_or_the_wrong_key_fails_the_signature()
    {
        var dir = fx.Copy();
        RewriteEnvelope(dir, env => { var s = env["signatures"]![0]!.AsObject(); s["sig"] = FlipBase64(s["sig"]!.GetValue<string>(), b => b.Length - 3); return env; });
        var flipped = Verify(dir);
        Assert.Equal(ExitCodes.Verify.BadSignature, flipped.Exit);
        Assert.Contains("FAIL signature", flipped.Out);

        var wrongKey = Verify(fx.Copy(), fx.OtherPublicKey);
        Assert.Equal(ExitCodes.Verify.BadSignature, wrongKey.Exit);
        Assert.Contains("FAIL signature", wrongKey.Out);
    }

    [Fact]
    public void A_flipped_model_byte_is_a_model_mismatch()
    {
        var dir = fx.Copy();
        AuditTestKit.FlipByte(Path.Combine(dir, "model.onnx"), 4000);
        var r = Verify(dir);
        Assert.Equal(ExitCodes.Verify.ModelMismatch, r.Exit);
        Assert.Contains("FAIL model: model.onnx", r.Out);
        Assert.Contains("OK   policy", r.Out);
    }

    [Fact]
    public void A_flipped_policy_byte_is_a_policy_mismatch()
    {
        var dir = fx.Copy();
        var policy = Path.Combine(dir, "policy.yaml");
        File.WriteAllText(policy, File.ReadAllText(policy).Replace("min: 0.9", "min: 0.8"));
        var r = Verify(dir);
        Assert.Equal(ExitCodes.Verify.PolicyMismatch, r.Exit);
        Assert.Contains("FAIL policy: policy.yaml", r.Out);
        Assert.Contains("OK   model", r.Out);
    }

    [Fact]
    public void A_flipped_or_missing_evidence_file_is_an_evidence_mismatch_naming_the_file()
    {
        var dir = fx.Copy();
        var ev = Path.Combine(dir, "out", "evidence", "acc", "predictions.csv");
        AuditTestKit.FlipByte(ev, 10);
        var r = Verify(dir);
        Assert.Equal(ExitCodes.Verify.EvidenceMismatch, r.Exit);
        Assert.Contains("FAIL evidence: evidence/acc/predictions.csv: sha256", r.Out);

        File.Delete(ev);
        var missing = Verify(dir);
        Assert.Equal(ExitCodes.Verify.EvidenceMismatch, missing.Exit);
        Assert.Contains("FAIL evidence: evidence/acc/predictions.csv: missing", missing.Out);
    }

    [Fact]
    public void Several_failures_are_all_reported_and_the_lowest_code_wins()
    {
        var dir = fx.Copy();
        AuditTestKit.FlipByte(Path.Combine(dir, "model.onnx"), 100);
        AuditTestKit.FlipByte(Path.Combine(dir, "out", "evidence", "acc", "predictions.csv"), 3);
        var r = Verify(dir);
        Assert.Equal(ExitCodes.Verify.ModelMismatch, r.Exit);
        Assert.Contains("FAIL model", r.Out);
        Assert.Contains("FAIL evidence", r.Out);
    }

    [Fact]
    public void Unreadable_inputs_exit_3_with_a_message()
    {
        var dir = fx.Copy();
        File.WriteAllText(Path.Combine(dir, "out", "attestation.dsse.json"), "{ truncated");
        var r = Verify(dir);
        Assert.Equal(3, r.Exit);
        Assert.Contains("attestation.dsse.json: not valid JSON", r.Err);

        var noKey = AuditTestKit.RunGate("verify", "--artifact", Path.Combine(fx.Copy(), "out", "attestation.dsse.json"), "--key", Path.Combine(dir, "nope.pub"));
        Assert.Equal(3, noKey.Exit);
        Assert.Contains("nope.pub: public key file not found", noKey.Err);
    }

    [Fact]
    public void Items_not_asked_for_are_noted_not_claimed()
    {
        var r = AuditTestKit.RunGate("verify", "--artifact", Path.Combine(fx.Copy(), "out", "attestation.dsse.json"), "--key", fx.PublicKey);
        Assert.Equal(0, r.Exit);
        // Gate.Core says what was not checked; the CLI says which flag checks it.
        Assert.Contains("NOTE model: not checked (no model file given); give --model to check it", r.Out);
        Assert.Contains("NOTE policy: not checked (no policy file given); give --policy to check it", r.Out);
        Assert.Contains("NOTE evidence: not checked (no evidence folder given); give --evidence to check it", r.Out);
        Assert.Contains("not judged (no decision was required); use --require-decision approve to gate on it", r.Out);
    }
}
