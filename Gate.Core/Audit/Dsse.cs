using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Gate.Core.Audit;

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

    public const long MaxFileBytes = 64L << 20;

    /// <summary>Reads an envelope file; anything malformed is bad input naming the file and what was expected.</summary>
    public static DsseEnvelope Load(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new GateInputException($"{path}: file not found (expected a DSSE envelope)");
        if (info.Length > MaxFileBytes) throw new GateInputException($"{path}: {info.Length} bytes is too large for a DSSE envelope");
        return Parse(File.ReadAllText(path), path);
    }

    public static DsseEnvelope Parse(string json, string source)
    {
        JsonObject o;
        try { o = JsonNode.Parse(json) as JsonObject ?? throw new GateInputException($"{source}: a DSSE envelope must be a JSON object"); }
        catch (JsonException e) { throw new GateInputException($"{source}: not valid JSON ({e.Message})"); }
        string Str(JsonObject obj, string key, string where) =>
            obj[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new GateInputException($"{source}: {where}{key}: expected a string");
        byte[] B64(string text, string where)
        {
            try { return Convert.FromBase64String(text); }
            catch (FormatException) { throw new GateInputException($"{source}: {where}: not valid base64"); }
        }
        var type = Str(o, "payloadType", "");
        var payload = B64(Str(o, "payload", ""), "payload");
        if (o["signatures"] is not JsonArray sigs || sigs.Count == 0) throw new GateInputException($"{source}: signatures: expected a non-empty array");
        var list = new List<DsseSignature>();
        for (int i = 0; i < sigs.Count; i++)
        {
            if (sigs[i] is not JsonObject so) throw new GateInputException($"{source}: signatures[{i}]: expected an object with keyid and sig");
            var keyid = so["keyid"] is JsonValue kv && kv.TryGetValue<string>(out var k) ? k : "";
            list.Add(new DsseSignature(keyid, B64(Str(so, "sig", $"signatures[{i}]."), $"signatures[{i}].sig")));
        }
        return new DsseEnvelope(type, payload, list);
    }
}
