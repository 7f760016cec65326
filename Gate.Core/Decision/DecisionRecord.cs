using System.Reflection;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Gate.Core.Evidence;
using Gate.Core.Runtime;

namespace Gate.Core.Decision;

public sealed record ArtifactRef(string Name, string Path, string Sha256, long Bytes);
public sealed record GateInfo(string Version, string Commit);
public sealed record SandboxInfo(string Backend, string Isolation, string RequiredIsolation, string? ImageId, JsonObject? SelfTest, string? Fault);

/// <summary>A governance approval that a trust file accepted for this exact policy digest (see <c>gate policy approve</c>).</summary>
public sealed record ApprovalRef(string Signer, string KeyId, string PolicySha256, DateTimeOffset ApprovedAt, string? Comment,
    string File, string EnvelopeSha256);

/// <summary>
/// One evidence file as the host found it after the checks ran: path relative to the output folder
/// (always under <c>evidence/</c>), its SHA-256 and size, and the check that wrote it.
/// </summary>
public sealed record EvidenceEntry(string Path, string Sha256, long Bytes, string CheckId);

/// <summary>
/// Everything needed to understand and re-check a decision later: what was judged (digests), by what rules
/// (policy digest, approvals), with what (gate version, runtime, sandbox), and the per-check evidence.
/// This object is the predicate of the signed attestation.
/// </summary>
public sealed class DecisionRecord
{
    public string SchemaVersion { get; init; } = "gate.decision/v1";
    public required GateDecision Decision { get; set; }
    public required List<string> Reasons { get; init; }
    public required ArtifactRef Model { get; init; }
    public required ArtifactRef Policy { get; init; }
    public string PolicyName { get; init; } = "";
    /// <summary>The approvals that let this policy pass <c>--trust</c>; empty when no trust file was given.</summary>
    public List<ApprovalRef> Approvals { get; init; } = [];
    public required GateInfo Gate { get; init; }
    public required ulong Seed { get; init; }
    public RuntimeInfo? Runtime { get; set; }
    public required SandboxInfo Sandbox { get; set; }
    public required List<CheckResult> Checks { get; init; }
    /// <summary>The OpenSSF model-signing signature written beside a signed decision (model.sig): file, its digest, the signed model digest.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Gate.Core.Audit.ModelSignatureRef? ModelSignature { get; set; }
    /// <summary>Every evidence file of every check, digested on the host: what <c>gate verify --evidence</c> re-checks.</summary>
    public List<EvidenceEntry> Evidence { get; init; } = [];
    public required DateTimeOffset StartedAt { get; init; }
    public DateTimeOffset EndedAt { get; set; }
    public int ExitCode => DecisionRules.ExitCode(Decision);

    public static JsonSerializerOptions JsonOptions { get; } = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DictionaryKeyPolicy = null,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>
    /// What is missing for this record to be signed. A record is signed only when it is complete: the run has
    /// ended, model and policy are identified by well-formed digests, and every evidence file has one.
    /// </summary>
    public List<string> Incomplete()
    {
        var missing = new List<string>();
        static bool IsSha256(string? s) => s is { Length: 64 } && s.All(char.IsAsciiHexDigitLower);
        if (!IsSha256(Model?.Sha256)) missing.Add("model digest");
        if (string.IsNullOrEmpty(Model?.Name)) missing.Add("model name");
        if (!IsSha256(Policy?.Sha256)) missing.Add("policy digest");
        if (EndedAt == default || EndedAt < StartedAt) missing.Add("end time");
        if (Checks is null || Checks.Count == 0) missing.Add("check results");
        foreach (var e in Evidence.Where(e => !IsSha256(e.Sha256))) missing.Add($"digest of evidence file {e.Path}");
        foreach (var a in Approvals.Where(a => a.PolicySha256 != Policy?.Sha256)) missing.Add($"approval {a.File} is for another policy digest");
        return missing;
    }

    public static GateInfo CurrentGate()
    {
        var asm = typeof(DecisionRecord).Assembly;
        var info = asm.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";
        var plus = info.IndexOf('+');
        return plus < 0 ? new GateInfo(info, "unknown") : new GateInfo(info[..plus], info[(plus + 1)..]);
    }
}
