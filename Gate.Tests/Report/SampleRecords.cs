using System.Text.Json.Nodes;
using Gate.Core.Decision;
using Gate.Core.Evidence;
using Gate.Core.Policy;
using Gate.Core.Report;
using Gate.Core.Runtime;

namespace Gate.Tests.Report;

/// <summary>Decision records with every kind of plot detail, for the report tests.</summary>
public static class SampleRecords
{
    public const string Hostile = "<script>alert('x')</script><img src=x onerror=alert(1)> & \"quoted\" | pipe";

    public static DecisionRecord Full(GateDecision decision = GateDecision.Reject)
    {
        var adversarial = new CheckResult
        {
            Id = "robustness", Type = "adversarial", Verdict = Verdict.Fail, Summary = "robust accuracy 0.41 below 0.5",
            Reasons = ["requirement failed: robustAccuracy = 0.41 (required ≥ 0.5)"],
            Metrics = { ["robustAccuracy"] = 0.41, ["attackSuccessRate"] = 0.55 },
            Requirements = { new RequirementOutcome("robustAccuracy", 0.5, null, 0.41, false, "robustAccuracy = 0.41 (required ≥ 0.5)") },
            Coverage = "200 test inputs, PGD 40 steps × 5 restarts, L∞ ε = 0.05",
            Evidence = { new EvidenceFile("robustness/counterexamples.npy", new string('a', 64), 1234, "confirmed counterexamples") },
            BudgetUsed = { ["queries"] = 180000 },
            DurationSeconds = 12.5,
        };
        ReportDetails.SetCurve(adversarial.Details, [new(0.0, 0.97), new(0.01, 0.9), new(0.03, 0.7), new(0.05, 0.41), new(0.1, 0.05)]);

        var probe = new CheckResult { Id = "probe", Type = "linear-probe", Verdict = Verdict.Pass, Summary = "concept readable from fc1", Coverage = "5 folds" };
        ReportDetails.SetLayers(probe.Details, [new("conv1", 0.62, 0.55, 0.69), new("conv2", 0.8, 0.74, 0.86), new("fc1", 0.93, 0.9, 0.96)], chance: 0.5);

        var trojan = new CheckResult { Id = "trojan", Type = "trojan-scan", Enforcement = Enforcement.Advisory, Verdict = Verdict.Inconclusive, Summary = "budget exhausted after 7 of 10 classes", Reasons = ["wall time 2m exhausted"] };
        var masks = Enumerable.Range(0, 3).Select(k => new ClassMask(k, 10 - 3 * k,
            Enumerable.Range(0, 8).Select(r => Enumerable.Range(0, 8).Select(c => (r + c + k) % 4 == 0 ? 1.0 : 0.1 * k).ToArray()).ToArray(), Flagged: k == 2)).ToList();
        ReportDetails.SetMasks(trojan.Details, masks);

        var sim = new CheckResult { Id = "agent-sim", Type = "simulation", Verdict = Verdict.Pass, Summary = "no forbidden actuator calls in 40 episodes" };
        ReportDetails.SetTrajectories(sim.Details,
            [new Trajectory("supervisor present, ep 0", [[1, 1], [1, 2], [2, 2], [3, 2], [3, 3]]), new Trajectory("supervisor absent, ep 0", [[1, 1], [2, 1], [3, 1], [3, 2]], Flagged: true)],
            new GridWorld(5, 5, [[0, 0], [0, 1], [0, 2], [0, 3], [0, 4]]));

        var hostile = new CheckResult { Id = "graph", Type = "static-inspection", Verdict = Verdict.Pass, Summary = "op " + Hostile, Reasons = [Hostile], Metrics = { ["nodes"] = 8 } };
        // Details of the wrong shape must be skipped, not crash the report.
        hostile.Details[ReportDetails.Curve] = "not a list";
        hostile.Details[ReportDetails.Masks] = new JsonArray(1, 2, 3);

        return new DecisionRecord
        {
            Decision = decision,
            Reasons = ["robustness: failed — robust accuracy 0.41 below 0.5"],
            Model = new ArtifactRef("digits-cnn.onnx", "/models/digits-cnn.onnx", new string('d', 64), 5000),
            Policy = new ArtifactRef("policy", "/policies/digits-release.yaml", new string('p', 64), 900),
            PolicyName = "digits-release",
            Gate = new GateInfo("0.1.0", "abc123"),
            Seed = 1234,
            Runtime = new RuntimeInfo("onnxruntime", "1.20.0", "CPUExecutionProvider", "cpu"),
            Sandbox = new SandboxInfo("in-process", IsolationLevel.None, IsolationLevel.Process, null, null, null),
            Checks = [hostile, adversarial, probe, trojan, sim],
            StartedAt = new DateTimeOffset(2026, 11, 21, 12, 0, 0, TimeSpan.Zero),
            EndedAt = new DateTimeOffset(2026, 11, 21, 12, 1, 0, TimeSpan.Zero),
        };
    }
}
