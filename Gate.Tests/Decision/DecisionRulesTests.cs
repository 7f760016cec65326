using Gate.Core.Decision;
using Gate.Core.Evidence;
using Gate.Core.Policy;

namespace Gate.Tests.Decision;

/// <summary>The three-valued decision over every combination of enforcement, verdict and inconclusive handling.</summary>
public class DecisionRulesTests
{
    private static readonly (Enforcement E, Verdict V)[] Outcomes =
        [.. from e in new[] { Enforcement.Blocking, Enforcement.Advisory } from v in new[] { Verdict.Pass, Verdict.Fail, Verdict.Inconclusive } select (e, v)];

    private static CheckResult Result(int i, Enforcement e, Verdict v) => new()
    {
        Id = $"c{i}", Type = "accuracy", Enforcement = e, Verdict = v, Summary = $"c{i} {v}",
    };

    /// <summary>Every list of 0–3 checks (259 lists) × both onInconclusive settings, judged against the rule as the issue states it.</summary>
    [Fact]
    public void Every_combination_of_up_to_three_checks_follows_the_rule()
    {
        int cases = 0;
        foreach (var handling in new[] { InconclusiveHandling.Inconclusive, InconclusiveHandling.Reject })
            for (int n = 0; n <= 3; n++)
                foreach (var combo in Combinations(n))
                {
                    var results = combo.Select((o, i) => Result(i, o.E, o.V)).ToList();
                    var (decision, reasons) = DecisionRules.Decide(new DecisionSpec(handling), results);

                    bool anyBlockingFail = combo.Any(o => o.E == Enforcement.Blocking && o.V == Verdict.Fail);
                    bool allBlockingPass = combo.Any(o => o.E == Enforcement.Blocking) && combo.Where(o => o.E == Enforcement.Blocking).All(o => o.V == Verdict.Pass);
                    var expected = anyBlockingFail ? GateDecision.Reject
                        : allBlockingPass ? GateDecision.Approve
                        : handling == InconclusiveHandling.Reject ? GateDecision.Reject : GateDecision.Inconclusive;
                    var label = $"{handling}: [{string.Join(", ", combo.Select(o => $"{o.E}/{o.V}"))}]";
                    Assert.True(expected == decision, $"{label}: expected {expected}, got {decision}");

                    // Every blocking check that did not pass is named in the reasons; advisory ones never are.
                    for (int i = 0; i < combo.Length; i++)
                    {
                        bool named = reasons.Any(r => r.StartsWith($"c{i}:", StringComparison.Ordinal));
                        bool shouldBe = combo[i].E == Enforcement.Blocking && combo[i].V != Verdict.Pass;
                        Assert.True(named == shouldBe, $"{label}: reason for c{i} present={named}, expected {shouldBe}");
                    }
                    Assert.NotEmpty(reasons);

                    // Advisory checks never change the decision: dropping them gives the same answer.
                    var blockingOnly = results.Where(r => r.Enforcement == Enforcement.Blocking).ToList();
                    Assert.Equal(decision, DecisionRules.Decide(new DecisionSpec(handling), blockingOnly).Decision);
                    cases++;
                }
        Assert.Equal(2 * (1 + 6 + 36 + 216), cases);
    }

    [Theory]
    [InlineData("blocking:pass", "inconclusive", GateDecision.Approve)]
    [InlineData("blocking:pass advisory:fail", "inconclusive", GateDecision.Approve)]
    [InlineData("blocking:pass advisory:inconclusive", "reject", GateDecision.Approve)]
    [InlineData("blocking:pass blocking:fail", "inconclusive", GateDecision.Reject)]
    [InlineData("blocking:fail blocking:inconclusive", "inconclusive", GateDecision.Reject)]
    [InlineData("blocking:pass blocking:inconclusive", "inconclusive", GateDecision.Inconclusive)]
    [InlineData("blocking:pass blocking:inconclusive", "reject", GateDecision.Reject)]
    [InlineData("advisory:pass", "inconclusive", GateDecision.Inconclusive)] // no blocking checks: nothing supports an approval
    [InlineData("advisory:pass advisory:pass", "reject", GateDecision.Reject)]
    [InlineData("", "inconclusive", GateDecision.Inconclusive)]
    public void Named_cases(string checks, string onInconclusive, GateDecision expected)
    {
        var results = checks.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select((c, i) =>
        {
            var parts = c.Split(':');
            return Result(i, Enum.Parse<Enforcement>(parts[0], true), Enum.Parse<Verdict>(parts[1], true));
        }).ToList();
        var handling = Enum.Parse<InconclusiveHandling>(onInconclusive, true);
        Assert.Equal(expected, DecisionRules.Decide(new DecisionSpec(handling), results).Decision);
    }

    [Fact]
    public void Exit_codes_are_the_cli_contract()
    {
        Assert.Equal(0, Gate.Cli.ExitCodes.For(GateDecision.Approve));
        Assert.Equal(1, Gate.Cli.ExitCodes.For(GateDecision.Reject));
        Assert.Equal(2, Gate.Cli.ExitCodes.For(GateDecision.Inconclusive));
    }

    private static IEnumerable<(Enforcement E, Verdict V)[]> Combinations(int n)
    {
        if (n == 0) { yield return []; yield break; }
        foreach (var rest in Combinations(n - 1))
            foreach (var o in Outcomes) yield return [o, .. rest];
    }
}
