using System.Text.Json;
using System.Text.Json.Nodes;
using Gate.Core.Decision;

namespace Gate.Core.Audit;

/// <summary>
/// The signed form of a decision: an in-toto Statement v1 whose subject is the model file (name and SHA-256) and
/// whose predicate is the decision record, wrapped in a DSSE envelope signed with ECDSA P-256 / SHA-256.
/// </summary>
public static class DecisionAttestation
{
    public const string FileName = "attestation.dsse.json";
    public const string StatementType = "https://in-toto.io/Statement/v1";
    public const string PredicateType = "https://gate.dev/attestations/decision/v1";
    public const string PayloadType = "application/vnd.in-toto+json";

    private static readonly JsonSerializerOptions Compact = new(DecisionRecord.JsonOptions) { WriteIndented = false };

    /// <summary>The in-toto statement as UTF-8 JSON bytes (the DSSE payload).</summary>
    public static byte[] Statement(DecisionRecord record)
    {
        var statement = new JsonObject
        {
            ["_type"] = StatementType,
            ["subject"] = new JsonArray(new JsonObject
            {
                ["name"] = record.Model.Name,
                ["digest"] = new JsonObject { ["sha256"] = record.Model.Sha256 },
            }),
            ["predicateType"] = PredicateType,
            ["predicate"] = JsonSerializer.SerializeToNode(record, Compact),
        };
        return JsonSerializer.SerializeToUtf8Bytes(statement, Compact);
    }

    /// <summary>Signs a complete record; an incomplete one is refused, so nothing half-made ever carries a signature.</summary>
    public static DsseEnvelope Sign(DecisionRecord record, SigningKey key)
    {
        var missing = record.Incomplete();
        if (missing.Count > 0)
            throw new InvalidOperationException($"refusing to sign an incomplete decision record (missing: {string.Join(", ", missing)})");
        return DsseEnvelope.Sign(PayloadType, Statement(record), key);
    }

    /// <summary>Signs and writes <c>OUT/attestation.dsse.json</c> atomically. Call after decision.json is written.</summary>
    public static string Write(DecisionRecord record, string outDir, SigningKey key)
    {
        var envelope = Sign(record, key);
        var path = Path.Combine(outDir, FileName);
        AtomicFile.WriteText(path, envelope.ToJson());
        return path;
    }
}
