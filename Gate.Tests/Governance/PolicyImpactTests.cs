using Gate.Cli;
using Gate.Core;
using Gate.Core.Governance;
using Gate.Tests.Attestation;
using Gate.Tests.Support;

namespace Gate.Tests.Governance;

/// <summary>
/// A corpus of stored decisions with known outcomes: APPROVE (accuracy 0.98 ≥ 0.9), REJECT (parameter limit 10 and
/// accuracy fine), INCONCLUSIVE (accuracy check with no sandbox). Each test proposes a policy and checks the flips.
/// </summary>
public sealed class DecisionCorpusFixture
{
    public string Root { get; } = TestPaths.TempDir("gate-impact");
    public string Decisions => Path.Combine(Root, "decisions");

    public DecisionCorpusFixture()
    {
        Make("approve", maxParameters: 1000000, sandbox: true);
        Make("reject", maxParameters: 10, sandbox: true);
        Make("inconclusive", maxParameters: 1000000, sandbox: false);
    }

    private void Make(string name, long maxParameters, bool sandbox)
    {
        var dir = Path.Combine(Decisions, name);
        Directory.CreateDirectory(dir);
        var policy = AuditTestKit.WritePolicy(dir, withSandboxCheck: true, maxParameters: maxParameters);
        var record = new GateCheckPipeline(sandbox ? ScriptedSandbox.Passing() : null).RunAsync(
            new GateCheckRequest(AuditTestKit.ExampleModel, policy, Path.Combine(dir, "out"))).GetAwaiter().GetResult();
        Assert.Equal(name, record.Decision.ToString().ToLowerInvariant());
        GateCheckPipeline.WriteDecision(record, Path.Combine(dir, "out"));
    }

    /// <summary>A proposed policy: the corpus policy (maxParameters 1000000) with text replacements.</summary>
    public string Proposed(params (string From, string To)[] edits)
    {
        var dir = TestPaths.TempDir("gate-impact-proposed");
        var path = AuditTestKit.WritePolicy(dir, withSandboxCheck: true);
        var text = File.ReadAllText(path);
        foreach (var (from, to) in edits) { Assert.Contains(from, text); text = text.Replace(from, to); }
        File.WriteAllText(path, text);
        return path;
    }
}

public class PolicyImpactTests(DecisionCorpusFixture fx) : IClassFixture<DecisionCorpusFixture>
{
    private (int Exit, string Out, string Err) Impact(string policy, params string[] extra) =>
        AuditTestKit.RunGate(["policy", "impact", policy, "--decisions", fx.Decisions, .. extra]);

    private static string Line(string output, string decision) =>
        output.Split('\n').Single(l => l.Contains($"/decisions/{decision}/out/decision.json", StringComparison.Ordinal));

    [Fact]
    public void A_raised_threshold_flips_the_approval_and_a_known_failure_still_rejects()
    {
        var r = Impact(fx.Proposed(("min: 0.9", "min: 0.99")));
        Assert.True(r.Exit == ExitCodes.Impact.SomeFlip, r.Out + r.Err);
        Assert.StartsWith("FLIP", Line(r.Out, "approve"));
        Assert.EndsWith("APPROVE → REJECT", Line(r.Out, "approve"));
        Assert.Contains("acc: PASS → FAIL: spec.checks[acc].require.min: 0.9 → 0.99; FAIL (accuracy = 0.98 (required ≥ 0.99))", r.Out);
        // The REJECT had maxParameters 10: the graph check needs a re-run, but accuracy now fails, so it stays REJECT.
        Assert.EndsWith("REJECT → REJECT", Line(r.Out, "reject"));
        Assert.Contains("graph: FAIL → —: needs a re-run: spec.checks[graph].maxParameters: 10 → 1000000", r.Out);
        // The INCONCLUSIVE's accuracy check never ran (no sandbox): its own reason keeps it inconclusive.
        Assert.EndsWith("INCONCLUSIVE → INCONCLUSIVE", Line(r.Out, "inconclusive"));
    }

    [Fact]
    public void A_lowered_threshold_changes_nothing_here_and_exits_0_except_where_a_rerun_is_needed()
    {
        var r = Impact(fx.Proposed(("min: 0.9", "min: 0.5")), "--decisions", Path.Combine(fx.Decisions, "approve"));
        Assert.Contains("APPROVE → APPROVE", Line(r.Out, "approve"));
        // The REJECT decision's graph check must be re-run: no verdict is guessed for it.
        Assert.StartsWith("RE-RUN", Line(r.Out, "reject"));
        Assert.EndsWith("REJECT → RE-RUN NEEDED", Line(r.Out, "reject"));
        Assert.Equal(ExitCodes.Impact.SomeNeedRerun, r.Exit);

        var onlyApprove = AuditTestKit.RunGate("policy", "impact", fx.Proposed(("min: 0.9", "min: 0.5")), "--decisions", Path.Combine(fx.Decisions, "approve"));
        Assert.Equal(ExitCodes.Impact.NoChange, onlyApprove.Exit);
    }

    [Fact]
    public void Advisory_enforcement_and_inconclusive_handling_are_re_judged()
    {
        var advisory = Impact(fx.Proposed(("min: 0.9", "min: 0.99"), ("enforcement: blocking", "enforcement: advisory")),
            "--decisions", Path.Combine(fx.Decisions, "approve"));
        Assert.EndsWith("APPROVE → APPROVE", Line(advisory.Out, "approve"));

        var strict = Impact(fx.Proposed(("onInconclusive: inconclusive", "onInconclusive: reject")));
        Assert.Equal(ExitCodes.Impact.SomeFlip, strict.Exit);
        Assert.EndsWith("INCONCLUSIVE → REJECT", Line(strict.Out, "inconclusive"));
        Assert.Contains("decision rule re-applied: spec.decision.onInconclusive", strict.Out);
        Assert.EndsWith("APPROVE → APPROVE", Line(strict.Out, "approve"));
    }

    [Fact]
    public void A_budget_change_or_a_new_check_needs_a_re_run()
    {
        var samples = Impact(fx.Proposed(("dataset: test\n", "dataset: test\n      samples: 100\n")), "--decisions", Path.Combine(fx.Decisions, "approve"));
        Assert.Equal(ExitCodes.Impact.SomeNeedRerun, samples.Exit);
        Assert.Contains("acc: PASS → —: needs a re-run: spec.checks[acc].samples", samples.Out);

        var added = Impact(fx.Proposed(("  decision:", "    - { id: acc2, type: accuracy, dataset: test, require: { accuracy: { min: 0.5 } } }\n  decision:")),
            "--decisions", Path.Combine(fx.Decisions, "approve"));
        Assert.Contains("acc2: — → —: new check", added.Out);
        Assert.EndsWith("APPROVE → RE-RUN NEEDED", Line(added.Out, "approve"));
    }

    [Fact]
    public void The_old_policy_is_found_by_digest_or_everything_is_marked_for_re_run()
    {
        var copy = TestPaths.TempDir("gate-impact-moved");
        var src = Path.Combine(fx.Decisions, "approve", "out", "decision.json");
        var record = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(src))!;
        record["policy"]!["path"] = "/nonexistent/policy.yaml";
        File.WriteAllText(Path.Combine(copy, "decision.json"), record.ToJsonString());
        var proposed = fx.Proposed(("min: 0.9", "min: 0.99"));

        var lost = AuditTestKit.RunGate("policy", "impact", proposed, "--decisions", copy);
        Assert.Equal(ExitCodes.Impact.SomeNeedRerun, lost.Exit);
        Assert.Contains("was not found", lost.Out);

        var history = TestPaths.TempDir("gate-impact-history");
        File.Copy(Path.Combine(fx.Decisions, "approve", "policy.yaml"), Path.Combine(history, "v1.yaml"));
        File.WriteAllText(Path.Combine(history, "same-name-other-content.yaml"), "not: it\n");
        var found = AuditTestKit.RunGate("policy", "impact", proposed, "--decisions", copy, "--policies", history);
        Assert.True(found.Exit == ExitCodes.Impact.SomeFlip, found.Out + found.Err);
    }

    [Fact]
    public void Markdown_for_pull_requests_and_bad_input_is_exit_3()
    {
        var md = Impact(fx.Proposed(("min: 0.9", "min: 0.99")), "--format", "md");
        Assert.StartsWith("### Gate policy impact: ⚠️ past decisions would FLIP", md.Out);
        Assert.Contains("| 🔁 |", md.Out);
        Assert.Contains("| APPROVE | REJECT |", md.Out);

        var none = AuditTestKit.RunGate("policy", "impact", fx.Proposed(), "--decisions", TestPaths.TempDir("gate-impact-empty"));
        Assert.Equal(3, none.Exit);
        Assert.Contains("no decision.json found", none.Err);
        var garbage = TestPaths.TempDir("gate-impact-garbage");
        File.WriteAllText(Path.Combine(garbage, "decision.json"), "{\"decision\": 5");
        var bad = AuditTestKit.RunGate("policy", "impact", fx.Proposed(), "--decisions", garbage);
        Assert.Equal(3, bad.Exit);
        Assert.Contains("decision.json: not a Gate decision record", bad.Err);
    }

    [Fact]
    public void An_edited_decision_with_missing_or_repeated_checks_is_exit_3_not_an_internal_error()
    {
        var stored = File.ReadAllText(Path.Combine(fx.Decisions, "approve", "out", "decision.json"));
        var node = System.Text.Json.Nodes.JsonNode.Parse(stored)!.AsObject();
        var checks = node["checks"]!.AsArray();
        checks.Add(checks[0]!.DeepClone());
        var repeated = TestPaths.TempDir("gate-impact-repeated");
        File.WriteAllText(Path.Combine(repeated, "decision.json"), node.ToJsonString());
        var r = AuditTestKit.RunGate("policy", "impact", fx.Proposed(), "--decisions", repeated);
        Assert.True(r.Exit == 3, r.Err);
        Assert.Contains("appears twice", r.Err);

        node["checks"] = null;
        var none = TestPaths.TempDir("gate-impact-nochecks");
        File.WriteAllText(Path.Combine(none, "decision.json"), node.ToJsonString());
        r = AuditTestKit.RunGate("policy", "impact", fx.Proposed(), "--decisions", none);
        Assert.True(r.Exit == 3, r.Err);
        Assert.Contains("not a Gate decision record", r.Err);
    }
}
