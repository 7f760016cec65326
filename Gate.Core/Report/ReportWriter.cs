using System.Globalization;
using System.Text;
using System.Xml;
using Gate.Core.Decision;
using Gate.Core.Evidence;
using Gate.Core.Policy;

namespace Gate.Core.Report;

/// <summary>
/// Writes the human and CI views of a decision next to decision.json: <c>report.html</c> (one self-contained file:
/// inline CSS and SVG, no scripts, no external assets), <c>summary.md</c> (for CI logs) and <c>junit.xml</c>
/// (one test case per check, so CI systems list checks natively).
/// </summary>
public static class ReportWriter
{
    public const string HtmlFile = "report.html", MarkdownFile = "summary.md", JUnitFile = "junit.xml";

    /// <returns>The paths written.</returns>
    public static IReadOnlyList<string> Write(DecisionRecord record, string outDir)
    {
        Directory.CreateDirectory(outDir);
        var written = new List<string>();
        foreach (var (name, text) in new[] { (HtmlFile, RenderHtml(record)), (MarkdownFile, RenderMarkdown(record)), (JUnitFile, RenderJUnit(record)) })
        {
            var path = Path.Combine(outDir, name);
            Gate.Core.IO.AtomicFile.WriteText(path, text);
            written.Add(path);
        }
        return written;
    }

    private static string Upper(GateDecision d) => d.ToString().ToUpperInvariant();
    private static string Upper(Verdict v) => v.ToString().ToUpperInvariant();
    private static string Lower(Enforcement e) => e.ToString().ToLowerInvariant();
    private static string Time(DateTimeOffset t) => t.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    // ---------------------------------------------------------------- HTML

    private const string Css = """
        body{font:15px/1.45 system-ui,-apple-system,"Segoe UI","DejaVu Sans",sans-serif;margin:0;color:#1d1d1f;background:#f4f5f7}
        main{max-width:980px;margin:0 auto;padding:24px}
        .banner{border-radius:10px;padding:18px 24px;color:#fff;margin-bottom:18px}
        .banner h1{margin:0;font-size:30px;letter-spacing:.04em}.banner p{margin:4px 0 0}
        .approve{background:#1e7b3a}.reject{background:#b3261e}.inconclusive{background:#a36200}
        .card{background:#fff;border-radius:10px;padding:16px 20px;margin:14px 0;box-shadow:0 1px 3px rgba(0,0,0,.08)}
        h2{font-size:20px;margin:4px 0 10px}h3{font-size:15px;margin:14px 0 6px;color:#444}
        table{border-collapse:collapse;width:100%;font-size:14px}td,th{border-bottom:1px solid #e5e5e5;padding:5px 8px;text-align:left;vertical-align:top}
        th{background:#fafafa;font-weight:600}code,.mono{font-family:"DejaVu Sans Mono",ui-monospace,monospace;font-size:12.5px;word-break:break-all}
        .pill{display:inline-block;border-radius:999px;padding:1px 10px;font-size:12px;font-weight:700;color:#fff}
        .pill.pass{background:#1e7b3a}.pill.fail{background:#b3261e}.pill.inconclusive{background:#a36200}
        .muted{color:#666}.ok{color:#1e7b3a;font-weight:600}.bad{color:#b3261e;font-weight:600}.unk{color:#a36200;font-weight:600}
        .plot text.tick{font-size:11px;fill:#444}.plot text.axis{font-size:12px;fill:#222}
        .masks{display:flex;flex-wrap:wrap;gap:12px}.mask{margin:0;text-align:center;font-size:12px}.mask svg{border:1px solid #ccc}
        .mask.flagged svg{border:2px solid #b3261e}.mask.flagged figcaption{color:#b3261e;font-weight:700}
        ul{margin:6px 0;padding-left:22px}
        """;

    public static string RenderHtml(DecisionRecord r)
    {
        var sb = new StringBuilder();
        string cls = r.Decision.ToString().ToLowerInvariant();
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
          // No scripts, no network: the CSP makes that a property of the file, not just of how we wrote it.
          .Append("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">")
          .Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
          .Append($"<title>Gate {Upper(r.Decision)} — {Html.Escape(r.Model.Name)} / {Html.Escape(r.PolicyName)}</title><style>{Css}</style></head><body><main>");

        sb.Append($"<header id=\"verdict\" class=\"banner {cls}\" data-decision=\"{Upper(r.Decision)}\"><h1>{Upper(r.Decision)}</h1>")
          .Append($"<p>{Html.Escape(r.Model.Name)} judged against policy <b>{Html.Escape(r.PolicyName)}</b></p></header>");

        sb.Append("<section class=\"card\" id=\"reasons\"><h2>Why</h2><ul>");
        foreach (var reason in r.Reasons) sb.Append($"<li>{Html.Escape(reason)}</li>");
        sb.Append("</ul>");
        foreach (var d in r.Datasets.Where(d => d.Overridden))
            sb.Append($"<p class=\"bad\" data-overridden-dataset=\"{Html.Escape(d.Name)}\">{Html.Escape(OverrideText(d))}</p>");
        sb.Append("<table><tr><th>check</th><th>type</th><th>enforcement</th><th>verdict</th><th>summary</th></tr>");
        foreach (var c in r.Checks)
            sb.Append($"<tr><td><a href=\"#{Html.Escape(Anchor(c.Id))}\">{Html.Escape(c.Id)}</a></td><td>{Html.Escape(c.Type)}</td><td>{Lower(c.Enforcement)}</td><td>{Pill(c.Verdict)}</td><td>{Html.Escape(c.Summary)}</td></tr>");
        sb.Append("</table></section>");

        sb.Append("<section class=\"card\" id=\"provenance\"><h2>What was judged, by what</h2><table>");
        Row(sb, "model", $"{r.Model.Name}", $"sha256 {r.Model.Sha256}");
        Row(sb, "policy", $"{r.PolicyName} ({Path.GetFileName(r.Policy.Path)})", $"sha256 {r.Policy.Sha256}");
        foreach (var d in r.Datasets)
            Row(sb, $"dataset {d.Name}", $"{d.Samples} samples{(d.Overridden ? " · OVERRIDDEN at check time (data override)" : "")}{(d.Pinned ? " · pinned by the policy" : "")} · used by {string.Join(", ", d.UsedBy)}",
                string.Join("; ", new[] { d.Inputs, d.Labels }.OfType<DatasetFile>().Select(f => $"{f.Path} {f.Dtype}[{string.Join(",", f.Shape)}] sha256 {f.Sha256}")));
        Row(sb, "approvals", r.Approvals.Count == 0 ? "none recorded" : $"{r.Approvals.Count} recorded", null);
        Row(sb, "gate", $"{r.Gate.Version}", $"commit {r.Gate.Commit}");
        Row(sb, "runtime", r.Runtime is null ? "none opened" : $"{r.Runtime.Name} {r.Runtime.Version} · {r.Runtime.Provider} on {r.Runtime.Device}",
            r.Runtime?.FallbackReason);
        Row(sb, "sandbox", $"{r.Sandbox.Backend}, isolation {r.Sandbox.Isolation.Name()} (required {r.Sandbox.RequiredIsolation.Name()})", r.Sandbox.Fault is null ? null : $"fault: {r.Sandbox.Fault}");
        Row(sb, "seed", r.Seed.ToString(CultureInfo.InvariantCulture), null);
        Row(sb, "time", $"{Time(r.StartedAt)} → {Time(r.EndedAt)}", null);
        sb.Append("</table></section>");

        foreach (var c in r.Checks) CheckSection(sb, c);
        sb.Append("<p class=\"muted\">Generated by Gate. The signed record is decision.json (and its attestation); this page is a view of it.</p>");
        return sb.Append("</main></body></html>\n").ToString();
    }

    private static string Anchor(string id) => "check-" + id;
    private static string Pill(Verdict v) => $"<span class=\"pill {v.ToString().ToLowerInvariant()}\">{Upper(v)}</span>";

    private static void Row(StringBuilder sb, string key, string value, string? note) =>
        sb.Append($"<tr><th>{Html.Escape(key)}</th><td>{Html.Escape(value)}{(note is null ? "" : $"<br><span class=\"mono muted\">{Html.Escape(note)}</span>")}</td></tr>");

    private static void CheckSection(StringBuilder sb, CheckResult c)
    {
        sb.Append($"<section class=\"card check\" id=\"{Html.Escape(Anchor(c.Id))}\" data-check-id=\"{Html.Escape(c.Id)}\" data-verdict=\"{Upper(c.Verdict)}\">")
          .Append($"<h2>{Pill(c.Verdict)} {Html.Escape(c.Id)} <span class=\"muted\">· {Html.Escape(c.Type)} · {Lower(c.Enforcement)}</span></h2>")
          .Append($"<p>{Html.Escape(c.Summary)}</p>");
        if (c.Reasons.Count > 0)
        {
            sb.Append("<h3>Reasons</h3><ul>");
            foreach (var reason in c.Reasons) sb.Append($"<li>{Html.Escape(reason)}</li>");
            sb.Append("</ul>");
        }
        if (c.Requirements.Count > 0)
        {
            sb.Append("<h3>Requirements</h3><table><tr><th>metric</th><th>required</th><th>measured</th><th>outcome</th></tr>");
            foreach (var q in c.Requirements)
            {
                var mb = new MetricBound(q.Min, q.Max, default, q.Bound);
                string bound = mb.ToString();
                string outcome = q.Holds switch { true => "<span class=\"ok\">met</span>", false => "<span class=\"bad\">not met</span>", null => "<span class=\"unk\">not measured</span>" };
                sb.Append($"<tr><td>{Html.Escape(mb.Describe(q.Metric))}</td><td>{Html.Escape(bound)}</td><td>{(q.Value is double v ? Svg.Num(v) : "—")}</td><td>{outcome}</td></tr>");
            }
            sb.Append("</table>");
        }
        Plots(sb, c);
        if (c.Metrics.Count > 0)
        {
            sb.Append("<h3>Metrics</h3><table><tr><th>metric</th><th>value</th></tr>");
            foreach (var (k, v) in c.Metrics) sb.Append($"<tr><td>{Html.Escape(k)}</td><td>{Html.Escape(Svg.Num(v))}</td></tr>");
            sb.Append("</table>");
        }
        sb.Append("<h3>Coverage</h3>")
          .Append(c.Coverage is { Length: > 0 } cov ? $"<p>{Html.Escape(cov)}</p>" : "<p class=\"muted\">The check stated no coverage.</p>");
        if (c.BudgetUsed.Count > 0)
            sb.Append("<p class=\"muted\">Budget used: ").Append(Html.Escape(string.Join(", ", c.BudgetUsed.Select(kv => $"{kv.Key} {kv.Value}")))).Append("</p>");
        if (c.Evidence.Count > 0)
        {
            sb.Append("<h3>Evidence</h3><table><tr><th>file</th><th>what</th><th>bytes</th><th>sha256</th></tr>");
            foreach (var e in c.Evidence)
                sb.Append($"<tr><td class=\"mono\">evidence/{Html.Escape(e.Path)}</td><td>{Html.Escape(e.Description)}</td><td>{e.Bytes}</td><td class=\"mono\">{Html.Escape(e.Sha256)}</td></tr>");
            sb.Append("</table>");
        }
        sb.Append($"<p class=\"muted\">Ran in {c.DurationSeconds.ToString("0.##", CultureInfo.InvariantCulture)} s{(c.Runtime is null ? "" : $" on {Html.Escape(c.Runtime)}")}.</p></section>");
    }

    /// <summary>Draws whichever of the documented <see cref="ReportDetails"/> shapes the check filled.</summary>
    private static void Plots(StringBuilder sb, CheckResult c)
    {
        if (ReportDetails.TryRead<CurvePoint[]>(c.Details, ReportDetails.Curve, out var curve, out var curveError) && curve is { Length: > 0 })
        {
            // Decided points are the line; an undecided point (samples not fully searched) has no value, only bounds,
            // and is drawn as its interval and listed, never joined into the line as if it were measured.
            var decided = curve.Where(p => p.RobustAccuracy is not null).Select(p => (p.Epsilon, p.RobustAccuracy!.Value)).ToList();
            var undecided = curve.Where(p => p.RobustAccuracy is null).ToList();
            var svg = Svg.LineChart(decided, "ε (perturbation budget)", "robust accuracy", $"{c.Id}: robust accuracy against ε",
                intervals: undecided.Where(p => p.RobustAccuracyLower is not null && p.RobustAccuracyUpper is not null)
                    .Select(p => (p.Epsilon, p.RobustAccuracyLower!.Value, p.RobustAccuracyUpper!.Value)).ToList());
            sb.Append("<h3>Robust accuracy against ε</h3>").Append(svg);
            if (undecided.Count > 0)
                sb.Append("<p class=\"note\">Undecided (budget ran out before every sample was fully searched; drawn as a dashed interval): ")
                  .Append(Html.Escape(string.Join("; ", undecided.Select(p =>
                      $"ε = {p.Epsilon.ToString("G4", CultureInfo.InvariantCulture)}: {p.Undecided?.ToString(CultureInfo.InvariantCulture) ?? "some"} of {p.Samples?.ToString(CultureInfo.InvariantCulture) ?? "?"} samples undecided" +
                      (p.RobustAccuracyLower is { } lo && p.RobustAccuracyUpper is { } hi ? $", robust accuracy between {lo.ToString("P1", CultureInfo.InvariantCulture)} and {hi.ToString("P1", CultureInfo.InvariantCulture)}" : "")))))
                  .Append("</p>");
        }
        else if (curveError is not null)
            sb.Append("<p class=\"warn\">The robustness curve cannot be drawn: ").Append(Html.Escape(curveError)).Append("</p>");
        if (ReportDetails.Read<LayerAccuracy[]>(c.Details, ReportDetails.Layers) is { Length: > 0 } layers)
        {
            double? chance = c.Details[ReportDetails.Chance] is System.Text.Json.Nodes.JsonValue cv && cv.TryGetValue<double>(out var ch) ? ch : null;
            var svg = Svg.BarChart(layers.Select(l => (l.Name ?? "?", l.Accuracy, l.CiLow, l.CiHigh)).ToList(), "probe accuracy", $"{c.Id}: probe accuracy per layer", chance, "chance");
            if (svg.Length > 0) sb.Append("<h3>Probe accuracy per layer</h3>").Append(svg);
        }
        if (ReportDetails.Read<ClassMask[]>(c.Details, ReportDetails.Masks) is { Length: > 0 } masks)
        {
            sb.Append("<h3>Reverse-engineered trigger masks per class</h3><div class=\"masks\">");
            foreach (var m in masks.Where(m => m.Mask is not null))
                sb.Append(Svg.HeatMap(m.Mask, $"{(m.Detector is null ? "" : m.Detector + " · ")}class {m.Class} · L1 {Svg.Num(m.L1)}{(m.Flagged ? " · FLAGGED" : "")}", m.Flagged));
            sb.Append("</div>");
        }
        if (ReportDetails.Read<DetectorEvidence[]>(c.Details, ReportDetails.Detectors) is { Length: > 0 } detectors)
        {
            sb.Append("<h3>Detectors</h3><table><tr><th>detector</th><th>statistic</th><th>score</th><th>threshold</th><th>false-positive rate on clean models</th><th>suspect class</th><th>production attack success</th><th>outcome</th></tr>");
            foreach (var d in detectors)
            {
                string outcome = d.Exhausted is not null ? $"<span class=\"unk\">budget exhausted: {Html.Escape(d.Exhausted)}</span>"
                    : d.Flagged ? "<span class=\"bad\">flagged</span>" : "<span class=\"ok\">below threshold</span>";
                string Opt(double? v) => v is double x ? Svg.Num(x) : "—";
                sb.Append($"<tr><td>{Html.Escape(d.Name)}</td><td>{Html.Escape(d.Statistic ?? "")}</td><td>{Opt(d.Score)}</td><td>{Opt(d.Threshold)} <span class=\"muted\">({Html.Escape(d.ThresholdSource ?? "")})</span></td>")
                  .Append($"<td>{(d.FalsePositiveRate is double f ? Svg.Num(f * 100) + "%" : "—")}</td><td>{d.SuspectClass}</td>")
                  .Append($"<td>{(d.ProductionAttackSuccess is double a ? $"{Svg.Num(a * 100)}% of {d.ProductionSamples}{(d.ConfirmedWith is null ? "" : $" ({Html.Escape(d.ConfirmedWith)} trigger)")}" : "—")}</td><td>{outcome}</td></tr>");
            }
            sb.Append("</table>");
            foreach (var d in detectors.Where(d => d.PerClass is { Length: > 0 }))
            {
                // Bars are drawn on [0, 1]: each value relative to the largest magnitude, which the heading states.
                double scale = d.PerClass!.Where(double.IsFinite).Select(Math.Abs).DefaultIfEmpty(0).Max();
                if (scale <= 0) continue;
                var svg = Svg.BarChart(d.PerClass!.Select((v, i) => ($"{i}", v / scale, (double?)null, (double?)null)).ToList(), $"{d.PerClassName ?? "statistic"} / {Svg.Num(scale)}", $"{c.Id}: {d.Name} {d.PerClassName} per class");
                if (svg.Length > 0) sb.Append($"<h4>{Html.Escape(d.Name)}: {Html.Escape(d.PerClassName ?? "statistic")} per class (relative to the largest, {Svg.Num(scale)})</h4>").Append(svg);
            }
        }
        if (TrajectoryDetails.Read(c.Details) is { Paths.Count: > 0 } trajectories)
        {
            var (paths, grid) = trajectories;
            var svg = Svg.GridPaths(paths, grid, $"{c.Id}: trajectories");
            if (svg.Length > 0)
            {
                sb.Append("<h3>Trajectories</h3>").Append(svg).Append("<ul class=\"muted\">");
                foreach (var p in paths) sb.Append($"<li>{(p.Flagged ? "<span class=\"bad\">flagged</span> " : "")}{Html.Escape(p.Label)} ({p.Points?.Length ?? 0} steps; ● start, □ end)</li>");
                sb.Append("</ul>");
            }
        }
    }

    // ---------------------------------------------------------------- Markdown

    /// <summary>Escapes text for a Markdown table cell: pipes, newlines and markup characters can not break the table.</summary>
    public static string MdCell(string? text) =>
        // Only what could open markup is escaped (rendered Markdown passes raw HTML through); quotes stay readable in CI logs.
        // A newline becomes <br> (a cell never ends its line, so no forged row or line); SafeText makes the rest inert.
        SafeText.Line((text ?? "").Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("|", "\\|").Replace("`", "\\`")
            .Replace("*", "\\*").Replace("_", "\\_").Replace("[", "\\[").Replace("\r", "").Replace("\n", "<br>"));

    public static string RenderMarkdown(DecisionRecord r)
    {
        var sb = new StringBuilder();
        string icon = r.Decision switch { GateDecision.Approve => "✅", GateDecision.Reject => "❌", _ => "⚠️" };
        sb.Append($"# Gate: {icon} {Upper(r.Decision)}\n\n");
        sb.Append($"Model **{MdCell(r.Model.Name)}** (sha256 `{r.Model.Sha256}`) against policy **{MdCell(r.PolicyName)}** (sha256 `{r.Policy.Sha256}`): **{Upper(r.Decision)}**.\n\n");
        foreach (var d in r.Datasets.Where(d => d.Overridden)) sb.Append($"> ⚠️ {MdCell(OverrideText(d))}\n\n");
        sb.Append("| check | type | enforcement | verdict | summary |\n|---|---|---|---|---|\n");
        foreach (var c in r.Checks)
            sb.Append($"| {MdCell(c.Id)} | {MdCell(c.Type)} | {Lower(c.Enforcement)} | {Upper(c.Verdict)} | {MdCell(c.Summary)} |\n");
        if (r.Datasets.Count > 0)
        {
            sb.Append("\n## Data evaluated\n\n| dataset | samples | file | sha256 | source |\n|---|---|---|---|---|\n");
            foreach (var d in r.Datasets)
                foreach (var f in new[] { d.Inputs, d.Labels }.OfType<DatasetFile>())
                    sb.Append($"| {MdCell(d.Name)} | {d.Samples} | {MdCell(f.Path)} | `{f.Sha256}` | {(f.Overridden ? "**data override**" : d.Pinned ? "policy (pinned)" : "policy")} |\n");
        }
        sb.Append("\n## Reasons\n\n");
        foreach (var reason in r.Reasons) sb.Append($"- {MdCell(reason)}\n");
        var notPassed = r.Checks.Where(c => c.Verdict != Verdict.Pass && c.Reasons.Count > 0).ToList();
        if (notPassed.Count > 0)
        {
            sb.Append("\n## Checks that did not pass\n");
            foreach (var c in notPassed)
            {
                sb.Append($"\n### {MdCell(c.Id)} — {Upper(c.Verdict)}\n\n");
                foreach (var reason in c.Reasons) sb.Append($"- {MdCell(reason)}\n");
            }
        }
        var runtime = r.Runtime is null ? "none" : $"{r.Runtime.Name} {r.Runtime.Version} ({r.Runtime.Provider}, {r.Runtime.Device})";
        sb.Append($"\nGate {MdCell(r.Gate.Version)} ({MdCell(r.Gate.Commit)}) · runtime {MdCell(runtime)} · sandbox {MdCell(r.Sandbox.Backend)}/{r.Sandbox.Isolation.Name()} · seed {r.Seed} · {Time(r.StartedAt)} → {Time(r.EndedAt)}\n");
        return sb.ToString();
    }

    /// <summary>The flag an overridden dataset carries in every view of the decision.</summary>
    public static string OverrideText(DatasetRecord d) =>
        $"Dataset '{d.Name}' was replaced by a data override at check time: " +
        string.Join("; ", new[] { ("inputs", d.Inputs), ("labels", d.Labels) }.Where(f => f.Item2?.Overridden == true).Select(f => $"{f.Item1} {f.Item2!.Path} (sha256 {f.Item2.Sha256})")) +
        " instead of the policy's file" + (d.Pinned ? "; the policy pins this dataset and allows overrides" : "; the policy does not pin this dataset");

    // ---------------------------------------------------------------- JUnit

    /// <summary>
    /// One test case per check plus one for the decision itself. A failed check is a <c>&lt;failure&gt;</c>; an
    /// inconclusive one is an <c>&lt;error&gt;</c>, not <c>&lt;skipped&gt;</c>: CI systems show skipped tests as
    /// neutral and keep the run green, and "we could not tell" must never look green. The extra "decision" case
    /// mirrors the decision, so a run whose checks all passed but could not approve (e.g. only advisory checks)
    /// is not green either. Advisory checks are reported with their own verdict and marked advisory in the name.
    /// </summary>
    public static string RenderJUnit(DecisionRecord r)
    {
        var settings = new XmlWriterSettings { Indent = true, Encoding = new UTF8Encoding(false), CheckCharacters = true };
        var sb = new StringBuilder();
        using (var sw = new Utf8StringWriter(sb))
        using (var w = XmlWriter.Create(sw, settings))
        {
            int failures = r.Checks.Count(c => c.Verdict == Verdict.Fail) + (r.Decision == GateDecision.Reject ? 1 : 0);
            int errors = r.Checks.Count(c => c.Verdict == Verdict.Inconclusive) + (r.Decision == GateDecision.Inconclusive ? 1 : 0);
            double total = r.Checks.Sum(c => c.DurationSeconds);
            w.WriteStartElement("testsuites");
            w.WriteStartElement("testsuite");
            w.WriteAttributeString("name", Xml($"gate {r.PolicyName} on {r.Model.Name}"));
            w.WriteAttributeString("tests", (r.Checks.Count + 1).ToString(CultureInfo.InvariantCulture));
            w.WriteAttributeString("failures", failures.ToString(CultureInfo.InvariantCulture));
            w.WriteAttributeString("errors", errors.ToString(CultureInfo.InvariantCulture));
            w.WriteAttributeString("skipped", "0");
            w.WriteAttributeString("time", total.ToString("0.###", CultureInfo.InvariantCulture));
            w.WriteAttributeString("timestamp", r.StartedAt.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture));
            w.WriteStartElement("properties");
            foreach (var (k, v) in new[] { ("model.sha256", r.Model.Sha256), ("policy.sha256", r.Policy.Sha256), ("decision", Upper(r.Decision)), ("gate.version", r.Gate.Version) })
            {
                w.WriteStartElement("property"); w.WriteAttributeString("name", k); w.WriteAttributeString("value", Xml(v)); w.WriteEndElement();
            }
            w.WriteEndElement();
            foreach (var c in r.Checks)
            {
                w.WriteStartElement("testcase");
                w.WriteAttributeString("classname", Xml($"gate.{c.Type}"));
                w.WriteAttributeString("name", Xml(c.Enforcement == Enforcement.Advisory ? $"{c.Id} (advisory)" : c.Id));
                w.WriteAttributeString("time", c.DurationSeconds.ToString("0.###", CultureInfo.InvariantCulture));
                string body = string.Join("\n", c.Reasons.Prepend(c.Summary).Concat(c.Requirements.Select(q => q.Text)).Distinct());
                if (c.Verdict == Verdict.Fail) Outcome(w, "failure", "fail", c.Summary, body);
                else if (c.Verdict == Verdict.Inconclusive) Outcome(w, "error", "inconclusive", $"INCONCLUSIVE: {c.Summary}", body);
                if (c.Coverage is { Length: > 0 } cov) w.WriteElementString("system-out", Xml($"coverage: {cov}"));
                w.WriteEndElement();
            }
            w.WriteStartElement("testcase");
            w.WriteAttributeString("classname", "gate");
            w.WriteAttributeString("name", "decision");
            w.WriteAttributeString("time", "0");
            string reasons = string.Join("\n", r.Reasons);
            if (r.Decision == GateDecision.Reject) Outcome(w, "failure", "reject", "REJECT", reasons);
            else if (r.Decision == GateDecision.Inconclusive) Outcome(w, "error", "inconclusive", "INCONCLUSIVE", reasons);
            w.WriteEndElement();
            w.WriteEndElement();
            w.WriteEndElement();
        }
        return sb.ToString();
    }

    private static void Outcome(XmlWriter w, string element, string type, string message, string body)
    {
        w.WriteStartElement(element);
        w.WriteAttributeString("type", type);
        w.WriteAttributeString("message", Xml(message));
        w.WriteString(Xml(body));
        w.WriteEndElement();
    }

    /// <summary>
    /// Model-controlled text made inert (<see cref="SafeText"/>): XML 1.0 cannot carry most control characters at all,
    /// and those it can (C1, bidi overrides) would act on whoever prints the file in a terminal.
    /// </summary>
    private static string Xml(string? s) => SafeText.Text(s);

    private sealed class Utf8StringWriter(StringBuilder sb) : StringWriter(sb, CultureInfo.InvariantCulture)
    {
        public override Encoding Encoding => new UTF8Encoding(false);
    }
}
