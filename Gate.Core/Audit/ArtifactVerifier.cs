using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gate.Core.Decision;
using Gate.Core.IO;

namespace Gate.Core.Audit;

public enum VerifyItemStatus { Ok, Fail, Note }

/// <summary>One line of <c>gate verify</c>: what was checked and whether it held.</summary>
public sealed record VerifyItem(VerifyItemStatus Status, string What, string Message)
{
    public override string ToString() => $"{Status switch { VerifyItemStatus.Ok => "OK  ", VerifyItemStatus.Fail => "FAIL", _ => "NOTE" }} {What}: {Message}";
}

public sealed record VerifyReport(IReadOnlyList<VerifyItem> Items, int ExitCode);

/// <summary>
/// Re-checks a decision attestation without trusting the machine that made it: the signature over the DSSE
/// PAE, then (only if that holds) the model, policy and evidence files against the digests in the signed statement.
/// </summary>
public static class ArtifactVerifier
{
    public const int Verified = 0;
    public const int BadSignature = 10;
    public const int ModelMismatch = 11;
    public const int PolicyMismatch = 12;
    public const int EvidenceMismatch = 13;
    /// <summary>Larger evidence files are refused rather than hashed (a sandbox caps what it may write far lower).</summary>
    public const long MaxEvidenceFileBytes = 4L << 30;

    /// <summary>Exit codes for <c>--help</c>; the lowest failing code wins when several items fail.</summary>
    public const string ExitCodeHelp = "Exit codes: 0 all checks hold, 10 bad signature (or wrong key), 11 model digest mismatch, " +
        "12 policy digest mismatch, 13 evidence file missing or changed, 3 unreadable input. When several fail, the lowest code is returned.";

    public static VerifyReport Verify(string artifactPath, VerificationKey key, string? modelPath, string? policyPath, string? evidenceDir)
    {
        var envelope = DsseEnvelope.Load(artifactPath);
        var items = new List<VerifyItem>();
        var codes = new List<int>();
        void Fail(int code, string what, string msg) { items.Add(new(VerifyItemStatus.Fail, what, msg)); codes.Add(code); }

        if (envelope.PayloadType != DecisionAttestation.PayloadType)
        {
            Fail(BadSignature, "signature", $"payloadType is '{envelope.PayloadType}', expected '{DecisionAttestation.PayloadType}'");
            return new(items, BadSignature);
        }
        if (!envelope.IsSignedBy(key))
        {
            // An unsigned payload is not interpreted at all: nothing it says can be trusted.
            Fail(BadSignature, "signature", $"no signature in {Path.GetFileName(artifactPath)} verifies under key {key.KeyId} (the payload or signature was altered, or this is not the signing key)");
            return new(items, BadSignature);
        }
        items.Add(new(VerifyItemStatus.Ok, "signature", $"ECDSA P-256/SHA-256 signature over the DSSE PAE verifies under key {key.KeyId}"));

        var st = ParseStatement(envelope.Payload, artifactPath);
        var predicate = st.Predicate;
        items.Add(new(VerifyItemStatus.Note, "decision", $"{predicate["decision"]} for '{st.SubjectName}' under policy '{predicate["policyName"]}' (ended {predicate["endedAt"]})"));

        if (modelPath is null) items.Add(new(VerifyItemStatus.Note, "model", "not checked (no --model given)"));
        else
        {
            var hex = FileSha256(modelPath, "model");
            if (hex == st.SubjectSha256)
                items.Add(new(VerifyItemStatus.Ok, "model", $"{Path.GetFileName(modelPath)} sha256 {hex} matches the subject '{st.SubjectName}'"));
            else Fail(ModelMismatch, "model", $"{Path.GetFileName(modelPath)} sha256 {hex} differs from the attested subject '{st.SubjectName}' sha256 {st.SubjectSha256}");
        }

        var policySha = Str((predicate["policy"] as JsonObject)?["sha256"]);
        if (policyPath is null) items.Add(new(VerifyItemStatus.Note, "policy", "not checked (no --policy given)"));
        else
        {
            var hex = FileSha256(policyPath, "policy");
            if (hex == policySha) items.Add(new(VerifyItemStatus.Ok, "policy", $"{Path.GetFileName(policyPath)} sha256 {hex} matches the attested policy"));
            else Fail(PolicyMismatch, "policy", $"{Path.GetFileName(policyPath)} sha256 {hex} differs from the attested policy sha256 {policySha}");
        }

        if (evidenceDir is null) items.Add(new(VerifyItemStatus.Note, "evidence", "not checked (no --evidence given)"));
        else VerifyEvidence(predicate, evidenceDir, items, codes);

        return new(items, codes.Count == 0 ? Verified : codes.Min());
    }

    private static string? Str(JsonNode? n) => n is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    private sealed record ParsedStatement(string SubjectName, string SubjectSha256, JsonObject Predicate);

    private static ParsedStatement ParseStatement(byte[] payload, string source)
    {
        JsonObject st;
        try { st = JsonNode.Parse(payload) as JsonObject ?? throw new GateInputException($"{source}: the signed payload is not a JSON object"); }
        catch (JsonException e) { throw new GateInputException($"{source}: the signed payload is not valid JSON ({e.Message})"); }
        if (Str(st["_type"]) != DecisionAttestation.StatementType)
            throw new GateInputException($"{source}: _type is '{Str(st["_type"])}', expected '{DecisionAttestation.StatementType}'");
        if (Str(st["predicateType"]) != DecisionAttestation.PredicateType)
            throw new GateInputException($"{source}: predicateType is '{Str(st["predicateType"])}', expected '{DecisionAttestation.PredicateType}'");
        if (st["subject"] is not JsonArray { Count: 1 } subj || subj[0] is not JsonObject s0 || Str(s0["name"]) is not { } name
            || Str((s0["digest"] as JsonObject)?["sha256"]) is not { } sha)
            throw new GateInputException($"{source}: subject must be one entry with a name and digest.sha256");
        if (st["predicate"] is not JsonObject predicate) throw new GateInputException($"{source}: predicate is missing");
        return new(name, sha.ToLowerInvariant(), predicate);
    }

    private static void VerifyEvidence(JsonObject predicate, string evidenceDir, List<VerifyItem> items, List<int> codes)
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
                codes.Add(EvidenceMismatch);
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
                codes.Add(EvidenceMismatch);
                continue;
            }
            if (hex == want) { items.Add(new(VerifyItemStatus.Ok, "evidence", $"{path} sha256 {hex}")); ok++; }
            else { items.Add(new(VerifyItemStatus.Fail, "evidence", $"{path}: sha256 {hex} differs from the attested {want}")); codes.Add(EvidenceMismatch); }
        }
        foreach (var extra in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Where(f => !listed.Contains(f)).Order(StringComparer.Ordinal))
            items.Add(new(VerifyItemStatus.Note, "evidence", $"{EvidenceIndex.Folder}/{Path.GetRelativePath(root, extra).Replace('\\', '/')}: not part of the attestation (ignored)"));
        items.Add(new(ok == entries.Count ? VerifyItemStatus.Ok : VerifyItemStatus.Fail, "evidence", $"{ok} of {entries.Count} attested evidence file(s) verified"));
    }

    private static string FileSha256(string path, string what)
    {
        if (!File.Exists(path)) throw new GateInputException($"{path}: {what} file not found");
        using var fs = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(fs));
    }
}
