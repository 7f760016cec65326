using System.CommandLine;
using Gate.Core;
using Gate.Core.Governance;
using Gate.Core.Policy;

namespace Gate.Cli.Commands;

/// <summary><c>gate policy lint | review | diff</c>: governance tools over policy files (thin over Gate.Core.Governance).</summary>
public static class PolicyCommand
{
    public static Command Create()
    {
        var cmd = new Command("policy", "Governance tools for deployment policies: lint, review, diff, approve.");
        cmd.Subcommands.Add(Lint());
        cmd.Subcommands.Add(Review());
        cmd.Subcommands.Add(Diff());
        return cmd;
    }

    private static Command Lint()
    {
        var file = new Argument<FileInfo>("policy") { Description = "The policy file (YAML)." };
        var model = new Option<FileInfo>("--model", "-m")
        {
            Description = "Also lint against this ONNX model: the errors 'gate check' would report at plan time (inputs, outputs, datasets) and a warning for opsets newer than Gate knows.",
        };
        var cmd = new Command("lint", """
            Check a policy: schema and semantic errors, plus warnings for vacuous or weak settings, each as file:line:col.
            Exit codes: 0 clean, 1 warnings only, 3 errors (the policy, or the model given with --model, cannot be used).
            """) { file, model };
        cmd.SetAction((pr, ct) => Cli.Guard(() =>
        {
            var path = pr.GetValue(file)!.FullName;
            var result = PolicyLint.Lint(Relative(path), pr.GetValue(model) is { } m ? Relative(m.FullName) : null);
            foreach (var e in result.Errors) Console.Out.WriteLine($"{e.Location}: error: {(e.Path.Length > 0 ? e.Path + ": " : "")}{e.Message}");
            foreach (var w in result.Warnings) Console.Out.WriteLine(w.ToString());
            int exit = result.Errors.Count > 0 ? ExitCodes.BadInput : result.Warnings.Count > 0 ? 1 : 0;
            Console.Out.WriteLine(exit switch
            {
                0 => $"{Relative(path)}: ok, no warnings",
                1 => $"{Relative(path)}: {result.Warnings.Count} warning(s)",
                _ => $"{Relative(path)}: {result.Errors.Count} error(s), {result.Warnings.Count} warning(s)",
            });
            return Task.FromResult(exit);
        }));
        return cmd;
    }

    private static Command Review()
    {
        var file = new Argument<FileInfo>("policy") { Description = "The policy file (YAML)." };
        var format = new Option<string>("--format") { Description = "md (default) or html.", DefaultValueFactory = _ => "md" };
        format.AcceptOnlyFromAmong("md", "html");
        var output = new Option<FileInfo>("--out", "-o") { Description = "Write the review here instead of stdout." };
        var cmd = new Command("review", """
            A plain-language review of a policy for governance: what each check tests and why, thresholds, what the
            budgets buy, what APPROVE will mean, what the policy does not cover, and its digest.
            """) { file, format, output };
        cmd.SetAction((pr, ct) => Cli.Guard(async () =>
        {
            var policy = PolicyLoader.Load(Relative(pr.GetValue(file)!.FullName));
            var text = PolicyReview.Render(policy, pr.GetValue(format) ?? "md");
            if (pr.GetValue(output) is { } o) await File.WriteAllTextAsync(o.FullName, text, ct);
            else Console.Out.Write(text);
            return 0;
        }));
        return cmd;
    }

    private static Command Diff()
    {
        var oldFile = new Argument<FileInfo>("old") { Description = "The policy before the change." };
        var newFile = new Argument<FileInfo>("new") { Description = "The policy after the change." };
        var format = new Option<string>("--format") { Description = "text (default) or md (for pull-request comments).", DefaultValueFactory = _ => "text" };
        format.AcceptOnlyFromAmong("text", "md");
        var allow = new Option<bool>("--allow-weakening") { Description = "Exit 0 even when the change weakens the gate." };
        var cmd = new Command("diff", """
            Semantic diff of two policies: each change is classified as strengthening, weakening or neutral.
            Exit codes: 0 nothing weakens (or --allow-weakening), 1 something weakens, 3 a policy is invalid.
            """) { oldFile, newFile, format, allow };
        cmd.SetAction((pr, ct) => Cli.Guard(() =>
        {
            string a = Relative(pr.GetValue(oldFile)!.FullName), b = Relative(pr.GetValue(newFile)!.FullName);
            var changes = PolicyDiff.Compare(PolicyLoader.Load(a), PolicyLoader.Load(b));
            Console.Out.Write(pr.GetValue(format) == "md" ? PolicyDiff.RenderMarkdown(changes, a, b) : PolicyDiff.RenderText(changes, a, b));
            bool weakens = changes.Any(c => c.Kind == ChangeKind.Weakening);
            return Task.FromResult(weakens && !pr.GetValue(allow) ? 1 : 0);
        }));
        return cmd;
    }

    /// <summary>Paths in messages relative to the working directory, as the user typed them, when possible.</summary>
    private static string Relative(string full)
    {
        var rel = Path.GetRelativePath(Environment.CurrentDirectory, full);
        return rel.StartsWith("..", StringComparison.Ordinal) ? full : rel;
    }
}
