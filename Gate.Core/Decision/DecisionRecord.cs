using System.Reflection;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Gate.Core.Evidence;
using Gate.Core.IO;
using Gate.Core.Policy;
using Gate.Core.Runtime;

namespace Gate.Core.Decision;

public sealed record ArtifactRef(string Name, string Path, string Sha256, long Bytes);

/// <summary>One dataset file as evaluated: where it was read, its SHA-256, size, element type and shape, and whether a data override supplied it.</summary>
public sealed record DatasetFile(string Path, string Sha256, long Bytes, string Dtype, int[] Shape, bool Overridden)
{
    /// <summary>
    /// For images: the folder or manifest the array was decoded from (<see cref="Path"/> names it; <see cref="Sha256"/>
    /// is the digest of the decoded array as .npy bytes, which is what the checks read). Null for array files.
    /// </summary>
    public Tensors.ImageSource? DecodedFrom { get; init; }
    /// <summary>
    /// For one file per input: each input's file as read (<see cref="Input"/> names the input it feeds), with its own
    /// digest; <see cref="Sha256"/> is then the digest of the .npz the host composed from them, which the checks read.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public IReadOnlyList<DatasetFile>? ComposedFrom { get; init; }
    /// <summary>The model input this file feeds, for a file of <see cref="ComposedFrom"/>; null otherwise.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Input { get; init; }
    /// <summary>Host side only: where the decoded .npy was written for the sandbox to read; never recorded.</summary>
    [System.Text.Json.Serialization.JsonIgnore] public string? Materialized { get; init; }
}

/// <summary>
/// A dataset the checks were judged on: its files (digests taken on the host at plan time, before anything ran),
/// the sample count, whether the policy pinned it by SHA-256, and the checks that used it.
/// </summary>
public sealed record DatasetRecord(string Name, int Samples, DatasetFile Inputs, DatasetFile? Labels, bool Pinned, IReadOnlyList<string> UsedBy)
{
    /// <summary>A file of this dataset came from a data override at check time instead of the policy: flagged in the report.</summary>
    public bool Overridden => Inputs.Overridden || Labels?.Overridden == true;
}
public sealed record GateInfo(string Version, string Commit);
public sealed record SandboxInfo(string Backend, IsolationLevel Isolation, IsolationLevel RequiredIsolation, string? ImageId, JsonObject? SelfTest, string? Fault)
{
    /// <summary>The container image the sandbox ran (tag), beside <see cref="ImageId"/>; null for other backends.</summary>
    public string? Image { get; init; }
    /// <summary>Why <c>--sandbox auto</c> did not use a stronger backend (e.g. no Docker engine answered); null when it did.</summary>
    public string? FallbackReason { get; init; }
    /// <summary>
    /// The plan's cost estimate from the pass the sandbox measured before its checks ran: per check, in total, and
    /// against the wall time. An estimate from a timing, so it lives here, beside the other facts of this host's
    /// run, never among the checks' results that shards and replays reproduce. Null when nothing was measured.
    /// </summary>
    public Gate.Core.Decision.PlanEstimate? Estimate { get; init; }
}

/// <summary>Where a decision points at the model signature made beside it: the bundle file, its SHA-256, and the signed model digest.</summary>
public sealed record ModelSignatureRef(string File, string Sha256, string ModelDigest, IReadOnlyList<string> Files);

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
    /// <summary>Every dataset the checks used, as evaluated (path, SHA-256, shape, samples, overrides): part of what is signed.</summary>
    public List<DatasetRecord> Datasets { get; init; } = [];
    public required List<CheckResult> Checks { get; init; }
    /// <summary>The OpenSSF model-signing signature written beside a signed decision (model.sig): file, its digest, the signed model digest.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ModelSignatureRef? ModelSignature { get; set; }
    /// <summary>A split run: executor, each shard (units, node, exit, result digest) and their Merkle root; null for one shard.</summary>
    public ExecutionInfo? Execution { get; set; }
    /// <summary>Every evidence file of every check, digested on the host: what <c>gate verify --evidence</c> re-checks.</summary>
    public List<EvidenceEntry> Evidence { get; init; } = [];
    public required DateTimeOffset StartedAt { get; init; }
    public DateTimeOffset EndedAt { get; set; }

    public string ToJson() => JsonSerializer.Serialize(this, GateJson.Options);

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
        foreach (var d in Datasets)
            foreach (var f in new[] { d.Inputs, d.Labels }.OfType<DatasetFile>().Where(f => !IsSha256(f.Sha256)))
                missing.Add($"digest of dataset file {f.Path}");
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
