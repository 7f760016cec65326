using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Gate.Core.Decision;
using Gate.Core.Evidence;
using Gate.Core.IO;
using Gate.Core.Policy;
using Gate.Core.Report;

namespace Gate.Core.Governance;

/// <summary>What a proposed policy does to one check of a stored decision.</summary>
public enum CheckImpactKind { Unchanged, Rejudged, NeedsRerun, Added, Removed }

public sealed record CheckImpact(string CheckId, CheckImpactKind Kind, Verdict? OldVerdict, Verdict? NewVerdict, string Why);

/// <summary>
/// One stored decision re-judged under a proposed policy. <see cref="NewDecision"/> is null when the stored evidence
/// cannot settle it (a check must be re-run); it is still set when the re-judged checks alone force REJECT.
/// </summary>
public sealed record DecisionImpact(string DecisionFile, string Model, GateDecision OldDecision, GateDecision? NewDecision,
    IReadOnlyList<CheckImpact> Checks, IReadOnlyList<string> Notes)
{
    public bool Flips => NewDecision is { } d && d != OldDecision;
    public bool NeedsRerun => NewDecision is null;
}

/// <summary>What a proposed policy does to stored decisions, as a whole (the CLI maps it to its exit code).</summary>
public enum ImpactOutcome { NoChange, SomeFlip, SomeNeedRerun }

/// <summary>
/// <c>gate policy impact</c>: re-judges stored decisions under a proposed policy, for governance review before the
/// change is approved. The policy each decision was made under is found by its recorded digest (at its recorded
/// path or among <c>--policies</c>) and compared with the proposal by <see cref="PolicyDiff"/>. Thresholds
/// (<c>require.*.min/max</c>), enforcement and <c>decision.onInconclusive</c> are re-judged from the recorded
/// metrics; anything that changes what a check measures (budget, ε, data, method, seed, model inputs, sandbox) needs a
/// re-run, and so does every check when the old policy cannot be found. Nothing is guessed.
/// </summary>
public static class PolicyImpact
{
    private static readonly Regex CheckPath = new(@"^spec\.checks\[(?<id>[^\]]+)\](?<rest>.*)$", RegexOptions.CultureInvariant);

    /// <summary>Every decision.json under each path (a decision file, an output folder, or a folder of them).</summary>
    public static List<string> FindDecisions(IEnumerable<string> paths)
    {
        var found = new List<string>();
        foreach (var p in paths)
        {
            if (File.Exists(p)) found.Add(Path.GetFullPath(p));
            else if (Directory.Exists(p))
                found.AddRange(Directory.EnumerateFiles(p, "decision.json", new EnumerationOptions { RecurseSubdirectories = true, MaxRecursionDepth = 8 })
                    .Select(Path.GetFullPath).Order(StringComparer.Ordinal));
            else throw new GateInputException($"{p}: no such file or folder (expected a decision.json or a folder of gate outputs)");
        }
        if (found.Count == 0) throw new GateInputException($"no decision.json found under {string.Join(", ", paths)}");
        return [.. found.Distinct()];
    }

    public static List<DecisionImpact> Analyse(DeploymentPolicy proposed, IEnumerable<string> decisionFiles, IEnumerable<string> policyHistory)
    {
        var history = IndexPolicies(policyHistory);
        return [.. decisionFiles.Select(f => AnalyseOne(proposed, f, history))];
    }

    private static Dictionary<string, string> IndexPolicies(IEnumerable<string> paths)
    {
        var bySha = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in paths)
        {
            IEnumerable<string> files = Directory.Exists(p) ? Directory.EnumerateFiles(p, "*.y*ml", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
                : File.Exists(p) ? [p] : throw new GateInputException($"{p}: no such file or folder") { Input = UserInput.PolicyHistory };
            foreach (var f in files) bySha.TryAdd(Sha256(f), f);
        }
        return bySha;
    }

    private static string Sha256(string path) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(UntrustedInput.ReadRegularFile(path, PolicyYamlReader.MaxBytes, "policy file")));

    private static DecisionRecord ReadRecord(string file)
    {
        try
        {
            var record = JsonSerializer.Deserialize<DecisionRecord>(UntrustedInput.ReadRegularFile(file, 64L << 20, "decision.json"), GateJson.Options)
                ?? throw new GateInputException($"{file}: empty decision record");
            // A stored decision may have been edited: the shape the analysis relies on is checked, not assumed.
            if (record.Checks is null || record.Policy is null || record.Model is null)
                throw new GateInputException($"{file}: not a Gate decision record (no checks, policy or model)");
            var ids = new HashSet<string>(StringComparer.Ordinal);
            for (int i = 0; i < record.Checks.Count; i++)
                if (record.Checks[i]?.Id is not { } id || !ids.Add(id))
                    throw new GateInputException($"{file}: checks[{i}]: {(record.Checks[i]?.Id is null ? "no check id" : $"check id '{SafeText.Line(record.Checks[i].Id)}' appears twice")}");
            return record;
        }
        catch (JsonException e) { throw new GateInputException($"{file}: not a Gate decision record ({e.Message})"); }
    }

    private static DecisionImpact AnalyseOne(DeploymentPolicy proposed, string file, Dictionary<string, string> history)
    {
        var record = ReadRecord(file);
        var notes = new List<string>();
        var impacts = new List<CheckImpact>();
        var recorded = record.Checks.ToDictionary(c => c.Id, StringComparer.Ordinal);

        // The policy the decision was made under, identified by digest only: a file that merely has the same name is not it.
        string? oldPath = record.Policy.Path is { Length: > 0 } rp && File.Exists(rp) && Sha256(rp) == record.Policy.Sha256 ? rp
            : history.GetValueOrDefault(record.Policy.Sha256);
        HashSet<string>? rerunAll = null;
        var rerun = new Dictionary<string, string>(StringComparer.Ordinal);
        var rejudge = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        var decisionRuleChanges = new List<string>();
        if (oldPath is null)
        {
            rerunAll = [];
            notes.Add($"the policy this decision was made under (sha256 {record.Policy.Sha256}, recorded at {record.Policy.Path}) was not found; " +
                "without it no change can be told apart from a budget or ε change (give the earlier policy versions)");
        }
        else if (record.Policy.Sha256 == proposed.Sha256) notes.Add("made under this exact policy (same sha256)");
        else
        {
            foreach (var c in PolicyDiff.Compare(PolicyLoader.Load(oldPath), proposed))
            {
                string change = $"{c.Path}: {c.Old ?? "—"} → {c.New ?? "—"}";
                if (c.Path == "metadata" || c.Path.StartsWith("metadata.", StringComparison.Ordinal)) continue;
                if (c.Path.StartsWith("spec.decision", StringComparison.Ordinal)) { decisionRuleChanges.Add(change); continue; }
                var m = CheckPath.Match(c.Path);
                if (!m.Success) { rerunAll ??= []; rerunAll.Add(change); continue; }
                string id = m.Groups["id"].Value, rest = m.Groups["rest"].Value;
                if (rest.Length == 0 || rest == ".description") continue; // added/removed checks are handled below
                if (rest == ".enforcement" || IsThreshold(rest))
                    (rejudge.TryGetValue(id, out var l) ? l : rejudge[id] = []).Add(change);
                else rerun.TryAdd(id, change);
            }
        }
        if (rerunAll is { Count: > 0 }) notes.Add($"changes outside the checks' thresholds affect every check: {string.Join("; ", rerunAll)}");
        if (decisionRuleChanges.Count > 0) notes.Add($"decision rule re-applied: {string.Join("; ", decisionRuleChanges)}");

        var known = new List<CheckResult>();
        bool unknown = false;
        foreach (var spec in proposed.Spec.Checks)
        {
            if (!recorded.TryGetValue(spec.Id, out var old))
            {
                impacts.Add(new(spec.Id, CheckImpactKind.Added, null, null, "new check: it has never run on this model"));
                unknown = true;
                continue;
            }
            if (rerunAll is not null || rerun.ContainsKey(spec.Id) || old.Type != spec.Type)
            {
                var why = rerun.GetValueOrDefault(spec.Id) ?? (old.Type != spec.Type ? $"type {old.Type} → {spec.Type}"
                    : rerunAll!.Count > 0 ? string.Join("; ", rerunAll) : "old policy unavailable");
                impacts.Add(new(spec.Id, CheckImpactKind.NeedsRerun, old.Verdict, null, $"needs a re-run: {why} (the recorded result answers a different question)"));
                unknown = true;
                continue;
            }
            var (result, missing) = Rejudge(old, spec);
            if (missing is not null)
            {
                impacts.Add(new(spec.Id, CheckImpactKind.NeedsRerun, old.Verdict, null, $"needs a re-run: {missing}"));
                unknown = true;
                continue;
            }
            known.Add(result);
            bool changed = rejudge.ContainsKey(spec.Id);
            var text = changed ? $"{string.Join("; ", rejudge[spec.Id])}; {Describe(result)}" : "unchanged";
            impacts.Add(new(spec.Id, changed ? CheckImpactKind.Rejudged : CheckImpactKind.Unchanged, old.Verdict, result.Verdict, text));
        }
        foreach (var old in record.Checks.Where(c => proposed.Spec.Checks.All(s => s.Id != c.Id)))
            impacts.Add(new(old.Id, CheckImpactKind.Removed, old.Verdict, null, "removed by the proposed policy: no longer counts"));

        GateDecision? decision;
        if (!unknown) decision = DecisionRules.Decide(proposed.Spec.Decision, known).Decision;
        // A blocking failure rejects whatever the checks still to be re-run would say.
        else decision = known.Any(r => r.Enforcement == Enforcement.Blocking && r.Verdict == Verdict.Fail) ? GateDecision.Reject : null;
        return new(file, record.Model.Name, record.Decision, decision, impacts, notes);
    }

    /// <summary>
    /// A bound (<c>require.min</c>, <c>require.M.max</c>) or a whole metric requirement appearing or disappearing. How a
    /// bound is read (<c>bound</c>, <c>confidence</c>) changes the value judged, which only a re-run can supply.
    /// </summary>
    private static bool IsThreshold(string rest)
    {
        var parts = rest.Split('.', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length < 2 || parts[0] != "require" || parts.Length > 3) return false;
        return parts[^1] is "min" or "max" || (parts.Length == 2 && parts[1] is not ("bound" or "confidence"));
    }

    /// <summary>
    /// The check re-judged from its recorded metrics under the proposed thresholds and enforcement. A verdict that came
    /// from the check itself (a counterexample, a fault, an exhausted budget: reasons other than requirement outcomes) is
    /// kept, so relaxing a threshold never turns a found failure into a pass. Returns a reason instead when a required
    /// metric was never recorded.
    /// </summary>
    private static (CheckResult Result, string? Missing) Rejudge(CheckResult old, CheckSpec spec)
    {
        var judged = old.Requirements.Where(r => r.Value is not null).ToDictionary(r => r.Metric, r => r.Value!.Value, StringComparer.Ordinal);
        var missing = spec.Require.Keys.Where(k => !judged.ContainsKey(k) && !old.Metrics.ContainsKey(k)).ToList();
        var requirementReasons = old.Requirements.SelectMany(r => new[] { r.Text, $"requirement failed: {r.Text}" }).ToHashSet(StringComparer.Ordinal);
        var own = old.Reasons.Where(r => !requirementReasons.Contains(r)).ToList();
        var result = new CheckResult
        {
            Id = old.Id, Type = old.Type, Enforcement = spec.Enforcement, Summary = old.Summary, Reasons = own,
            Metrics = old.Metrics, Coverage = old.Coverage,
            // Only when the requirement outcomes alone explain a non-pass (no reasons of the check's own) is it re-judged.
            Verdict = old.Verdict == Verdict.Pass || (own.Count == 0 && old.Requirements.Any(q => q.Holds != true)) ? Verdict.Pass : old.Verdict,
        };
        if (missing.Count > 0 && result.Verdict == Verdict.Pass)
            return (result, $"{string.Join(", ", missing)} {(missing.Count == 1 ? "was" : "were")} not recorded by the stored run");
        Requirements.Apply(result, spec.Require, judged);
        return (result, null);
    }

    private static string Describe(CheckResult r) =>
        r.Requirements.Count == 0 ? r.Verdict.ToString().ToUpperInvariant()
            : $"{r.Verdict.ToString().ToUpperInvariant()} ({string.Join("; ", r.Requirements.Select(q => q.Text))})";

    /// <summary>The analysis in one word: some decision flips, else some need a re-run to tell, else nothing changes.</summary>
    public static ImpactOutcome Outcome(IReadOnlyList<DecisionImpact> impacts) =>
        impacts.Any(i => i.Flips) ? ImpactOutcome.SomeFlip : impacts.Any(i => i.NeedsRerun) ? ImpactOutcome.SomeNeedRerun : ImpactOutcome.NoChange;

    private static string D(GateDecision? d) => d?.ToString().ToUpperInvariant() ?? "RE-RUN NEEDED";
    private static string V(Verdict? v) => v?.ToString().ToUpperInvariant() ?? "—";

    private static string Headline(IReadOnlyList<DecisionImpact> impacts) => string.Format(CultureInfo.InvariantCulture,
        "{0} decision(s): {1} flip, {2} need a re-run, {3} unchanged",
        impacts.Count, impacts.Count(i => i.Flips), impacts.Count(i => i.NeedsRerun), impacts.Count(i => !i.Flips && !i.NeedsRerun));

    public static string RenderText(IReadOnlyList<DecisionImpact> impacts, string policyName)
    {
        var sb = new StringBuilder($"Impact of {policyName} on stored decisions: {Headline(impacts)}\n");
        foreach (var i in impacts)
        {
            string mark = i.Flips ? "FLIP  " : i.NeedsRerun ? "RE-RUN" : "same  ";
            sb.Append($"\n{mark} {UntrustedInput.Printable(i.DecisionFile)} ({UntrustedInput.Printable(i.Model)}): {D(i.OldDecision)} → {D(i.NewDecision)}\n");
            foreach (var n in i.Notes) sb.Append($"         note: {UntrustedInput.Printable(n)}\n");
            foreach (var c in i.Checks.Where(c => c.Kind != CheckImpactKind.Unchanged))
                sb.Append($"         {UntrustedInput.Printable(c.CheckId)}: {V(c.OldVerdict)} → {V(c.NewVerdict)}: {UntrustedInput.Printable(c.Why)}\n");
        }
        return sb.ToString();
    }

    public static string RenderMarkdown(IReadOnlyList<DecisionImpact> impacts, string policyName)
    {
        static string Md(string s) => Report.ReportWriter.MdCell(UntrustedInput.Printable(s));
        var sb = new StringBuilder();
        bool flips = impacts.Any(i => i.Flips);
        sb.Append($"### Gate policy impact: {(flips ? "⚠️ past decisions would FLIP" : impacts.Any(i => i.NeedsRerun) ? "❔ some decisions need a re-run" : "✅ no past decision changes")}\n\n");
        sb.Append($"`{Md(policyName)}` against stored decisions: {Headline(impacts)}\n\n");
        sb.Append("| | decision | model | before | after | why |\n|---|---|---|---|---|---|\n");
        foreach (var i in impacts)
        {
            string icon = i.Flips ? "🔁" : i.NeedsRerun ? "❔" : "▫️";
            var why = string.Join("<br>", i.Notes.Concat(i.Checks.Where(c => c.Kind != CheckImpactKind.Unchanged)
                .Select(c => $"{c.CheckId}: {V(c.OldVerdict)} → {V(c.NewVerdict)}: {c.Why}")).Select(Md));
            sb.Append($"| {icon} | `{Md(i.DecisionFile)}` | {Md(i.Model)} | {D(i.OldDecision)} | {D(i.NewDecision)} | {(why.Length == 0 ? "—" : why)} |\n");
        }
        return sb.ToString();
    }
}
