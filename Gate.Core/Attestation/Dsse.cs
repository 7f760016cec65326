using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gate.Core.IO;

namespace Gate.Core.Attestation;

public sealed record DsseSignature(string KeyId, byte[] Sig);

/// <summary>
/// A DSSE envelope (https://github.com/secure-systems-lab/dsse): a typed payload and signatures over its
/// pre-authentication encoding, so a signature can never be replayed for a payload of another type.
/// </summary>
public sealed record DsseEnvelope(string PayloadType, byte[] Payload, IReadOnlyList<DsseSignature> Signatures)
{
    /// <summary>PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths as ASCII decimal byte counts.</summary>
    public static byte[] Pae(string payloadType, byte[] payload)
    {
        var type = Encoding.UTF8.GetBytes(payloadType);
        var head = Encoding.ASCII.GetBytes($"DSSEv1 {type.Length} ");
        var mid = Encoding.ASCII.GetBytes($" {payload.Length} ");
        return [.. head, .. type, .. mid, .. payload];
    }

    public byte[] Pae() => Pae(PayloadType, Payload);

    public static DsseEnvelope Sign(string payloadType, byte[] payload, SigningKey key) =>
        new(payloadType, payload, [new DsseSignature(key.KeyId, key.Sign(Pae(payloadType, payload)))]);

    /// <summary>True when some signature verifies under <paramref name="key"/>. Key ids are hints only, as DSSE says.</summary>
    public bool IsSignedBy(VerificationKey key)
    {
        var pae = Pae();
        return Signatures.Any(s => key.Verify(pae, s.Sig));
    }

    public string ToJson() => new JsonObject
    {
        ["payloadType"] = PayloadType,
        ["payload"] = Convert.ToBase64String(Payload),
        ["signatures"] = new JsonArray(Signatures.Select(s => (JsonNode)new JsonObject
        {
            ["keyid"] = s.KeyId,
            ["sig"] = Convert.ToBase64String(s.Sig),
        }).ToArray()),
    }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";

    /// <summary>
    /// Caps applied before anything is parsed or verified. A Gate envelope holds one signature and a payload of
    /// well under a megabyte; the caps leave ample room and keep a hostile envelope (a million signatures, each an
    /// ECDSA verification) from turning <c>gate verify</c> into a denial of service.
    /// </summary>
    public const long MaxFileBytes = 32L << 20;
    public const int MaxSignatures = 32;

    /// <summary>Reads an envelope file; anything malformed is bad input naming the file and what was expected.</summary>
    public static DsseEnvelope Load(string path) =>
        Parse(UntrustedInput.ReadRegularFile(path, MaxFileBytes, "DSSE envelope"), path);

    /// <summary>
    /// Reads an attestation file that is either a bare DSSE envelope or a Sigstore bundle holding one
    /// (<see cref="SigstoreBundle"/>); <paramref name="isBundle"/> says which it was.
    /// </summary>
    public static DsseEnvelope LoadEnvelopeOrBundle(string path, out bool isBundle)
    {
        var bytes = UntrustedInput.ReadRegularFile(path, MaxFileBytes, "DSSE envelope or Sigstore bundle");
        using var doc = UntrustedInput.ParseJsonDocument(bytes, path, root =>
        {
            CapSignatures(root, path, "");
            if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("dsseEnvelope", out var inner)) CapSignatures(inner, path, "dsseEnvelope.");
        });
        isBundle = SigstoreBundle.IsBundle(doc.RootElement);
        return isBundle ? SigstoreBundle.EnvelopeOf(doc.RootElement, path) : FromJson(doc.RootElement, path);
    }

    public static DsseEnvelope Parse(string json, string source) => Parse(Encoding.UTF8.GetBytes(json), source);

    public static DsseEnvelope Parse(ReadOnlyMemory<byte> utf8, string source)
    {
        using var doc = UntrustedInput.ParseJsonDocument(utf8, source, root => CapSignatures(root, source, ""));
        return FromJson(doc.RootElement, source);
    }

    private static void CapSignatures(JsonElement envelope, string source, string where)
    {
        if (envelope.ValueKind == JsonValueKind.Object && envelope.TryGetProperty("signatures", out var s) && s.ValueKind == JsonValueKind.Array
            && s.GetArrayLength() > MaxSignatures)
            throw new GateInputException($"{source}: {where}signatures: {s.GetArrayLength()} entries; at most {MaxSignatures} are accepted");
    }

    internal static DsseEnvelope FromJson(JsonElement o, string source)
    {
        if (o.ValueKind != JsonValueKind.Object) throw new GateInputException($"{source}: a DSSE envelope must be a JSON object");
        string Str(JsonElement obj, string key, string where) =>
            obj.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : throw new GateInputException($"{source}: {where}{key}: expected a string");
        byte[] B64(string text, string where)
        {
            try { return Convert.FromBase64String(text); }
            catch (FormatException) { throw new GateInputException($"{source}: {where}: not valid base64"); }
        }
        var type = Str(o, "payloadType", "");
        var payload = B64(Str(o, "payload", ""), "payload");
        if (!o.TryGetProperty("signatures", out var sigs) || sigs.ValueKind != JsonValueKind.Array || sigs.GetArrayLength() == 0)
            throw new GateInputException($"{source}: signatures: expected a non-empty array");
        var list = new List<DsseSignature>();
        int i = 0;
        foreach (var so in sigs.EnumerateArray())
        {
            if (so.ValueKind != JsonValueKind.Object) throw new GateInputException($"{source}: signatures[{i}]: expected an object with keyid and sig");
            var keyid = so.TryGetProperty("keyid", out var kv) && kv.ValueKind == JsonValueKind.String ? kv.GetString()! : "";
            list.Add(new DsseSignature(keyid, B64(Str(so, "sig", $"signatures[{i}]."), $"signatures[{i}].sig")));
            i++;
        }
        return new DsseEnvelope(type, payload, list);
    }
}
