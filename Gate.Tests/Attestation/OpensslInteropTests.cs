using System.Diagnostics;
using Gate.Core;
using Gate.Core.Attestation;
using Gate.Tests.Support;

namespace Gate.Tests.Attestation;

/// <summary>
/// Standard tools verify Gate's artifacts without Gate's code: openssl checks the DSSE signature of a real decision
/// attestation over the PAE bytes with the public PEM, and Gate accepts keys that openssl generated.
/// scripts/setup.d/25-openssl.sh installs openssl; a missing openssl fails these tests rather than skipping them.
/// </summary>
public class OpensslInteropTests
{
    private static (int Exit, string Output) Openssl(string workDir, params string[] args)
    {
        var psi = new ProcessStartInfo("openssl") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = workDir };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception) { Assert.Fail("openssl is not installed: run scripts/setup.sh (scripts/setup.d/25-openssl.sh installs it)"); throw; }
        using (p)
        {
            var o = p.StandardOutput.ReadToEndAsync();
            var e = p.StandardError.ReadToEndAsync();
            p.WaitForExit(30_000);
            return (p.ExitCode, o.Result + e.Result);
        }
    }

    [Fact]
    public async Task Openssl_verifies_a_gate_decision_signature_over_the_pae()
    {
        var dir = TestPaths.TempDir("gate-openssl");
        var policy = AuditTestKit.WritePolicy(dir);
        var outDir = Path.Combine(dir, "out");
        var record = await new GateCheckPipeline(null).RunAsync(new GateCheckRequest(AuditTestKit.ExampleModel, policy, outDir), null, TestContext.Current.CancellationToken);
        using var key = SigningKey.Generate();
        var envelope = DsseEnvelope.Load(DecisionAttestation.Write(record, outDir, key));

        File.WriteAllBytes(Path.Combine(dir, "pae.bin"), envelope.Pae());
        File.WriteAllBytes(Path.Combine(dir, "sig.der"), envelope.Signatures[0].Sig);
        File.WriteAllText(Path.Combine(dir, "pub.pem"), key.Public.Pem);
        var ok = Openssl(dir, "dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig.der", "pae.bin");
        Assert.True(ok.Exit == 0, ok.Output);
        Assert.Contains("Verified OK", ok.Output);

        // The same tool rejects the signature over a payload with one byte changed.
        AuditTestKit.FlipByte(Path.Combine(dir, "pae.bin"), envelope.Pae().Length - 5);
        var bad = Openssl(dir, "dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig.der", "pae.bin");
        Assert.NotEqual(0, bad.Exit);
        Assert.Contains("Verification failure", bad.Output);
    }

    [Fact]
    public void Gate_signs_with_openssl_generated_keys_and_computes_the_same_key_id()
    {
        var dir = TestPaths.TempDir("gate-openssl");
        Assert.Equal(0, Openssl(dir, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "k.pem").Exit);
        Assert.Equal(0, Openssl(dir, "pkey", "-in", "k.pem", "-pubout", "-out", "k.pub").Exit);
        Assert.Equal(0, Openssl(dir, "pkey", "-in", "k.pem", "-pubout", "-outform", "DER", "-out", "k.pub.der").Exit);

        using var key = SigningKey.Load(Path.Combine(dir, "k.pem"));
        Assert.Equal(AuditTestKit.Sha256Of(Path.Combine(dir, "k.pub.der")), key.KeyId);
        Assert.Equal(key.KeyId, VerificationKey.Load(Path.Combine(dir, "k.pub")).KeyId);

        var env = DsseEnvelope.Sign("application/vnd.gate.policy-approval+json", "{}"u8.ToArray(), key);
        File.WriteAllBytes(Path.Combine(dir, "pae.bin"), env.Pae());
        File.WriteAllBytes(Path.Combine(dir, "sig.der"), env.Signatures[0].Sig);
        var r = Openssl(dir, "dgst", "-sha256", "-verify", "k.pub", "-signature", "sig.der", "pae.bin");
        Assert.True(r.Exit == 0, r.Output);

        // And openssl's signatures verify in Gate.
        var sigByOpenssl = Openssl(dir, "dgst", "-sha256", "-sign", "k.pem", "-out", "sig2.der", "pae.bin");
        Assert.Equal(0, sigByOpenssl.Exit);
        Assert.True(VerificationKey.Load(Path.Combine(dir, "k.pub")).Verify(env.Pae(), File.ReadAllBytes(Path.Combine(dir, "sig2.der"))));
    }
}
