using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Gate.Core.Attestation;

/// <summary>
/// A Sigstore bundle v0.3 (sigstore/protobuf-specs <c>dev.sigstore.bundle.v1.Bundle</c>, protobuf JSON mapping) carrying a
/// DSSE envelope signed with a plain key: <c>verificationMaterial.publicKey.hint</c> names the key, there are no
/// transparency-log entries or timestamps (offline signing). Standard verifiers (sigstore-js <c>@sigstore/verify</c>,
/// cosign, model_signing) check it with the public key alone.
/// </summary>
public static class SigstoreBundle
{
    public const string MediaType = "application/vnd.dev.sigstore.bundle.v0.3+json";

    /// <summary>
    /// The key hint: hex SHA-256 of the public key's PEM text exactly as <c>gate keygen</c> (and openssl) write it, i.e.
    /// <c>sha256sum gate.pub</c>. This is the hint OpenSSF model_signing checks for key-signed bundles.
    /// </summary>
    public static string KeyHint(VerificationKey key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.ASCII.GetBytes(key.Pem)));

    public static string ToJson(DsseEnvelope envelope, VerificationKey key) => new JsonObject
    {
        ["mediaType"] = MediaType,
        ["verificationMaterial"] = new JsonObject
        {
            ["publicKey"] = new JsonObject { ["hint"] = KeyHint(key) },
            ["tlogEntries"] = new JsonArray(),
        },
        ["dsseEnvelope"] = new JsonObject
        {
            ["payload"] = Convert.ToBase64String(envelope.Payload),
            ["payloadType"] = envelope.PayloadType,
            ["signatures"] = new JsonArray(envelope.Signatures.Select(s => (JsonNode)new JsonObject
            {
                ["sig"] = Convert.ToBase64String(s.Sig),
                ["keyid"] = s.KeyId,
            }).ToArray()),
        },
    }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";

    /// <summary>True when the JSON is a Sigstore bundle (has a <c>mediaType</c> naming one), as opposed to a bare DSSE envelope.</summary>
    public static bool IsBundle(JsonElement root) =>
        root.ValueKind == JsonValueKind.Object && root.TryGetProperty("mediaType", out var m) && m.ValueKind == JsonValueKind.String
        && m.GetString()!.StartsWith("application/vnd.dev.sigstore.bundle", StringComparison.Ordinal);

    /// <summary>
    /// The DSSE envelope inside a bundle. Only the key-signed DSSE form Gate writes is accepted; a bundle with a
    /// certificate or transparency-log entries needs a Sigstore verifier with a trust root, which Gate is not.
    /// </summary>
    public static DsseEnvelope EnvelopeOf(JsonElement root, string source)
    {
        if (root.GetProperty("mediaType").GetString() != MediaType)
            throw new GateInputException($"{source}: mediaType is '{root.GetProperty("mediaType").GetString()}', expected '{MediaType}'");
        if (!root.TryGetProperty("verificationMaterial", out var vm) || vm.ValueKind != JsonValueKind.Object
            || !vm.TryGetProperty("publicKey", out var pk) || pk.ValueKind != JsonValueKind.Object)
            throw new GateInputException($"{source}: verificationMaterial.publicKey: expected a key-signed bundle (certificate-signed bundles are verified with cosign or sigstore-js against a trust root)");
        if (!root.TryGetProperty("dsseEnvelope", out var env) || env.ValueKind != JsonValueKind.Object)
            throw new GateInputException($"{source}: dsseEnvelope: expected a DSSE envelope (message-signature bundles are not Gate attestations)");
        return DsseEnvelope.FromJson(env, $"{source}: dsseEnvelope");
    }
}
