using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Gate.Core.Policy;

namespace Gate.Core.Governance;

public enum ChangeKind { Weakening, Strengthening, Neutral }

/// <summary>One semantic change between two policies, with where it is in each file and why it was classified so.</summary>
public sealed record PolicyChange(ChangeKind Kind, string Path, string? Old, string? New, string Why, SourceLocation? OldAt, SourceLocation? NewAt)
{
    public SourceLocation? At => NewAt ?? OldAt;
}

/// <summary>
/// <c>gate policy diff</c>: compares two policies' node trees semantically (checks matched by id, attack methods by
/// method, scenarios by name, lists of names as sets) and classifies each change with the schema's annotations:
/// <c>x-strength</c> (higher-is-stronger / lower-is-stronger) for numbers, durations, booleans and name sets,
/// <c>x-order</c> (weakest first) for enums, and <c>default</c> for keys that appear or disappear. A change the
/// rules cannot classify is reported as weakening: a governance tool fails closed.
/// </summary>
public static class PolicyDiff
{
    private static PolicySchema Schema => PolicySchema.V1;

    /// <summary>
    /// Policy-level settings that do not change what a model must demonstrate (documentation, reproducibility,
    /// resources). Check options say so in their own declaration (<see cref="Strength.Neutral"/>, x-strength: neutral).
    /// </summary>
    private static readonly HashSet<string> NeutralKeys =
    [
        "description", "owner", "name", "labels", "seed", "gpu", "memory", "cpus", "pids", "shape", "dtype", "format", "output",
    ];

    /// <summary>Orders the schema does not annotate (weakest first).</summary>
    private static readonly Dictionary<string, string[]> ExtraOrders = new()
    {
        ["runtime"] = ["builtin", "onnxruntime"],   // judging on the production runtime is stronger than on our engine
        ["release"] = ["false", "true"],            // a release policy is linted more strictly
    };

    private static readonly Dictionary<string, string> AbsentText = new() { ["release"] = "false" };

    /// <summary>
    /// What an absent requirement key means: bounds are open. (A check option's absence is declared with it: its
    /// default, or x-absent: unbounded for "no limit" / "the whole dataset".)
    /// </summary>
    private static readonly Dictionary<string, double> AbsentMeans = new()
    {
        ["min"] = double.NegativeInfinity, ["max"] = double.PositiveInfinity,
        ["confidence"] = 0, // no confidence level: the point estimate is judged, the weakest reading
    };

    public static IReadOnlyList<PolicyChange> Compare(DeploymentPolicy oldPolicy, DeploymentPolicy newPolicy)
    {
        var changes = new List<PolicyChange>();
        Walk(oldPolicy.Root, newPolicy.Root, Schema.Root, "", "", changes);
        JudgedEstimateChanges(oldPolicy, newPolicy, changes);
        return changes;
    }

    /// <summary>
    /// What a requirement judges (point estimate or an end of the confidence interval) is compared as bound, not
    /// as text, because an absent <c>bound</c> means the lower end when the check sets <c>confidence</c>. For a min,
    /// upper &lt; point &lt; lower (weakest first); for a max the reverse; a two-sided bound cannot be shown not to weaken.
    /// </summary>
    private static void JudgedEstimateChanges(DeploymentPolicy a, DeploymentPolicy b, List<PolicyChange> changes)
    {
        foreach (var cb in b.Spec.Checks)
        {
            if (a.Spec.Checks.FirstOrDefault(x => x.Id == cb.Id && x.Type == cb.Type) is not { } ca) continue;
            foreach (var (metric, nb) in cb.Require)
            {
                if (!ca.Require.TryGetValue(metric, out var na) || na.Bound == nb.Bound) continue;
                // Without an explicit bound on either side the change comes from `confidence`, which is reported by itself.
                static bool Explicit(CheckSpec c, string m) => ((c.Node["require"] as PolicyMapping)?[m] as PolicyMapping)?["bound"] is not null;
                if (!Explicit(ca, metric) && !Explicit(cb, metric)) continue;
                Estimate[]? order = (nb.Min, nb.Max) switch
                {
                    ({ }, null) => [Estimate.Upper, Estimate.Point, Estimate.Lower],
                    (null, { }) => [Estimate.Lower, Estimate.Point, Estimate.Upper],
                    _ => null,
                };
                string from = na.Bound.ToString().ToLowerInvariant(), to = nb.Bound.ToString().ToLowerInvariant();
                var kind = order is null ? ChangeKind.Weakening : Array.IndexOf(order, nb.Bound) > Array.IndexOf(order, na.Bound) ? ChangeKind.Strengthening : ChangeKind.Weakening;
                string why = order is null
                    ? $"judged value changed from {from} to {to} on a two-sided bound: cannot be shown not to weaken (review it)"
                    : $"judged value changed from {from} to {to} (for a {(nb.Min is not null ? "min" : "max")}, weakest first: {string.Join(" < ", order.Select(e => e.ToString().ToLowerInvariant()))})";
                changes.Add(new PolicyChange(kind, $"spec.checks[{cb.Id}].require.{metric}.bound", from, to, why, na.Location, nb.Location));
            }
        }
    }

    /// <summary>A dataset pin: adding one restricts the data to the approved files; removing or changing it cannot be shown not to weaken.</summary>
    private static void PinChange(PolicyNode? a, PolicyNode? b, string path, List<PolicyChange> changes)
    {
        if (Text(a) == Text(b)) return;
        var (kind, why) = (a, b) switch
        {
            (null, _) => (ChangeKind.Strengthening, "dataset pinned by sha256: only the approved files are accepted"),
            (_, null) => (ChangeKind.Weakening, "dataset pin removed: any file at the path, or given as a data override at check time, is accepted"),
            _ => (ChangeKind.Weakening, "pinned digest changed: the approved data is different (review the new files)"),
        };
        changes.Add(new PolicyChange(kind, path, Text(a), Text(b), why, a?.Location, b?.Location));
    }

    private static void Walk(PolicyNode? a, PolicyNode? b, JsonObject? schema, string path, string key, List<PolicyChange> changes)
    {
        if (a is null && b is null) return;
        schema = schema is null ? null : Schema.Resolve(schema);
        var strength = Str(schema?["x-strength"]);
        if (key == "preprocess" && path.StartsWith("spec.model.inputs.", StringComparison.Ordinal)) { PreprocessChange(a, b, path, changes); return; }

        if (a is PolicyMapping || b is PolicyMapping)
        {
            if (a is not null and not PolicyMapping || b is not null and not PolicyMapping) { Fallback(a, b, path, key, changes); return; }
            var ma = a as PolicyMapping; var mb = b as PolicyMapping;
            var typeNode = (mb ?? ma)!["type"];
            var keys = (ma?.Keys ?? []).Concat(mb?.Keys ?? []).Distinct().ToList();
            // A dataset that appears or disappears changes nothing by itself: only checks that use it do.
            if (key == "datasets-entry" && (ma is null || mb is null))
            {
                changes.Add(new PolicyChange(ChangeKind.Neutral, path, ma is null ? null : "defined", mb is null ? null : "defined",
                    ma is null ? "dataset added (it matters only through the checks that use it)" : "dataset removed (it mattered only through the checks that used it)", ma?.Location, mb?.Location));
                return;
            }
            foreach (var k in keys)
            {
                if (k == "bound") continue; // compared as resolved values in JudgedEstimateChanges
                if (k == "sha256" && path.StartsWith("spec.datasets.", StringComparison.Ordinal)) { PinChange(ma?[k], mb?[k], $"{path}.{k}", changes); continue; }
                var childSchema = ChildSchema(schema, k, typeNode);
                // A dataset's files are data, not metadata: "labels" there is not the neutral metadata.labels.
                string childKey = path == "spec.datasets" ? "datasets-entry" : path.StartsWith("spec.datasets.", StringComparison.Ordinal) ? $"dataset file '{k}'" : k;
                Walk(ma?[k], mb?[k], childSchema, path.Length == 0 ? k : $"{path}.{k}", childKey, changes);
            }
            return;
        }

        if (a is PolicySequence || b is PolicySequence)
        {
            if (a is not null and not PolicySequence || b is not null and not PolicySequence) { Fallback(a, b, path, key, changes); return; }
            var sa = a as PolicySequence; var sb = b as PolicySequence;
            var items = schema?["items"] as JsonObject;
            switch (key)
            {
                case "checks": Matched(sa, sb, items, path, n => Str(n, "id"), "check", changes); return;
                case "layers": SetChange(sa, sb, "higher-is-stronger", path, key, changes); return;
                case "range": RangeChange(sa, sb, path, changes); return;
            }
            // A declared list of named items (x-item-key: search by method, scenarios by name) is compared item by item.
            if (Str(schema?["x-item-key"]) is { } itemKey) { Matched(sa, sb, items, path, n => Str(n, itemKey), ItemNoun(key, itemKey), changes); return; }
            if (strength is "higher-is-stronger" or "lower-is-stronger") { SetChange(sa, sb, strength, path, key, changes); return; }
            if (Text(a) == Text(b)) return;
            if (strength == "neutral") { changes.Add(new PolicyChange(ChangeKind.Neutral, path, Text(a), Text(b), $"{key} changed; it does not change what the model must demonstrate", a?.Location, b?.Location)); return; }
            Fallback(a, b, path, key, changes);
            return;
        }

        ScalarChange(a as PolicyScalar, b as PolicyScalar, schema, strength, path, key, changes);
    }

    /// <summary>The schema for a mapping's child, following properties, additionalProperties and the per-type if/then of checks.</summary>
    private static JsonObject? ChildSchema(JsonObject? schema, string key, PolicyNode? typeNode)
    {
        if (schema is null) return null;
        if (schema["properties"]?[key] is JsonObject p && (key != "type" || schema["allOf"] is null)) return p;
        if (schema["allOf"] is JsonArray all && typeNode is PolicyScalar t)
            foreach (var branch in all.OfType<JsonObject>())
                if (Str(branch["if"]?["properties"]?["type"]?["const"]) == t.Value && branch["then"] is JsonObject then
                    && Schema.Resolve(then)["properties"]?[key] is JsonObject tp) return tp;
        if (schema["properties"]?[key] is JsonObject p2) return p2;
        return schema["additionalProperties"] as JsonObject;
    }

    /// <summary>Lists of named items (checks, attack methods, scenarios): matched by name, then compared item by item.</summary>
    private static void Matched(PolicySequence? a, PolicySequence? b, JsonObject? items, string path, Func<PolicyNode, string?> name, string what, List<PolicyChange> changes)
    {
        static Dictionary<string, PolicyNode> Index(PolicySequence? s, Func<PolicyNode, string?> name)
        {
            var d = new Dictionary<string, PolicyNode>();
            var seen = new Dictionary<string, int>();
            foreach (var (item, i) in (s?.Items ?? []).Select((x, i) => (x, i)))
            {
                var n = name(item) ?? $"#{i}";
                int k = seen[n] = seen.GetValueOrDefault(n) + 1;
                d[k == 1 ? n : $"{n}#{k}"] = item;
            }
            return d;
        }
        var ia = Index(a, name); var ib = Index(b, name);
        foreach (var n in ia.Keys.Concat(ib.Keys).Distinct())
        {
            string p = $"{path}[{n}]";
            ia.TryGetValue(n, out var x); ib.TryGetValue(n, out var y);
            if (x is null)
            {
                bool advisory = what == "check" && Str(y!, "enforcement") == "advisory";
                changes.Add(new PolicyChange(advisory ? ChangeKind.Neutral : ChangeKind.Strengthening, p, null, Summary(y!),
                    advisory ? $"{what} '{n}' added as advisory: reported, but it cannot block" : $"{what} '{n}' added: one more thing the model must pass", null, y!.Location));
            }
            else if (y is null)
            {
                bool advisory = what == "check" && Str(x, "enforcement") == "advisory";
                changes.Add(new PolicyChange(advisory ? ChangeKind.Neutral : ChangeKind.Weakening, p, Summary(x), null,
                    advisory ? $"advisory {what} '{n}' removed (it could not block)" : $"{what} '{n}' removed: the gate no longer tests this", x.Location, null));
            }
            else if (what == "check" && Str(x, "type") != Str(y, "type"))
                changes.Add(new PolicyChange(ChangeKind.Weakening, $"{p}.type", Str(x, "type"), Str(y, "type"),
                    "check type changed: a different test under the same id cannot be shown to be as strong", (x as PolicyMapping)?["type"]?.Location, (y as PolicyMapping)?["type"]?.Location));
            else Walk(x, y, items, p, what == "check" ? "check" : n, changes);
        }
    }

    private static void ScalarChange(PolicyScalar? a, PolicyScalar? b, JsonObject? schema, string? strength, string path, string key, List<PolicyChange> changes)
    {
        if (a is not null && b is not null && SameScalar(a, b)) return;
        var def = schema?["default"];
        string? absentText = def is not null ? $"{def.ToJsonString().Trim('"')} (default{(Str(schema?["x-scaled-with"]) is { } rule ? $"; scaled with the model: rule {rule}" : "")})" : Str(schema?["x-when-absent"]) is { } wa ? $"({wa})" : null;
        string? oldText = a?.Value ?? absentText, newText = b?.Value ?? absentText;
        string? oa = a?.Value ?? Str(def) ?? def?.ToJsonString() ?? AbsentText.GetValueOrDefault(key),
                nb = b?.Value ?? Str(def) ?? def?.ToJsonString() ?? AbsentText.GetValueOrDefault(key);

        if ((NeutralKeys.Contains(key) && strength is null) || strength == "neutral")
        {
            Add(ChangeKind.Neutral, $"{key} changed; it does not change what the model must demonstrate");
            return;
        }

        var order = (schema?["x-order"] as JsonArray)?.Select(v => Str(v)!).ToArray() ?? ExtraOrders.GetValueOrDefault(key);
        if (order is not null)
        {
            int ia = oa is null ? -1 : Array.IndexOf(order, oa), ib = nb is null ? -1 : Array.IndexOf(order, nb);
            if (ia < 0 || ib < 0) { Add(ChangeKind.Weakening, $"{key} set or unset without a known default: cannot be shown not to weaken"); return; }
            if (ia == ib) { Add(ChangeKind.Neutral, $"{key} is the same in effect ({order[ia]})"); return; }
            Add(ib > ia ? ChangeKind.Strengthening : ChangeKind.Weakening,
                $"{key} {(ib > ia ? "raised" : "lowered")} from {order[ia]} to {order[ib]} (order, weakest first: {string.Join(" < ", order)})");
            return;
        }

        if (strength is "higher-is-stronger" or "lower-is-stronger")
        {
            double? va = Number(a, def, key, schema), vb = Number(b, def, key, schema);
            if (va is null || vb is null)
            {
                Add(ChangeKind.Weakening, $"{key} {(a is null ? "set" : "removed")}, and what its absence means is not declared: cannot be shown not to weaken");
                return;
            }
            if (va == vb) { Add(ChangeKind.Neutral, $"{key} is the same in effect"); return; }
            bool up = vb > va;
            bool stronger = strength == "higher-is-stronger" ? up : !up;
            Add(stronger ? ChangeKind.Strengthening : ChangeKind.Weakening,
                $"{key} {(up ? "raised" : "lowered")}{(a is null ? " (was unset)" : b is null ? " (now unset)" : "")}; {(strength == "higher-is-stronger" ? "a higher" : "a lower")} value makes the gate stricter");
            return;
        }
        Add(ChangeKind.Weakening, $"{key} changed, and no rule says which way is stricter: cannot be shown not to weaken (review it)");

        void Add(ChangeKind kind, string why) => changes.Add(new PolicyChange(kind, path, oldText, newText, why, a?.Location, b?.Location));
    }

    /// <summary>What an item of a named list is called in messages: "attack method 'pgd'", "scenario 'night'".</summary>
    private static string ItemNoun(string listKey, string itemKey) => itemKey switch
    {
        "method" => "attack method",
        "name" => listKey.EndsWith('s') ? listKey[..^1] : listKey,
        _ => $"{listKey} item",
    };

    /// <summary>A scalar as a number for comparison: numbers, durations (seconds), booleans (0/1), the declared default or absent meaning.</summary>
    private static double? Number(PolicyScalar? s, JsonNode? def, string key, JsonObject? schema = null)
    {
        if (s is null)
        {
            if (Str(schema?["x-absent"]) == "unbounded") return double.PositiveInfinity;
            if (def is JsonValue dv)
            {
                if (dv.TryGetValue<double>(out var d)) return d;
                if (dv.TryGetValue<bool>(out var bo)) return bo ? 1 : 0;
                if (dv.TryGetValue<string>(out var ds) && PolicyLoader.ParseDuration(ds) is { } dt) return dt.TotalSeconds;
            }
            return AbsentMeans.TryGetValue(key, out var m) ? m : null;
        }
        if (s.IsNumber) return s.AsDouble();
        if (s.Kind == ScalarKind.Bool) return s.AsBool() ? 1 : 0;
        return PolicyLoader.ParseDuration(s.Value)?.TotalSeconds;
    }

    /// <summary>Lists of names compared as sets: for higher-is-stronger (denyOps, layers) adding is strengthening; for lower-is-stronger (allowOps) the reverse. An absent allow-list allows everything.</summary>
    private static void SetChange(PolicySequence? a, PolicySequence? b, string strength, string path, string key, List<PolicyChange> changes)
    {
        // Operator names compare in one spelling: com.microsoft.FusedGemm is com.microsoft:FusedGemm, ai.onnx.Relu is Relu.
        Func<string, string> spelling = key is "allowOps" or "denyOps" ? Checks.StaticInspection.StaticInspectionCheck.QualifiedOp : x => x;
        var sa = a?.Items.Select(i => (i as PolicyScalar)?.Value is { } v ? spelling(v) : Text(i)).ToHashSet();
        var sb = b?.Items.Select(i => (i as PolicyScalar)?.Value is { } v ? spelling(v) : Text(i)).ToHashSet();
        if (strength == "lower-is-stronger" && (sa is null || sb is null))
        {
            // No allow-list means anything is allowed: introducing one restricts, dropping one opens everything.
            if (sa is null && sb is null) return;
            changes.Add(new PolicyChange(sa is null ? ChangeKind.Strengthening : ChangeKind.Weakening, path, a is null ? "(anything)" : Text(a), b is null ? "(anything)" : Text(b),
                sa is null ? $"{key} introduced: only the listed names are now allowed" : $"{key} removed: anything is now allowed", a?.Location, b?.Location));
            return;
        }
        sa ??= []; sb ??= [];
        var added = sb.Except(sa).ToList(); var removed = sa.Except(sb).ToList();
        bool higher = strength == "higher-is-stronger";
        if (added.Count > 0)
            changes.Add(new PolicyChange(higher ? ChangeKind.Strengthening : ChangeKind.Weakening, path, Text(a) ?? "[]", Text(b) ?? "[]",
                $"{key} grew by {string.Join(", ", added)}" + (higher ? "" : ": more is allowed"), a?.Location, b?.Location));
        if (removed.Count > 0)
            changes.Add(new PolicyChange(higher ? ChangeKind.Weakening : ChangeKind.Strengthening, path, Text(a) ?? "[]", Text(b) ?? "[]",
                $"{key} shrank by {string.Join(", ", removed)}" + (higher ? ": less is covered" : ": less is allowed"), a?.Location, b?.Location));
    }

    /// <summary>
    /// Preprocessing decides which pixels exist (resize, crop) and what the network sees for them (channel order,
    /// scale, mean/std): every requirement and every ε is read through it, so no change to it is neutral, and none can
    /// be shown not to weaken (a different normalisation can make the same ε a smaller perturbation). One change for
    /// the block, naming what changed.
    /// </summary>
    private static void PreprocessChange(PolicyNode? a, PolicyNode? b, string path, List<PolicyChange> changes)
    {
        if (Text(a) == Text(b)) return;
        var ma = a as PolicyMapping; var mb = b as PolicyMapping;
        var keys = (ma?.Keys ?? []).Concat(mb?.Keys ?? []).Distinct().Where(k => Text(ma?[k]) != Text(mb?[k])).ToList();
        string what = a is null ? "preprocessing declared" : b is null ? "preprocessing removed" : $"preprocessing changed ({string.Join(", ", keys)})";
        changes.Add(new PolicyChange(ChangeKind.Weakening, path, Text(a), Text(b),
            $"{what}: the model is judged on differently prepared inputs, so every requirement and ε now measure something else; cannot be shown not to weaken (review it)",
            a?.Location, b?.Location));
    }

    /// <summary>An input range bounds what adversaries may try: a wider range is a larger search space.</summary>
    private static void RangeChange(PolicySequence? a, PolicySequence? b, string path, List<PolicyChange> changes)
    {
        if (Text(a) == Text(b)) return;
        double[]? ra = Pair(a), rb = Pair(b);
        if (ra is null || rb is null) { Fallback(a, b, path, "range", changes); return; }
        bool wider = rb[0] <= ra[0] && rb[1] >= ra[1];
        changes.Add(new PolicyChange(wider ? ChangeKind.Strengthening : ChangeKind.Weakening, path, Text(a), Text(b),
            wider ? "input range widened: adversaries may search a larger space" : "input range narrowed or moved: adversaries may no longer try some inputs", a?.Location, b?.Location));
        static double[]? Pair(PolicySequence? s) => s?.Items is [PolicyScalar { IsNumber: true } x, PolicyScalar { IsNumber: true } y] ? [x.AsDouble(), y.AsDouble()] : null;
    }

    private static void Fallback(PolicyNode? a, PolicyNode? b, string path, string key, List<PolicyChange> changes)
    {
        if (NeutralKeys.Contains(key))
            changes.Add(new PolicyChange(ChangeKind.Neutral, path, Text(a), Text(b), $"{key} changed; it does not change what the model must demonstrate", a?.Location, b?.Location));
        else
            changes.Add(new PolicyChange(ChangeKind.Weakening, path, Text(a), Text(b), $"{key} changed, and no rule says which way is stricter: cannot be shown not to weaken (review it)", a?.Location, b?.Location));
    }

    private static bool SameScalar(PolicyScalar a, PolicyScalar b) =>
        a.Value == b.Value || (a.IsNumber && b.IsNumber && a.AsDouble() == b.AsDouble());

    private static string? Str(JsonNode? n) => n is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
    private static string? Str(PolicyNode n, string key) => n is PolicyMapping m ? PolicyLoader.Str(m[key]) : null;

    private static string Summary(PolicyNode n) => n is PolicyMapping m && Str(m, "type") is { } t ? $"{t}{(Str(m, "enforcement") is { } e ? $" ({e})" : "")}" : Text(n) ?? "";

    /// <summary>Compact one-line text of a node, for messages and for comparing lists.</summary>
    public static string? Text(PolicyNode? n) => ReviewWords.Inline(n);

    // ---------------------------------------------------------------- rendering

    public static string RenderText(IReadOnlyList<PolicyChange> changes, string oldName, string newName)
    {
        var sb = new StringBuilder();
        sb.Append($"policy diff {oldName} → {newName}: {Counts(changes)}\n");
        foreach (var c in Ordered(changes))
        {
            sb.Append($"{c.Kind.ToString().ToLowerInvariant(),-13} {c.Path}: {c.Old ?? "(absent)"} → {c.New ?? "(absent)"}\n");
            sb.Append($"{"",-13} {c.Why}{(c.At is { } at ? $" [{at}]" : "")}\n");
        }
        if (changes.Count == 0) sb.Append("no semantic changes\n");
        return sb.ToString();
    }

    public static string RenderMarkdown(IReadOnlyList<PolicyChange> changes, string oldName, string newName)
    {
        var sb = new StringBuilder();
        bool weakens = changes.Any(c => c.Kind == ChangeKind.Weakening);
        sb.Append($"### Gate policy diff: {(weakens ? "⚠️ this change WEAKENS the gate" : "✅ no weakening")}\n\n");
        sb.Append($"`{Md(oldName)}` → `{Md(newName)}`: {Counts(changes)}\n\n");
        if (changes.Count == 0) return sb.Append("No semantic changes.\n").ToString();
        sb.Append("| | change | setting | old | new | why |\n|---|---|---|---|---|---|\n");
        foreach (var c in Ordered(changes))
        {
            string icon = c.Kind switch { ChangeKind.Weakening => "🔻", ChangeKind.Strengthening => "🔺", _ => "▫️" };
            sb.Append($"| {icon} | {c.Kind.ToString().ToLowerInvariant()} | `{c.Path.Replace("`", "'").Replace("|", "\\|")}` | {Md(c.Old ?? "—")} | {Md(c.New ?? "—")} | {Md(c.Why)} |\n");
        }
        return sb.ToString();
    }

    private static string Md(string s) => Report.ReportWriter.MdCell(s).Replace("\\`", "'");
    private static IEnumerable<PolicyChange> Ordered(IReadOnlyList<PolicyChange> changes) => changes.OrderBy(c => c.Kind);
    private static string Counts(IReadOnlyList<PolicyChange> changes) =>
        string.Format(CultureInfo.InvariantCulture, "{0} weakening, {1} strengthening, {2} neutral",
            changes.Count(c => c.Kind == ChangeKind.Weakening), changes.Count(c => c.Kind == ChangeKind.Strengthening), changes.Count(c => c.Kind == ChangeKind.Neutral));
}
