using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Gate.Core;
using Gate.Core.Attestation;

namespace Gate.Tests.Attestation;

public class DsseTests
{
    [Fact]
    public void Pae_matches_the_dsse_specification_example()
    {
        // From the DSSE protocol document: PAE("http://example.com/HelloWorld", "hello world").
        var pae = DsseEnvelope.Pae("http://example.com/HelloWorld", "hello world"u8.ToArray());
        Assert.Equal("DSSEv1 29 http://example.com/HelloWorld 11 hello world", Encoding.ASCII.GetString(pae));
    }

    [Fact]
    public void Pae_lengths_count_utf8_bytes_not_characters()
    {
        var pae = DsseEnvelope.Pae("t", Encoding.UTF8.GetBytes("ε"));
        Assert.Equal([.. "DSSEv1 1 t 2 "u8.ToArray(), 0xCE, 0xB5], pae);
    }

    [Fact]
    public void Key_id_is_the_sha256_of_the_public_key_der_from_the_pem_text()
    {
        using var key = SigningKey.Generate();
        var pem = key.Public.Pem;
        var b64 = string.Concat(pem.Split('\n').Where(l => l.Length > 0 && !l.StartsWith("-----", StringComparison.Ordinal)));
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(Convert.FromBase64String(b64))), key.KeyId);
        Assert.Equal(key.KeyId, VerificationKey.FromPem(pem, "pem").KeyId);
        Assert.StartsWith("-----BEGIN PUBLIC KEY-----", pem);
        Assert.StartsWith("-----BEGIN PRIVATE KEY-----", key.PrivatePem);
        using var reloaded = SigningKey.FromPem(key.PrivatePem, "pem");
        Assert.Equal(key.KeyId, reloaded.KeyId);
    }

    [Fact]
    public void Signed_envelope_round_trips_and_any_change_breaks_it()
    {
        using var key = SigningKey.Generate();
        using var other = SigningKey.Generate();
        var env = DsseEnvelope.Sign("application/vnd.in-toto+json", "{\"a\":1}"u8.ToArray(), key);
        var json = JsonNode.Parse(env.ToJson())!.AsObject();
        Assert.Equal("application/vnd.in-toto+json", json["payloadType"]!.GetValue<string>());
        Assert.Equal("{\"a\":1}", Encoding.UTF8.GetString(Convert.FromBase64String(json["payload"]!.GetValue<string>())));
        Assert.Equal(key.KeyId, json["signatures"]![0]!["keyid"]!.GetValue<string>());

        var back = DsseEnvelope.Parse(env.ToJson(), "env");
        Assert.True(back.IsSignedBy(key.Public));
        Assert.False(back.IsSignedBy(other.Public));

        var payload = back.Payload.ToArray(); payload[3] ^= 1;
        Assert.False((back with { Payload = payload }).IsSignedBy(key.Public));
        Assert.False((back with { PayloadType = "application/json" }).IsSignedBy(key.Public));
        var sig = back.Signatures[0].Sig.ToArray(); sig[^1] ^= 1;
        Assert.False((back with { Signatures = [back.Signatures[0] with { Sig = sig }] }).IsSignedBy(key.Public));
        Assert.False((back with { Signatures = [back.Signatures[0] with { Sig = [1, 2, 3] }] }).IsSignedBy(key.Public));
    }

    [Fact]
    public void Signatures_are_der_encoded_ecdsa()
    {
        using var key = SigningKey.Generate();
        var sig = key.Sign([1, 2, 3]);
        Assert.Equal(0x30, sig[0]); // DER SEQUENCE of two INTEGERs, not the 64-byte IEEE P1363 form
        Assert.Equal(sig.Length - 2, sig[1]);
    }

    [Fact]
    public void Keys_that_are_not_p256_or_are_the_wrong_kind_are_refused_with_the_source_named()
    {
        using var p384 = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        using var rsa = RSA.Create(2048);
        using var key = SigningKey.Generate();
        var cases = new (Func<object>, string)[]
        {
            (() => SigningKey.FromPem(PemEncoding.WriteString("PRIVATE KEY", p384.ExportPkcs8PrivateKey()), "p384.key"), "P-256"),
            (() => VerificationKey.FromPem(PemEncoding.WriteString("PUBLIC KEY", p384.ExportSubjectPublicKeyInfo()), "p384.pub"), "P-256"),
            (() => SigningKey.FromPem(PemEncoding.WriteString("PRIVATE KEY", rsa.ExportPkcs8PrivateKey()), "rsa.key"), "not an ECDSA"),
            (() => VerificationKey.FromPem(key.PrivatePem, "swapped.pub"), "PUBLIC KEY"),
            (() => SigningKey.FromPem(key.Public.Pem, "swapped.key"), "PRIVATE KEY"),
            (() => SigningKey.FromPem("hello", "garbage.key"), "PRIVATE KEY"),
        };
        foreach (var (load, expected) in cases)
        {
            var e = Assert.ThrowsAny<GateInputException>(load);
            Assert.Contains(expected, e.Message);
            Assert.Matches(@"^\S+\.(key|pub): ", e.Message);
        }
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("[]")]
    [InlineData("{\"payloadType\":\"t\",\"payload\":\"%%%\",\"signatures\":[{\"keyid\":\"\",\"sig\":\"AA==\"}]}")]
    [InlineData("{\"payloadType\":\"t\",\"payload\":\"AA==\",\"signatures\":[]}")]
    [InlineData("{\"payload\":\"AA==\",\"signatures\":[{\"sig\":\"AA==\"}]}")]
    public void Malformed_envelopes_are_bad_input(string json)
    {
        var e = Assert.ThrowsAny<GateInputException>(() => DsseEnvelope.Parse(json, "a.dsse.json"));
        Assert.StartsWith("a.dsse.json: ", e.Message);
    }
}
