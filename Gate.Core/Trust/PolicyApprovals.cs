using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gate.Core.Attestation;
using Gate.Core.IO;
using Gate.Core.Policy;

namespace Gate.Core.Trust;

/// <summary>What a governance approver signs: this exact policy digest, by this key, at this time.</summary>
public sealed record PolicyApproval(string PolicySha256, string PolicyFile, string PolicyName, string ApproverKeyId,
    string? Comment, DateTimeOffset ApprovedAt);

/// <summary>
/// Signed policy approvals: DSSE envelopes (same keys and format as decision attestations) whose payload names the
/// policy's SHA-256. Editing the policy in any way changes the digest, so old approvals no longer count.
/// </summary>
public static class PolicyApprovals
{
    public const string PayloadType = "application/vnd.gate.policy-approval+json";
    public const string ApprovalType = "https://gate.dev/approvals/policy/v1";

    /// <summary>Where approvals live by default: a folder beside the policy, <c>P.approvals/</c>.</summary>
    public static string DefaultFolder(string policyPath) => Path.GetFullPath(policyPath) + ".approvals";

    public static string DefaultFile(string policyPath, string keyId) => Path.Combine(DefaultFolder(policyPath), $"{keyId[..16]}.dsse.json");

    public static DsseEnvelope Sign(DeploymentPolicy policy, SigningKey key, string? comment, DateTimeOffset now)
    {
        var payload = new JsonObject
        {
            ["_type"] = ApprovalType,
            ["policy"] = new JsonObject
            {
                ["file"] = Path.GetFileName(policy.SourcePath),
                ["name"] = policy.Metadata.Name,
                ["sha256"] = policy.Sha256,
            },
            ["approver"] = new JsonObject { ["keyid"] = key.KeyId },
            ["comment"] = comment,
            ["approvedAt"] = now.ToUniversalTime().ToString("O"),
        };
        return DsseEnvelope.Sign(PayloadType, JsonSerializer.SerializeToUtf8Bytes(payload), key);
    }

    /// <summary>Reads the approval out of a payload whose signature has already been verified.</summary>
    public static PolicyApproval ParsePayload(byte[] payload, string source)
    {
        try
        {
            var o = UntrustedInput.ParseJson(payload, $"{source}: approval payload") as JsonObject ?? throw new GateInputException($"{source}: approval payload is not a JSON object");
            if (o["_type"]?.GetValue<string>() != ApprovalType) throw new GateInputException($"{source}: _type is not {ApprovalType}");
            var p = o["policy"] as JsonObject ?? throw new GateInputException($"{source}: approval has no policy");
            return new PolicyApproval(
                p["sha256"]?.GetValue<string>() ?? throw new GateInputException($"{source}: approval has no policy.sha256"),
                p["file"]?.GetValue<string>() ?? "", p["name"]?.GetValue<string>() ?? "",
                o["approver"]?["keyid"]?.GetValue<string>() ?? "", o["comment"]?.GetValue<string>(),
                DateTimeOffset.Parse(o["approvedAt"]?.GetValue<string>() ?? throw new GateInputException($"{source}: approval has no approvedAt"),
                    System.Globalization.CultureInfo.InvariantCulture));
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new GateInputException($"{source}: malformed approval payload ({e.Message})");
        }
    }

    internal static string FileSha256(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));
}
