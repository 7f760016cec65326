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
    public JsonArray Approvals { get; init; } = [];
    public required GateInfo Gate { get; init; }
    public required ulong Seed { get; init; }
    public RuntimeInfo? Runtime { get; set; }
    public required SandboxInfo Sandbox { get; set; }
    public required List<CheckResult> Checks { get; init; }
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

    public static GateInfo CurrentGate()
    {
        var asm = typeof(DecisionRecord).Assembly;
        var info = asm.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";
        var plus = info.IndexOf('+');
        return plus < 0 ? new GateInfo(info, "unknown") : new GateInfo(info[..plus], info[(plus + 1)..]);
    }
}
