using System.Text.Json;
using System.Text.Json.Nodes;
using Gate.Core.Decision;
using Gate.Core.IO;

namespace Gate.Core.Attestation;

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

    private static readonly JsonSerializerOptions Compact = GateJson.Compact;

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

    /// <summary>
    /// Signs and writes, each atomically: <c>OUT/attestation.dsse.json</c> (Gate's predicate, the full record) and the
    /// same envelope as a Sigstore bundle <c>OUT/attestation.sigstore.json</c>; the in-toto Test Result summary as
    /// <c>OUT/test-result.dsse.json</c> and <c>OUT/test-result.sigstore.json</c>. Call after decision.json is written.
    /// Returns the path of the Gate-predicate envelope.
    /// </summary>
    public static string Write(DecisionRecord record, string outDir, SigningKey key)
    {
        var envelope = Sign(record, key);
        var testResult = DsseEnvelope.Sign(PayloadType, TestResultAttestation.Statement(record), key);
        AtomicFile.WriteText(Path.Combine(outDir, BundleFileName), SigstoreBundle.ToJson(envelope, key.Public));
        AtomicFile.WriteText(Path.Combine(outDir, TestResultFileName), testResult.ToJson());
        AtomicFile.WriteText(Path.Combine(outDir, TestResultBundleFileName), SigstoreBundle.ToJson(testResult, key.Public));
        // Written last: its presence means every signed file of this run is in place.
        var path = Path.Combine(outDir, FileName);
        AtomicFile.WriteText(path, envelope.ToJson());
        return path;
    }

    public const string BundleFileName = "attestation.sigstore.json";
    public const string TestResultFileName = "test-result.dsse.json";
    public const string TestResultBundleFileName = "test-result.sigstore.json";

    /// <summary>Every file <see cref="Write"/> produces.</summary>
    public static IReadOnlyList<string> FileNames { get; } = [FileName, BundleFileName, TestResultFileName, TestResultBundleFileName];
}
