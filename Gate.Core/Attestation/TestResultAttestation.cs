using System.Text.Json;
using System.Text.Json.Nodes;
using Gate.Core.Decision;
using Gate.Core.Evidence;
using Gate.Core.Policy;

namespace Gate.Core.Attestation;

/// <summary>
/// The decision as a standard in-toto Test Result (https://in-toto.io/attestation/test-result/v0.1), for generic
/// attestation consumers (Kyverno, SLSA verifiers) that gate on <c>result</c> and test names. Gate's own predicate
/// stays the full record; this one is a summary signed beside it about the same subject.
/// </summary>
public static class TestResultAttestation
{
    public const string PredicateType = "https://in-toto.io/attestation/test-result/v0.1";

    /// <summary>APPROVE → PASSED, INCONCLUSIVE → WARNED, REJECT → FAILED: "don't know" is never reported as a pass.</summary>
    public static string Result(GateDecision d) => d switch
    {
        GateDecision.Approve => "PASSED",
        GateDecision.Inconclusive => "WARNED",
        _ => "FAILED",
    };

    public static bool TryParseResult(string? result, out GateDecision decision)
    {
        foreach (var d in Enum.GetValues<GateDecision>())
            if (Result(d) == result) { decision = d; return true; }
        decision = default;
        return false;
    }

    /// <summary>
    /// The statement: subject = the model; configuration = the policy file (name, sha256); passedTests = check ids that
    /// passed; failedTests = blocking checks that failed; warnedTests = inconclusive checks and failed advisory checks.
    /// </summary>
    public static byte[] Statement(DecisionRecord record)
    {
        static JsonArray Ids(IEnumerable<CheckResult> checks) => new(checks.Select(c => (JsonNode)JsonValue.Create(c.Id)!).ToArray());
        var statement = new JsonObject
        {
            ["_type"] = DecisionAttestation.StatementType,
            ["subject"] = new JsonArray(new JsonObject
            {
                ["name"] = record.Model.Name,
                ["digest"] = new JsonObject { ["sha256"] = record.Model.Sha256 },
            }),
            ["predicateType"] = PredicateType,
            ["predicate"] = new JsonObject
            {
                ["result"] = Result(record.Decision),
                ["configuration"] = new JsonArray(new JsonObject
                {
                    ["name"] = record.Policy.Name,
                    ["digest"] = new JsonObject { ["sha256"] = record.Policy.Sha256 },
                    ["annotations"] = new JsonObject { ["policyName"] = record.PolicyName, ["gateDecision"] = record.Decision.ToString().ToLowerInvariant() },
                }),
                ["passedTests"] = Ids(record.Checks.Where(c => c.Verdict == Verdict.Pass)),
                ["warnedTests"] = Ids(record.Checks.Where(c => c.Verdict == Verdict.Inconclusive
                    || (c.Verdict == Verdict.Fail && c.Enforcement != Enforcement.Blocking))),
                ["failedTests"] = Ids(record.Checks.Where(c => c.Verdict == Verdict.Fail && c.Enforcement == Enforcement.Blocking)),
            },
        };
        return JsonSerializer.SerializeToUtf8Bytes(statement);
    }
}
