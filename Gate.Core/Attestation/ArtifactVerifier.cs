using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gate.Core.Decision;
using Gate.Core.IO;

namespace Gate.Core.Attestation;

public enum VerifyItemStatus { Ok, Fail, Note }

/// <summary>One line of <c>gate verify</c>: what was checked and whether it held.</summary>
public sealed record VerifyItem(VerifyItemStatus Status, string What, string Message)
{
    // Messages quote signed strings (policy name, paths): never let one move the cursor or print a fake verdict.
    public override string ToString() => UntrustedInput.Printable(
        $"{Status switch { VerifyItemStatus.Ok => "OK  ", VerifyItemStatus.Fail => "FAIL", _ => "NOTE" }} {What}: {Message}");
}

/// <summary>Why a verification failed, most fundamental first: a report's <see cref="VerifyReport.Failure"/> is the first that occurred.</summary>
public enum VerifyFailure { BadSignature, ModelMismatch, PolicyMismatch, EvidenceMismatch, DecisionNotAccepted }

/// <summary>The items checked and the outcome: verified, or the most fundamental failure (the CLI maps it to its exit code).</summary>
public sealed record VerifyReport(IReadOnlyList<VerifyItem> Items, VerifyFailure? Failure)
{
    public bool Verified => Failure is null;
}

/// <summary>
/// Re-checks a decision attestation without trusting the machine that made it: the signature over the DSSE
/// PAE, then (only if that holds) that the statement is consistent, the decision is one the caller accepts, and the
/// model, policy and evidence files match the digests in the signed statement.
/// </summary>
public static class ArtifactVerifier
{
    /// <summary>Larger evidence files are refused rather than hashed (a sandbox caps what it may write far lower).</summary>
    public const long MaxEvidenceFileBytes = 4L << 30;

    /// <summary>The wire names of <see cref="GateDecision"/> in decision.json (camelCase), and only those.</summary>
    public static bool TryParseDecision(string? wire, out GateDecision decision)
    {
        foreach (var d in Enum.GetValues<GateDecision>())
            if (wire == JsonNamingPolicy.CamelCase.ConvertName(d.ToString())) { decision = d; return true; }
        decision = default;
        return false;
    }

    private static string Upper(GateDecision d) => d.ToString().ToUpperInvariant();

    public static VerifyReport Verify(string artifactPath, VerificationKey key, string? modelPath, string? policyPath, string? evidenceDir,
        IReadOnlySet<GateDecision>? requiredDecisions = null)
    {
        var envelope = DsseEnvelope.LoadEnvelopeOrBundle(artifactPath, out var isBundle);
        var items = new List<VerifyItem>();
        var failures = new List<VerifyFailure>();
        void Fail(VerifyFailure failure, string what, string msg) { items.Add(new(VerifyItemStatus.Fail, what, msg)); failures.Add(failure); }

        if (envelope.PayloadType != DecisionAttestation.PayloadType)
        {
            Fail(VerifyFailure.BadSignature, "signature", $"payloadType is '{envelope.PayloadType}', expected '{DecisionAttestation.PayloadType}'");
            return new(items, VerifyFailure.BadSignature);
        }
        if (!envelope.IsSignedBy(key))
        {
            // An unsigned payload is not interpreted at all: nothing it says can be trusted.
            Fail(VerifyFailure.BadSignature, "signature", $"no signature in {Path.GetFileName(artifactPath)} verifies under key {key.KeyId} (the payload or signature was altered, or this is not the signing key)");
            return new(items, VerifyFailure.BadSignature);
        }
        items.Add(new(VerifyItemStatus.Ok, "signature", $"ECDSA P-256/SHA-256 signature over the DSSE PAE{(isBundle ? " (in a Sigstore bundle)" : "")} verifies under key {key.KeyId}"));

        var st = ParseStatement(envelope.Payload, artifactPath);
        var predicate = st.Predicate;
        // A statement signed about one model must carry that model's decision; otherwise `--model` would be checked
        // against a subject the decision was never made about. Nothing else in it is interpreted.
        if (st.IsGatePredicate && (st.SubjectSha256 != st.PredicateModelSha256 || st.SubjectName != st.PredicateModelName))
        {
            Fail(VerifyFailure.ModelMismatch, "statement", $"subject '{st.SubjectName}' sha256 {st.SubjectSha256} is not the model the decision was made about " +
                $"(predicate.model.name '{st.PredicateModelName}', predicate.model.sha256 {st.PredicateModelSha256}); the statement is inconsistent");
            return new(items, VerifyFailure.ModelMismatch);
        }

        var decisionText = st.IsGatePredicate
            ? $"{Upper(st.Decision)} for '{st.SubjectName}' under policy '{Str(predicate["policyName"])}' (ended {Str(predicate["endedAt"])})"
            : $"{Upper(st.Decision)} (in-toto test-result {Str(predicate["result"])}) for '{st.SubjectName}'";
        if (requiredDecisions is null)
            items.Add(new(VerifyItemStatus.Note, "decision", $"{decisionText}; not judged (no decision was required)"));
        else
        {
            var required = $"required: {string.Join(" or ", requiredDecisions.Order().Select(Upper))}";
            if (requiredDecisions.Contains(st.Decision)) items.Add(new(VerifyItemStatus.Ok, "decision", $"{decisionText}; {required}"));
            else Fail(VerifyFailure.DecisionNotAccepted, "decision", $"{decisionText}; {required}");
        }

        if (modelPath is null) items.Add(new(VerifyItemStatus.Note, "model", "not checked (no model file given)"));
        else
        {
            var hex = FileSha256(modelPath, "model");
            if (hex == st.SubjectSha256)
                items.Add(new(VerifyItemStatus.Ok, "model", $"{Path.GetFileName(modelPath)} sha256 {hex} matches the subject '{st.SubjectName}'"));
            else Fail(VerifyFailure.ModelMismatch, "model", $"{Path.GetFileName(modelPath)} sha256 {hex} differs from the attested subject '{st.SubjectName}' sha256 {st.SubjectSha256}");
        }

        var policySha = st.PolicySha256;
        if (policyPath is null) items.Add(new(VerifyItemStatus.Note, "policy", "not checked (no policy file given)"));
        else
        {
            var hex = FileSha256(policyPath, "policy");
            if (hex == policySha) items.Add(new(VerifyItemStatus.Ok, "policy", $"{Path.GetFileName(policyPath)} sha256 {hex} matches the attested policy"));
            else Fail(VerifyFailure.PolicyMismatch, "policy", $"{Path.GetFileName(policyPath)} sha256 {hex} differs from the attested policy sha256 {policySha}");
        }

        if (evidenceDir is null) items.Add(new(VerifyItemStatus.Note, "evidence", "not checked (no evidence folder given)"));
        else if (!st.IsGatePredicate)
            Fail(VerifyFailure.EvidenceMismatch, "evidence", $"a test-result statement lists no evidence; verify {DecisionAttestation.FileName} (Gate's full record) with its evidence");
        else VerifyEvidence(predicate, evidenceDir, items, failures);

        return new(items, failures.Count == 0 ? null : failures.Min());
    }

    private static string? Str(JsonNode? n) => n is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    private sealed record ParsedStatement(bool IsGatePredicate, string SubjectName, string SubjectSha256, string? PredicateModelName,
        string? PredicateModelSha256, string? PolicySha256, GateDecision Decision, JsonObject Predicate);

    private static bool IsSha256Hex(string? s) => s is { Length: 64 } && s.All(char.IsAsciiHexDigit);

    /// <summary>
    /// The signed statement, read strictly: a malformed one is bad input (exit 3) naming the field. Names and paths
    /// are checked for control characters here, before anything uses them as a path or prints them. Two predicates are
    /// accepted: Gate's decision record, and the in-toto test-result summary signed beside it.
    /// </summary>
    private static ParsedStatement ParseStatement(byte[] payload, string source)
    {
        var st = UntrustedInput.ParseJson(payload, $"{source}: signed payload") as JsonObject
            ?? throw new GateInputException($"{source}: the signed payload is not a JSON object");
        if (Str(st["_type"]) != DecisionAttestation.StatementType)
            throw new GateInputException($"{source}: _type is '{Str(st["_type"])}', expected '{DecisionAttestation.StatementType}'");
        var predicateType = Str(st["predicateType"]);
        if (predicateType is not (DecisionAttestation.PredicateType or TestResultAttestation.PredicateType))
            throw new GateInputException($"{source}: predicateType is '{predicateType}', expected '{DecisionAttestation.PredicateType}' or '{TestResultAttestation.PredicateType}'");
        if (st["subject"] is not JsonArray { Count: 1 } subj || subj[0] is not JsonObject s0 || Str(s0["name"]) is not { } name
            || Str((s0["digest"] as JsonObject)?["sha256"]) is not { } sha || !IsSha256Hex(sha))
            throw new GateInputException($"{source}: subject must be one entry with a name and a 64-hex-digit digest.sha256");
        UntrustedInput.RequirePlainText(name, source, "subject[0].name");
        if (st["predicate"] is not JsonObject predicate) throw new GateInputException($"{source}: predicate is missing");

        if (predicateType == TestResultAttestation.PredicateType)
        {
            if (!TestResultAttestation.TryParseResult(Str(predicate["result"]), out var result))
                throw new GateInputException($"{source}: predicate.result is '{Str(predicate["result"])}', expected PASSED, WARNED or FAILED");
            var policy = (predicate["configuration"] as JsonArray)?.FirstOrDefault() as JsonObject;
            return new(false, name, sha.ToLowerInvariant(), null, null, Str((policy?["digest"] as JsonObject)?["sha256"])?.ToLowerInvariant(), result, predicate);
        }
        if (!TryParseDecision(Str(predicate["decision"]), out var decision))
            throw new GateInputException($"{source}: predicate.decision is '{Str(predicate["decision"])}', expected approve, reject or inconclusive");
        var model = predicate["model"] as JsonObject;
        var modelName = Str(model?["name"]);
        if (modelName is not null) UntrustedInput.RequirePlainText(modelName, source, "predicate.model.name");
        if (predicate["evidence"] is JsonArray evidence)
            for (int i = 0; i < evidence.Count; i++)
                if (Str(evidence[i]?["path"]) is { } p) UntrustedInput.RequirePlainText(p, source, $"predicate.evidence[{i}].path");
        return new(true, name, sha.ToLowerInvariant(), modelName, Str(model?["sha256"])?.ToLowerInvariant(),
            Str((predicate["policy"] as JsonObject)?["sha256"]), decision, predicate);
    }

    private static void VerifyEvidence(JsonObject predicate, string evidenceDir, List<VerifyItem> items, List<VerifyFailure> failures)
    {
        if (!Directory.Exists(evidenceDir)) throw new GateInputException($"{evidenceDir}: evidence folder not found");
        var root = Path.GetFullPath(evidenceDir);
        var listed = new HashSet<string>(StringComparer.Ordinal);
        var entries = predicate["evidence"] as JsonArray ?? [];
        int ok = 0;
        foreach (var e in entries)
        {
            var path = Str(e?["path"]) ?? "";
            var want = Str(e?["sha256"]) ?? "";
            const string prefix = EvidenceIndex.Folder + "/";
            var rel = path.StartsWith(prefix, StringComparison.Ordinal) ? path[prefix.Length..] : null;
            var full = rel is null ? null : Path.GetFullPath(Path.Combine(root, rel));
            if (full is null || Path.IsPathRooted(rel!) || !full.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            {
                items.Add(new(VerifyItemStatus.Fail, "evidence", $"{path}: not a path under evidence/"));
                failures.Add(VerifyFailure.EvidenceMismatch);
                continue;
            }
            listed.Add(full);
            // The folder's contents are untrusted: no link, FIFO or device is followed or read (it would hang or
            // hash a host file under an attested name), at any depth, and sizes are capped.
            string hex;
            try { hex = UntrustedFiles.Sha256Hex(root, rel!.Replace('\\', '/'), MaxEvidenceFileBytes); }
            catch (UnsafeFileException u)
            {
                items.Add(new(VerifyItemStatus.Fail, "evidence", u.Missing ? $"{path}: missing" : $"{path}: {u.Reason}"));
                failures.Add(VerifyFailure.EvidenceMismatch);
                continue;
            }
            if (hex == want) { items.Add(new(VerifyItemStatus.Ok, "evidence", $"{path} sha256 {hex}")); ok++; }
            else { items.Add(new(VerifyItemStatus.Fail, "evidence", $"{path}: sha256 {hex} differs from the attested {want}")); failures.Add(VerifyFailure.EvidenceMismatch); }
        }
        foreach (var extra in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Where(f => !listed.Contains(f)).Order(StringComparer.Ordinal))
            items.Add(new(VerifyItemStatus.Note, "evidence", $"{EvidenceIndex.Folder}/{Path.GetRelativePath(root, extra).Replace('\\', '/')}: not part of the attestation (ignored)"));
        items.Add(new(ok == entries.Count ? VerifyItemStatus.Ok : VerifyItemStatus.Fail, "evidence", $"{ok} of {entries.Count} attested evidence file(s) verified"));
    }

    private static string FileSha256(string path, string what)
    {
        UntrustedInput.RequireRegularFile(path, $"{what} file");
        using var fs = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(fs));
    }
}
