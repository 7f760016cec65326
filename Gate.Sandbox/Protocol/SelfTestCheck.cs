using System.Text.Json;
using System.Text.Json.Nodes;

namespace Gate.Sandbox.Protocol;

/// <summary>
/// The host does not simply believe a runner's self-test: the report must have exactly the shape the real runner
/// writes (these probes, each once, bounded strings), echo the nonce the host chose for this self-test, name the
/// uid the host started the runner as, and agree with what the host saw itself (a loopback probe that claims
/// "blocked" while the host's listener accepted a connection is a lie). Anything else rejects the report, and the
/// sandbox's checks end INCONCLUSIVE. A runner that knows this protocol can still forge a consistent report: the
/// isolation itself is enforced and verified from outside (the container's inspected configuration).
/// </summary>
public static class SelfTestCheck
{
    public static readonly IReadOnlyList<string> ProbeNames =
        ["network-loopback", "network-outside", "rootfs-write", "host-environment", "host-process-environ", "pids-limit"];

    private const int MaxText = 2048;
    private static readonly string[] ReportKeys = ["nonce", "uid", "probes"];
    private static readonly string[] ProbeKeys = ["name", "target", "outcome", "detail"];

    /// <summary>Why the report cannot be accepted, or null when it is consistent.</summary>
    /// <param name="loopbackConnections">Connections the host's loopback listener accepted while the self-test ran.</param>
    public static string? Problem(JsonObject report, SelfTestRequest req, long expectedUid, int loopbackConnections)
    {
        var keys = report.Select(kv => kv.Key).Order(StringComparer.Ordinal).ToList();
        if (!keys.SequenceEqual(ReportKeys.Order(StringComparer.Ordinal)))
            return $"it has the fields [{Clip(string.Join(", ", keys))}], expected exactly [{string.Join(", ", ReportKeys)}]";
        if (Text(report["nonce"]) != req.Nonce) return "it does not echo the nonce the host chose for this self-test (a canned or replayed report)";
        if (report["uid"] is not JsonValue u || u.GetValueKind() != JsonValueKind.Number
            || !long.TryParse(u.ToJsonString(), System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var uid))
            return "its uid is not an integer";
        if (uid != expectedUid) return $"it claims uid {uid}, but the host started the runner as uid {expectedUid}";
        if (report["probes"] is not JsonArray probes || probes.Count != ProbeNames.Count)
            return $"it must list exactly {ProbeNames.Count} probes";
        var outcomes = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in probes)
        {
            if (p is not JsonObject o || !o.Select(kv => kv.Key).Order(StringComparer.Ordinal).SequenceEqual(ProbeKeys.Order(StringComparer.Ordinal))
                || ProbeKeys.Any(k => Text(o[k]) is not { Length: <= MaxText }))
                return $"a probe is not an object of strings [{string.Join(", ", ProbeKeys)}] (each at most {MaxText} characters)";
            var name = Text(o["name"])!;
            var outcome = Text(o["outcome"])!;
            if (!ProbeNames.Contains(name)) return $"it has an unknown probe '{Clip(name)}'";
            if (outcome is not ("blocked" or "allowed")) return $"probe '{name}' has outcome '{Clip(outcome)}' (blocked or allowed)";
            if (!outcomes.TryAdd(name, outcome)) return $"probe '{name}' is listed twice";
        }
        if (outcomes["network-loopback"] == "blocked" && loopbackConnections > 0)
            return $"it claims the loopback probe was blocked, but the host's listener accepted {loopbackConnections} connection(s)";
        return null;
    }

    private static string? Text(JsonNode? n) => n is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
    private static string Clip(string s) => s.Length <= 80 ? s : s[..80] + "…";
}
