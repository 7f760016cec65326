using System.Globalization;
using System.Text;
using Gate.Core.Checks;
using Gate.Core.Checks.Adversarial;
using Gate.Core.Policy;
using Gate.Core.Report;
using static Gate.Core.Policy.ReviewWords;

namespace Gate.Core.Governance;

/// <summary>
/// <c>gate policy review</c>: the policy in plain language for governance reviewers — what each check tests and
/// why it matters, its thresholds, what its budget buys, what APPROVE will mean, what the policy does not cover,
/// lint warnings, and the digest the review is about. Rendered as Markdown or as a self-contained HTML page.
/// </summary>
public static class PolicyReview
{
    /// <param name="checks">
    /// Where to find check implementations for option validation in the lint section (default: this build's
    /// <see cref="CheckRegistry"/>). What each check tests, its options and metrics come from its type's declaration
    /// (<see cref="CheckTypes"/>); a type this build does not know is reported as such.
    /// </param>
    public static string Render(DeploymentPolicy policy, string format = "md", Func<string, ICheck?>? checks = null)
    {
        checks ??= CheckRegistry.Find;
        var doc = Build(policy, checks);
        return format switch
        {
            "md" => ToMarkdown(doc),
            "html" => ToHtml(doc, $"Policy review: {policy.Metadata.Name}"),
            _ => throw new ArgumentOutOfRangeException(nameof(format), format, "a review is rendered as md or html"),
        };
    }

    // A tiny document model so that Markdown and HTML say exactly the same thing.
    private abstract record Block;
    private sealed record Heading(int Level, string Text) : Block;
    private sealed record Para(string Text) : Block;
    private sealed record Bullets(List<string> Items) : Block;

    private static List<Block> Build(DeploymentPolicy p, Func<string, ICheck?> checks)
    {
        var d = new List<Block>();
        var s = p.Spec;
        var blocking = s.Checks.Where(c => c.Enforcement == Enforcement.Blocking).ToList();
        var advisory = s.Checks.Where(c => c.Enforcement == Enforcement.Advisory).ToList();
        d.Add(new Heading(1, $"Policy review: {p.Metadata.Name}"));
        d.Add(new Bullets([
            $"File: {Path.GetFileName(p.SourcePath)}",
            $"Policy digest (SHA-256 of the exact file): {p.Sha256}",
            $"Owner: {p.Metadata.Owner ?? "not stated"}",
            $"Release policy: {(p.Metadata.Release ? "yes: it guards production deployments" : "no")}",
            .. p.Metadata.Description is { } desc ? new[] { $"Purpose: {desc}" } : [],
        ]));

        d.Add(new Heading(2, "What APPROVE will mean"));
        d.Add(new Para(blocking.Count == 0
            ? "This policy has no blocking checks, so it can never approve a model: every run ends INCONCLUSIVE or REJECT."
            : $"APPROVE means that each of the {blocking.Count} blocking check(s) ({string.Join(", ", blocking.Select(c => c.Id))}) ran to completion and met every requirement below, " +
              $"with the model executed on {(s.Runtime == "builtin" ? "Gate's built-in engine (not the production runtime)" : "the production runtime (ONNX Runtime)")} " +
              $"inside a sandbox with at least '{s.Sandbox.Isolation.Name()}' isolation, from seed {s.Seed}, so every number can be reproduced."));
        if (advisory.Count > 0) d.Add(new Para($"Advisory checks ({string.Join(", ", advisory.Select(c => c.Id))}) are run and reported but never change the decision."));
        d.Add(new Para(s.Decision.OnInconclusive == InconclusiveHandling.Reject
            ? "If any blocking check cannot reach a verdict (a missing component, an exhausted budget, a sandbox fault), the model is REJECTED (decision.onInconclusive: reject)."
            : "If any blocking check cannot reach a verdict (a missing component, an exhausted budget, a sandbox fault), the decision is INCONCLUSIVE; it is never rounded up to APPROVE. The release pipeline decides what INCONCLUSIVE means for it."));

        var prepared = s.Model.Inputs.Where(i => i.Preprocess is not null).ToList();
        if (prepared.Count > 0)
        {
            d.Add(new Heading(2, "Preprocessing"));
            d.Add(new Bullets(prepared.Select(i =>
                $"Input '{i.Name}': {i.Preprocess!.Describe()}. Resizing and cropping happen when images are decoded (on the host, before the sandbox); " +
                "channel order, scale, mean and std are composed into the model graph, so the model as judged takes RGB pixels in [0, 1], " +
                "attacks perturb those pixels, and every ε below is per pixel. Changing any of this changes what every check measures.").ToList()));
        }

        var used = s.Datasets.Values.Where(ds => s.Checks.Any(c => c.Dataset == ds.Name)).ToList();
        if (used.Count > 0)
        {
            d.Add(new Heading(2, "Data"));
            d.Add(new Bullets(used.Select(ds => Tensors.ImageDataset.IsImageSource(ds.InputsPath)
                ? $"Dataset '{ds.Name}' is images ({(Directory.Exists(ds.InputsPath) ? "one folder per class; sorted folder names give the labels" : "a manifest of paths and labels")}), decoded on the host; the recorded digests are those of the decoded pixels and labels. " + PinWords(ds).Replace("any other file is refused", "any other images are refused")
                : ds.InputFiles is { } files
                ? $"Dataset '{ds.Name}' is one file per model input ({string.Join(", ", files.Select(f => $"{f.Input}: {Path.GetFileName(f.Path)}"))}): every input of the model is named once, the files must agree on the number of samples, and each file's digest is recorded. " + PinWords(ds)
                : PinWords(ds)).ToList()));
        }

        d.Add(new Heading(2, "Checks"));
        foreach (var c in s.Checks)
        {
            d.Add(new Heading(3, $"{c.Id}: {c.Type} ({(c.Enforcement == Enforcement.Blocking ? "blocking" : "advisory")})"));
            var decl = CheckTypes.Declaration(c.Type);
            var items = new List<string> { $"What it tests: {decl?.Purpose ?? $"(check type '{c.Type}' is not known to this build of Gate)"}" };
            if (decl?.Why is { Length: > 0 } why) items.Add($"Why it matters: {why}");
            if (c.Description is { } cd) items.Add($"Policy author's note: {cd}");
            if (decl is not null) items.AddRange(Scope(p, c, decl));
            foreach (var (metric, bound) in c.Require)
                items.Add($"Requirement: {decl?.Metrics.FirstOrDefault(m => m.Name == metric)?.Meaning ?? metric} must be {BoundWords(bound)}{JudgedWords(c, metric, bound)}.");
            foreach (var (option, requirement) in decl?.ImpliedRequirements?.Invoke(c) ?? [])
                items.Add($"Requirement (implied by {option}): {requirement}.");
            // A type that judges by its own criteria says what they are in its review sentences (and lint agrees: no warning).
            if (c.Require.Count == 0 && decl?.JudgesItself(c.Node) != true) items.Add("Requirement: none stated; the check passes unless its own criteria flag the model.");
            d.Add(new Bullets(items));
        }

        d.Add(new Heading(2, "What this policy does NOT cover"));
        d.Add(new Bullets(NotCovered(p)));

        var lint = PolicyLint.Lint(p, checks);
        d.Add(new Heading(2, "Reviewer attention (lint)"));
        d.Add(lint.Warnings.Count + lint.Errors.Count == 0 ? new Para("No warnings.")
            : new Bullets(lint.Errors.Concat(lint.Warnings).Select(w => $"line {w.Location.Line}, {w.Path}: {(w.IsWarning ? "" : "error: ")}{w.Message}").ToList()));
        d.Add(new Para($"This review describes the policy with digest {p.Sha256}. Approvals sign that digest; any edit to the file changes it."));
        return d;
    }

    /// <summary>Which value an estimated metric's requirement judges: review must say, because the two can differ widely on few samples.</summary>
    private static string JudgedWords(CheckSpec c, string metric, MetricBound b)
    {
        if (!MetricBound.IntervalMetrics.Contains(metric)) return "";
        double conf = c.Node["confidence"] is PolicyScalar { IsNumber: true } cf ? cf.AsDouble() : 0.95;
        return b.Bound switch
        {
            Estimate.Lower => $", judged on the lower end of its {N(conf * 100)}% confidence interval (Wilson score), not the point estimate",
            Estimate.Upper => $", judged on the upper end of its {N(conf * 100)}% confidence interval (Wilson score), not the point estimate",
            _ => ", judged on the point estimate (not on a confidence bound)",
        };
    }

    /// <summary>Whether the data is the approved data: pinned by digest, and whether a data override may replace it.</summary>
    private static string PinWords(DatasetSpec ds) => !ds.Pinned
        ? $"Dataset '{ds.Name}' is not pinned by sha256, so a data override (other files named when gate check runs) can replace it (each replacement is flagged in the decision)."
        : $"Dataset '{ds.Name}' is pinned by sha256 (inputs {ds.InputsPin ?? string.Join(", ", ds.InputFiles?.Where(f => f.Pin is not null).Select(f => $"{f.Input} {f.Pin}") ?? [])}{(ds.LabelsPin is { } lp ? $", labels {lp}" : "")}); " +
          (ds.AllowOverride ? "a data override (other files named when gate check runs) may still replace it (allowOverride: true), and each replacement is flagged in the decision." : "any other file is refused.");

    private static string BoundWords(MetricBound b) => (b.Min, b.Max) switch
    {
        ({ } lo, { } hi) => $"between {N(lo)} and {N(hi)}",
        ({ } lo, null) => $"at least {N(lo)}",
        (null, { } hi) => $"at most {N(hi)}",
        _ => "anything",
    };

    /// <summary>What the check covers, in the words its type declares (<see cref="CheckDeclaration.Review"/>), else its declared options.</summary>
    private static IEnumerable<string> Scope(DeploymentPolicy p, CheckSpec c, CheckDeclaration decl) =>
        decl.Review?.Invoke(c, p) ?? DeclaredOptionWords(p, c, decl);

    /// <summary>
    /// A check type without its own review wording is described by its declaration: its data, then each option with
    /// the value the check binds (explicit, or the declared default) and what it means.
    /// </summary>
    private static IEnumerable<string> DeclaredOptionWords(DeploymentPolicy p, CheckSpec c, CheckDeclaration decl)
    {
        if (c.Dataset is not null) yield return $"Data: {Data(p, c, decl, "samples")}.";
        foreach (var o in decl.Options)
        {
            // A perturbation set (ThreatOptions) is described as the check binds it, in the one threat type's words.
            if (o.Fields?.FirstOrDefault(f => f.Unit == ThreatOptions.RadiusUnit) is { } radius)
            {
                if (ThreatOptions.At(c.Node, $"{o.Key}.{radius.Key}", p) is { } threat) yield return $"{o.Key}: {threat.Words()}. {o.Meaning}";
                continue;
            }
            if (o.Key == "samples" || o.Fields is not null || o.ItemFields is not null) continue;
            var v = decl.Value(c.Node, o.Key);
            string? value = v.Explicit is { } e ? Inline(e) : v.Decl.DefaultWords is { } d ? d : o.WhenAbsent is { } wa ? $"not set ({wa})" : null;
            if (value is null) continue;
            yield return $"{o.Key}: {value}{(o.Unit is { } u && v.Number is not null ? " " + u : "")}. {o.Meaning}";
        }
    }

    private static List<string> NotCovered(DeploymentPolicy p)
    {
        var s = p.Spec;
        var types = s.Checks.Where(c => c.Enforcement == Enforcement.Blocking).Select(c => c.Type).ToHashSet();
        var gaps = new List<string>();
        var advisoryTypes = s.Checks.Where(c => c.Enforcement == Enforcement.Advisory).Select(c => c.Type).ToHashSet();
        void Gap(string type, string text)
        {
            if (types.Contains(type)) return;
            gaps.Add(advisoryTypes.Contains(type) ? $"{text} (There is an advisory {type} check: it is reported but cannot block.)" : text);
        }
        // Each check type says what its absence leaves untested (its declaration's NotCovered).
        foreach (var d in CheckTypes.All)
            if (d.NotCovered is { } text) Gap(d.Type, text);
        if (s.Sandbox.Gpu != GpuMode.Required)
            gaps.Add("No GPU parity: results come from whichever execution provider was available; agreement between CPU and GPU execution is not checked.");
        if (s.Runtime == "builtin") gaps.Add("The production runtime (ONNX Runtime) is not exercised: results come from Gate's built-in engine.");
        if (s.Sandbox.Isolation != IsolationLevel.Container) gaps.Add($"Isolation is '{s.Sandbox.Isolation.Name()}', not 'container': the model runs with weaker separation from the host.");
        gaps.Add("Every measurement holds for the datasets named here: inputs unlike them (distribution shift) are not covered.");
        return gaps;
    }

    private static string ToMarkdown(List<Block> doc)
    {
        var sb = new StringBuilder();
        foreach (var b in doc)
        {
            switch (b)
            {
                case Heading h: sb.Append(new string('#', h.Level)).Append(' ').Append(h.Text).Append("\n\n"); break;
                case Para p: sb.Append(p.Text).Append("\n\n"); break;
                case Bullets l: foreach (var i in l.Items) sb.Append("- ").Append(i).Append('\n'); sb.Append('\n'); break;
            }
        }
        return sb.ToString().TrimEnd('\n') + "\n";
    }

    private static string ToHtml(List<Block> doc, string title)
    {
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">")
          .Append($"<title>{Html.Escape(title)}</title><style>body{{font:15px/1.5 system-ui,\"DejaVu Sans\",sans-serif;max-width:860px;margin:24px auto;padding:0 16px;color:#1d1d1f}}h1{{font-size:26px}}h2{{font-size:20px;margin-top:28px;border-bottom:1px solid #ddd}}h3{{font-size:16px}}</style></head><body>\n");
        foreach (var b in doc)
        {
            switch (b)
            {
                case Heading h: sb.Append($"<h{h.Level}>{Html.Escape(h.Text)}</h{h.Level}>\n"); break;
                case Para p: sb.Append($"<p>{Html.Escape(p.Text)}</p>\n"); break;
                case Bullets l: sb.Append("<ul>").Append(string.Concat(l.Items.Select(i => $"<li>{Html.Escape(i)}</li>"))).Append("</ul>\n"); break;
            }
        }
        return sb.Append("</body></html>\n").ToString();
    }
}
