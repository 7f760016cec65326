using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Gate.Cli;
using Gate.Core;
using Gate.Core.Attestation;
using Gate.Tests.Attestation;
using Gate.Tests.Support;

namespace Gate.Tests.Hostile;

/// <summary>
/// Three real signed decisions (APPROVE, REJECT, INCONCLUSIVE) made once, and the signing key, so that tests can
/// also forge statements the key holder could sign (a compromised CI job, a buggy signer).
/// </summary>
public sealed class SignedDecisionsFixture : IDisposable
{
    public SigningKey Key { get; } = SigningKey.Generate();
    public string PublicKey { get; }
    private readonly Dictionary<string, string> _dirs = new(StringComparer.Ordinal);

    public SignedDecisionsFixture()
    {
        var root = TestPaths.TempDir("gate-hostile-verify");
        PublicKey = Path.Combine(root, "signer.pub");
        File.WriteAllText(PublicKey, Key.Public.Pem);
        // APPROVE: the static check passes and there is nothing else; REJECT: the parameter limit is far too low;
        // INCONCLUSIVE: a sandbox check with no sandbox backend.
        Make(root, "approve", withSandboxCheck: false, maxParameters: 1000000);
        Make(root, "reject", withSandboxCheck: false, maxParameters: 10);
        Make(root, "inconclusive", withSandboxCheck: true, maxParameters: 1000000);
    }

    private void Make(string root, string name, bool withSandboxCheck, long maxParameters)
    {
        var dir = Path.Combine(root, name);
        Directory.CreateDirectory(dir);
        var policy = AuditTestKit.WritePolicy(dir, withSandboxCheck: withSandboxCheck, maxParameters: maxParameters);
        File.Copy(AuditTestKit.ExampleModel, Path.Combine(dir, "model.onnx"));
        var outDir = Path.Combine(dir, "out");
        var record = new GateCheckPipeline(null).RunAsync(new GateCheckRequest(Path.Combine(dir, "model.onnx"), policy, outDir)).GetAwaiter().GetResult();
        Assert.Equal(name, record.Decision.ToString().ToLowerInvariant());
        GateCheckPipeline.WriteDecision(record, outDir);
        DecisionAttestation.Write(record, outDir, Key);
        _dirs[name] = dir;
    }

    /// <summary>A private copy of the artifact of the decision named <paramref name="decision"/>.</summary>
    public string Artifact(string decision)
    {
        var dest = TestPaths.TempDir("gate-hostile-verify-case");
        var path = Path.Combine(dest, DecisionAttestation.FileName);
        File.Copy(Path.Combine(_dirs[decision], "out", DecisionAttestation.FileName), path);
        return path;
    }

    public string Model(string decision) => Path.Combine(_dirs[decision], "model.onnx");

    /// <summary>Changes the signed statement and signs it again with the real key: a statement only the key holder could make.</summary>
    public string Forge(string decision, Action<JsonObject> change)
    {
        var path = Artifact(decision);
        var env = DsseEnvelope.Load(path);
        var st = JsonNode.Parse(env.Payload)!.AsObject();
        change(st);
        File.WriteAllText(path, DsseEnvelope.Sign(env.PayloadType, Encoding.UTF8.GetBytes(st.ToJsonString()), Key).ToJson());
        return path;
    }

    /// <summary>Signs raw statement bytes (for payloads System.Text.Json would never produce, e.g. duplicate keys).</summary>
    public string SignRaw(string payloadJson)
    {
        var path = Path.Combine(TestPaths.TempDir("gate-hostile-verify-case"), DecisionAttestation.FileName);
        File.WriteAllText(path, DsseEnvelope.Sign(DecisionAttestation.PayloadType, Encoding.UTF8.GetBytes(payloadJson), Key).ToJson());
        return path;
    }

    public void Dispose() => Key.Dispose();
}

/// <summary>`gate verify` used as a deploy gate, fed hostile envelopes and statements (docs/threat-model.md).</summary>
public class VerifyTests(SignedDecisionsFixture fx) : IClassFixture<SignedDecisionsFixture>
{
    private (int Exit, string Out, string Err) Verify(string artifact, params string[] extra) =>
        AuditTestKit.RunGate(["verify", "--artifact", artifact, "--key", fx.PublicKey, .. extra]);

    [Fact]
    public void A_signed_reject_or_inconclusive_fails_require_decision_approve_with_its_own_exit_code()
    {
        var approve = Verify(fx.Artifact("approve"), "--require-decision", "approve");
        Assert.True(approve.Exit == 0, approve.Out + approve.Err);
        Assert.Contains("OK   decision: APPROVE", approve.Out);
        Assert.EndsWith("VERIFIED\n", approve.Out);

        foreach (var other in new[] { "reject", "inconclusive" })
        {
            var r = Verify(fx.Artifact(other), "--require-decision", "approve");
            Assert.True(r.Exit == ExitCodes.Verify.DecisionNotAccepted, r.Out + r.Err);
            Assert.Contains($"FAIL decision: {other.ToUpperInvariant()}", r.Out);
            Assert.Contains("required: APPROVE", r.Out);
            Assert.Contains("OK   signature", r.Out); // the signature itself is fine: the code says which check failed
            Assert.DoesNotContain("\nVERIFIED", r.Out);
        }
        Assert.NotEqual(ExitCodes.Verify.BadSignature, ExitCodes.Verify.DecisionNotAccepted);
    }

    [Fact]
    public void Require_decision_accepts_a_list_and_refuses_unknown_values()
    {
        Assert.Equal(0, Verify(fx.Artifact("inconclusive"), "--require-decision", "approve,inconclusive").Exit);
        Assert.Equal(0, Verify(fx.Artifact("reject"), "--require-decision", "approve", "--require-decision", "reject").Exit);
        Assert.Equal(ExitCodes.Verify.DecisionNotAccepted, Verify(fx.Artifact("reject"), "--require-decision", "APPROVE, inconclusive").Exit);

        var bad = Verify(fx.Artifact("approve"), "--require-decision", "yes");
        Assert.Equal(3, bad.Exit);
        Assert.Contains("--require-decision: 'yes' is not a decision (expected approve, reject or inconclusive", bad.Err);
    }

    [Fact]
    public void Without_require_decision_the_decision_is_reported_but_not_judged()
    {
        var r = Verify(fx.Artifact("reject"));
        Assert.Equal(0, r.Exit);
        Assert.Contains("NOTE decision: REJECT", r.Out);
        Assert.Contains("--require-decision", r.Out); // says how to gate on it
    }

    [Fact]
    public void A_statement_whose_subject_digest_differs_from_the_predicate_model_digest_fails()
    {
        // The key holder signs a REJECT decision about model A but names model B as the subject: a deploy gate
        // checking `--model B` must not see "OK model" for a decision that was never made about B.
        var other = new string('a', 64);
        var forged = fx.Forge("approve", st => st["subject"]![0]!["digest"]!["sha256"] = other);
        var r = Verify(forged, "--require-decision", "approve");
        Assert.True(r.Exit == ExitCodes.Verify.ModelMismatch, r.Out + r.Err);
        Assert.Contains("FAIL statement: subject 'model.onnx' sha256 aaaa", r.Out);
        Assert.Contains("predicate.model.sha256", r.Out);

        var renamed = fx.Forge("approve", st => st["subject"]![0]!["name"] = "other.onnx");
        Assert.Equal(ExitCodes.Verify.ModelMismatch, Verify(renamed).Exit);
    }

    [Fact]
    public void Duplicate_keys_in_the_envelope_are_refused_naming_the_key()
    {
        var path = fx.Artifact("reject");
        var text = File.ReadAllText(path);
        // A second "payload" after the signed one: parsers that keep the last value would read another statement.
        var approvePayload = JsonNode.Parse(File.ReadAllText(fx.Artifact("approve")))!["payload"]!.GetValue<string>();
        File.WriteAllText(path, text.TrimEnd().TrimEnd('}') + $",\n  \"payload\": \"{approvePayload}\"\n}}\n");
        var r = Verify(path);
        Assert.True(r.Exit == 3, r.Out + r.Err);
        Assert.Contains("duplicate key 'payload' at $.payload", r.Err);
        Assert.DoesNotContain("internal error", r.Err);

        var sigDup = fx.Artifact("approve");
        File.WriteAllText(sigDup, File.ReadAllText(sigDup).Replace("\"sig\":", "\"sig\": \"AAAA\", \"sig\":"));
        var s = Verify(sigDup);
        Assert.Equal(3, s.Exit);
        Assert.Contains("duplicate key 'sig' at $.signatures[0].sig", s.Err);
    }

    [Fact]
    public void Duplicate_keys_inside_the_signed_statement_are_refused()
    {
        // Signed by the real key, but two parsers could read two decisions out of it.
        var st = Encoding.UTF8.GetString(DsseEnvelope.Load(fx.Artifact("reject")).Payload);
        var ambiguous = st.Replace("\"decision\":\"reject\"", "\"decision\":\"reject\",\"decision\":\"approve\"");
        Assert.NotEqual(st, ambiguous);
        var r = Verify(fx.SignRaw(ambiguous), "--require-decision", "approve");
        Assert.True(r.Exit == 3, r.Out + r.Err);
        Assert.Contains("duplicate key 'decision' at $.predicate.decision", r.Err);
    }

    [Theory]
    [InlineData("evidence/acc/\0/predictions.csv", "U+0000")]
    [InlineData("evidence/acc/\u001b[2Jpred.csv", "U+001B")]
    public void A_control_character_in_a_signed_path_is_refused_with_exit_3(string path, string codePoint)
    {
        var forged = fx.Forge("approve", st => st["predicate"]!["evidence"] = new JsonArray(new JsonObject
        {
            ["path"] = path, ["sha256"] = new string('0', 64), ["bytes"] = 1, ["checkId"] = "acc",
        }));
        var dir = Path.GetDirectoryName(forged)!;
        Directory.CreateDirectory(Path.Combine(dir, "evidence"));
        var r = Verify(forged, "--evidence", Path.Combine(dir, "evidence"));
        Assert.True(r.Exit == 3, r.Out + r.Err);
        Assert.Contains($"predicate.evidence[0].path: control character {codePoint}", r.Err);
        Assert.DoesNotContain("internal error", r.Err);
    }

    [Fact]
    public void A_control_character_in_the_subject_name_is_refused_and_never_printed_raw()
    {
        var forged = fx.Forge("approve", st =>
        {
            st["subject"]![0]!["name"] = "model.onnx\u001b[1;32m VERIFIED";
            st["predicate"]!["model"]!["name"] = "model.onnx\u001b[1;32m VERIFIED";
        });
        var r = Verify(forged);
        Assert.Equal(3, r.Exit);
        Assert.Contains("subject[0].name: control character U+001B", r.Err);
        Assert.DoesNotContain("\u001b", r.Out + r.Err);
    }

    [Fact]
    public void An_envelope_with_a_million_signatures_is_refused_quickly()
    {
        var path = fx.Artifact("approve");
        var env = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        // Small well-formed entries (an empty DER sequence each), so the file stays under the size cap and only the
        // count can stop it: verifying each one would take minutes.
        var sb = new StringBuilder();
        sb.Append("{\"payloadType\":\"").Append(env["payloadType"]!.GetValue<string>()).Append("\",\"payload\":\"")
          .Append(env["payload"]!.GetValue<string>()).Append("\",\"signatures\":[");
        for (int i = 0; i < 1_000_000; i++) sb.Append(i == 0 ? "" : ",").Append("{\"sig\":\"MAA=\"}");
        sb.Append("]}");
        File.WriteAllText(path, sb.ToString());

        var sw = Stopwatch.StartNew();
        var r = GateProcess.Run(["verify", "--artifact", path, "--key", fx.PublicKey], null, TimeSpan.FromSeconds(60));
        sw.Stop();
        Assert.True(r.ExitCode == 3, r.All);
        Assert.Contains($"signatures: 1000000 entries; at most {DsseEnvelope.MaxSignatures} are accepted", r.Stderr);
        // Verifying a million ECDSA signatures took over a minute; refusing them takes a parse. 30 s leaves room for a loaded CI machine.
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"took {sw.Elapsed}");
    }

    [Fact]
    public void An_oversized_envelope_is_refused_before_it_is_read()
    {
        var path = fx.Artifact("approve");
        using (var fs = new FileStream(path, FileMode.Open)) fs.SetLength(DsseEnvelope.MaxFileBytes + 1); // sparse: no disk used
        var r = Verify(path);
        Assert.Equal(3, r.Exit);
        Assert.Contains("too large for a DSSE envelope", r.Err);
    }

    [Fact]
    public void A_device_or_fifo_as_the_artifact_is_refused_not_read_forever()
    {
        var dev = GateProcess.Run(["verify", "--artifact", "/dev/zero", "--key", fx.PublicKey], null, TimeSpan.FromSeconds(60));
        Assert.True(dev.ExitCode == 3, dev.All);
        Assert.Contains("/dev/zero: not a regular file", dev.Stderr);

        var fifo = Path.Combine(TestPaths.TempDir("gate-hostile-verify-fifo"), "attestation.dsse.json");
        using (var mk = Process.Start("mkfifo", [fifo])!) { mk.WaitForExit(); Assert.Equal(0, mk.ExitCode); }
        var f = GateProcess.Run(["verify", "--artifact", fifo, "--key", fx.PublicKey], null, TimeSpan.FromSeconds(60));
        Assert.Equal(3, f.ExitCode);
        Assert.Contains("not a regular file", f.Stderr);
    }

    [Fact]
    public void The_readme_ci_example_gates_the_deploy_on_a_verified_approve()
    {
        var readme = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "README.md"));
        var verifyCalls = readme.Split('\n').Where(l => l.Contains("gate.sh verify", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(verifyCalls);
        Assert.All(verifyCalls, l => Assert.Contains("--require-decision approve", l));
    }
}
