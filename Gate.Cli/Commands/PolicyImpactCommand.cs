using System.CommandLine;
using Gate.Core.Governance;
using Gate.Core.Policy;

namespace Gate.Cli.Commands;

/// <summary><c>gate policy impact</c>: what a proposed policy would have done to stored decisions (thin over <see cref="PolicyImpact"/>).</summary>
public static class PolicyImpactCommand
{
    public static readonly string ExitCodeHelp = $"Exit codes: {ExitCodes.Impact.NoChange} no stored decision changes, {ExitCodes.Impact.SomeFlip} at least one decision flips, " +
        $"{ExitCodes.Impact.SomeNeedRerun} no flip found but some decisions need a re-run to tell, {ExitCodes.BadInput} bad input.";

    public static Command Create()
    {
        var file = new Argument<FileInfo>("policy") { Description = "The proposed policy (YAML)." };
        var decisions = new Option<string[]>("--decisions", "-d")
        {
            Description = "Stored decisions: decision.json files, gate output folders, or folders of them (searched recursively). Repeatable.",
            Required = true, AllowMultipleArgumentsPerToken = true,
        };
        var policies = new Option<string[]>("--policies")
        {
            Description = "Earlier policy versions (files or folders of *.yaml), found by the sha256 each decision records; the recorded path is tried first.",
            AllowMultipleArgumentsPerToken = true,
        };
        var format = new Option<string>("--format") { Description = "text (default) or md (for pull-request comments).", DefaultValueFactory = _ => "text" };
        format.AcceptOnlyFromAmong("text", "md");
        var cmd = new Command("impact", $"""
            Re-judge stored decisions under a proposed policy and list the ones that would flip, for governance review
            before the change is approved. Threshold (require min/max), enforcement and decision.onInconclusive changes
            are re-judged from each decision's recorded metrics; a change to what a check measures (budget, epsilon,
            data, method, seed, inputs, sandbox) or a new check is marked as needing a re-run. A blocking check that now
            fails makes the decision REJECT even while other checks await a re-run.
            {ExitCodeHelp}
            Example: gate policy impact policies/digits-release.yaml --decisions out/ --policies old-policies/ --format md
            """) { file, decisions, policies, format };
        cmd.SetAction((pr, ct) => Cli.Guard(() =>
        {
            var path = pr.GetValue(file)!.FullName;
            var proposed = PolicyLoader.Load(path);
            var impacts = PolicyImpact.Analyse(proposed, PolicyImpact.FindDecisions(pr.GetValue(decisions) ?? []), pr.GetValue(policies) ?? []);
            var rel = Path.GetRelativePath(Environment.CurrentDirectory, path);
            var name = rel.StartsWith("..", StringComparison.Ordinal) ? path : rel;
            Console.Out.Write(pr.GetValue(format) == "md" ? PolicyImpact.RenderMarkdown(impacts, name) : PolicyImpact.RenderText(impacts, name));
            return Task.FromResult(ExitCodes.Impact.For(PolicyImpact.Outcome(impacts)));
        }));
        return cmd;
    }
}
