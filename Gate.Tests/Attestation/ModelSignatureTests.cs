using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Gate.Core.Attestation;
using Gate.Tests.Runtime;
using Gate.Tests.Support;

namespace Gate.Tests.Attestation;

/// <summary>The model signature in the OpenSSF model-signing shape: every model file signed, verified by sigstore-js, referenced by the decision.</summary>
public class ModelSignatureTests
{
    [Fact]
    public void Sign_model_signs_the_onnx_file_and_its_external_data_in_the_model_signing_shape()
    {
        var dir = TestPaths.TempDir("gate-sign-model");
        var model = OrtTestModels.AddWithExternalWeights(dir, [1f, 2f, 3f, 4f]);
        using var key = SigningKey.Generate();
        File.WriteAllText(Path.Combine(dir, "gate.key"), key.PrivatePem);
        var pub = Path.Combine(dir, "gate.pub");
        File.WriteAllText(pub, key.Public.Pem);

        var r = AuditTestKit.RunGate("sign-model", "--model", model, "--key", Path.Combine(dir, "gate.key"));
        Assert.True(r.Exit == 0, r.Out + r.Err);
        var sig = Path.Combine(dir, "model.sig");
        Assert.Contains("Signed 2 file(s) (external.onnx, weights.bin)", r.Out);

        var bundle = JsonNode.Parse(File.ReadAllText(sig))!;
        Assert.Equal(SigstoreBundle.MediaType, bundle["mediaType"]!.GetValue<string>());
        var st = JsonNode.Parse(Convert.FromBase64String(bundle["dsseEnvelope"]!["payload"]!.GetValue<string>()))!;
        Assert.Equal("https://model_signing/signature/v1.0", st["predicateType"]!.GetValue<string>());
        var resources = st["predicate"]!["resources"]!.AsArray();
        Assert.Equal(["external.onnx", "weights.bin"], resources.Select(x => x!["name"]!.GetValue<string>()));
        foreach (var res in resources)
        {
            Assert.Equal("sha256", res!["algorithm"]!.GetValue<string>());
            Assert.Equal(AuditTestKit.Sha256Of(Path.Combine(dir, res["name"]!.GetValue<string>())), res["digest"]!.GetValue<string>());
        }
        // The subject digest is SHA-256 over the raw resource digests in order, as model_signing computes it.
        var rootDigest = Convert.ToHexStringLower(SHA256.HashData(resources.SelectMany(x => Convert.FromHexString(x!["digest"]!.GetValue<string>())).ToArray()));
        Assert.Equal(rootDigest, st["subject"]![0]!["digest"]!["sha256"]!.GetValue<string>());
        Assert.Equal("files", st["predicate"]!["serialization"]!["method"]!.GetValue<string>());

        var verified = SigstoreJs.Verify(sig, pub, rootDigest);
        Assert.True(verified.Exit == 0, verified.Output);
    }

    [Fact]
    public void A_signed_check_writes_model_sig_and_the_decision_records_its_digest()
    {
        var dir = TestPaths.TempDir("gate-check-model-sig");
        var policy = AuditTestKit.WritePolicy(dir);
        using var key = SigningKey.Generate();
        File.WriteAllText(Path.Combine(dir, "gate.key"), key.PrivatePem);
        var outDir = Path.Combine(dir, "out");
        var r = AuditTestKit.RunGate("check", "--model", AuditTestKit.ExampleModel, "--policy", policy, "--out", outDir, "--key", Path.Combine(dir, "gate.key"), "--json");
        Assert.True(r.Exit == 0, r.Out + r.Err);
        var sigSha = AuditTestKit.Sha256Of(Path.Combine(outDir, ModelSignature.DefaultFileName));
        var decision = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "decision.json")))!;
        Assert.Equal("model.sig", decision["modelSignature"]!["file"]!.GetValue<string>());
        Assert.Equal(sigSha, decision["modelSignature"]!["sha256"]!.GetValue<string>());
        // ...and so does the signed attestation, whose predicate is the decision record.
        var st = JsonNode.Parse(DsseEnvelope.Load(Path.Combine(outDir, DecisionAttestation.FileName)).Payload)!;
        Assert.Equal(sigSha, st["predicate"]!["modelSignature"]!["sha256"]!.GetValue<string>());
    }
}
