using Gate.Core;
using Gate.Core.Checks;
using Gate.Core.Decision;
using Gate.Core.Evidence;
using Gate.Core.Model;
using Gate.Core.Plan;
using Gate.Core.Policy;
using Gate.Core.Sandbox;
using Gate.Sandbox.Backends;
using Gate.Tests.Attestation;
using Gate.Tests.Support;

namespace Gate.Tests.Decision;

/// <summary>
/// The faults the issue names — unsupported check types, missing components, sandbox faults, exhausted budgets,
/// insufficient isolation — end INCONCLUSIVE (or REJECT under onInconclusive: reject), never APPROVE, through the real pipeline.
/// </summary>
public class DecisionScenarioTests
{
    private static async Task<DecisionRecord> Run(ISandboxBackend? sandbox, string onInconclusive = "inconclusive", string accEnforcement = "blocking")
    {
        var dir = TestPaths.TempDir("gate-decision");
        var policy = AuditTestKit.WritePolicy(dir, withSandboxCheck: true, onInconclusive: onInconclusive, accuracyEnforcement: accEnforcement);
        return await new GateCheckPipeline(sandbox).RunAsync(new GateCheckRequest(AuditTestKit.ExampleModel, policy, Path.Combine(dir, "out")),
            null, TestContext.Current.CancellationToken);
    }

    private static ScriptedSandbox Answer(Func<SandboxJob, SandboxOutcome> f) => new(IsolationLevel.Process, (job, _) => f(job));

    private static CheckResult AccResult(Verdict v, string summary) => new() { Id = "acc", Type = "accuracy", Verdict = v, Summary = summary };

    [Fact]
    public async Task Positive_control_every_blocking_check_passes_so_approve()
    {
        var record = await Run(ScriptedSandbox.Passing());
        Assert.Equal(GateDecision.Approve, record.Decision);
        Assert.All(record.Checks, c => Assert.Equal(Verdict.Pass, c.Verdict));
    }

    public static TheoryData<string, string> Faults => new()
    {
        { "throws", "sandbox failed" },
        { "crashed", "killed: out of memory" },
        { "no-result", "returned no result" },
        { "budget", "query budget exhausted" },
        { "extra-pass", "returned no result" },
    };

    [Theory]
    [MemberData(nameof(Faults))]
    public async Task Sandbox_faults_and_exhausted_budgets_are_inconclusive_never_approve(string fault, string expectedReason)
    {
        ScriptedSandbox sandbox = fault switch
        {
            "throws" => Answer(_ => throw new IOException("container runtime vanished")),
            "crashed" => Answer(_ => new SandboxOutcome(false, "killed: out of memory", [], IsolationLevel.Process, null)),
            "no-result" => Answer(_ => new SandboxOutcome(true, null, [], IsolationLevel.Process, null)),
            "budget" => Answer(_ => new SandboxOutcome(true, null, [AccResult(Verdict.Inconclusive, "query budget exhausted after 200000 queries")], IsolationLevel.Process, null)),
            // A passing result for a check the host did not ask about must not stand in for the one it did.
            "extra-pass" => Answer(_ => new SandboxOutcome(true, null, [new CheckResult { Id = "other", Type = "accuracy", Verdict = Verdict.Pass }], IsolationLevel.Process, null)),
            _ => throw new ArgumentException(fault),
        };
        var record = await Run(sandbox);
        Assert.Equal(GateDecision.Inconclusive, record.Decision);
        var acc = record.Checks.Single(c => c.Id == "acc");
        Assert.Equal(Verdict.Inconclusive, acc.Verdict);
        Assert.Contains(expectedReason, acc.Summary);
        Assert.Contains(record.Reasons, r => r.StartsWith("acc: inconclusive", StringComparison.Ordinal));

        var strict = await Run(sandbox, onInconclusive: "reject");
        Assert.Equal(GateDecision.Reject, strict.Decision);
    }

    [Fact]
    public async Task An_inconclusive_advisory_check_does_not_block_approval()
    {
        var record = await Run(Answer(_ => new SandboxOutcome(false, "killed: timeout", [], IsolationLevel.Process, null)), accEnforcement: "advisory");
        Assert.Equal(Verdict.Inconclusive, record.Checks.Single(c => c.Id == "acc").Verdict);
        Assert.Equal(GateDecision.Approve, record.Decision);
    }

    [Fact]
    public async Task Insufficient_or_missing_sandbox_is_inconclusive_and_the_sandbox_never_runs()
    {
        var weak = new ScriptedSandbox(IsolationLevel.None, (_, _) => throw new InvalidOperationException("must not run"));
        var r1 = await Run(weak);
        Assert.Empty(weak.Jobs);
        Assert.Equal(GateDecision.Inconclusive, r1.Decision);
        Assert.Contains("requires isolation 'process'", r1.Checks.Single(c => c.Id == "acc").Summary);
        Assert.NotNull(r1.Sandbox.Fault);

        var inProcess = await Run(new InProcessBackend(), onInconclusive: "reject");
        Assert.Equal(GateDecision.Reject, inProcess.Decision);

        var none = await Run(null);
        Assert.Equal(GateDecision.Inconclusive, none.Decision);
        Assert.Contains("no sandbox backend", none.Checks.Single(c => c.Id == "acc").Summary);
    }

    /// <summary>Check-level faults go through the same executor the pipeline uses; implementations here are test doubles.</summary>
    public static TheoryData<string, string> CheckFaults => new()
    {
        { "unsupported", "is not implemented in this build" },
        { "missing-component", "missing component: ONNX Runtime" },
        { "crash", "check failed to run (NullReferenceException)" },
    };

    [Theory]
    [MemberData(nameof(CheckFaults))]
    public async Task Unsupported_types_missing_components_and_crashing_checks_are_inconclusive(string fault, string expected)
    {
        var dir = TestPaths.TempDir("gate-decision");
        var policy = PolicyLoader.Load(AuditTestKit.WritePolicy(dir, withSandboxCheck: true));
        var model = OnnxModelLoader.Load(AuditTestKit.ExampleModel);
        var spec = policy.Spec.Checks.Single(c => c.Id == "acc");
        ICheck? impl = fault switch
        {
            "unsupported" => null,
            "missing-component" => new ThrowingCheck(new GateComponentMissingException("ONNX Runtime is not installed")),
            _ => new ThrowingCheck(new NullReferenceException("boom")),
        };
        var ctx = new CheckContext(model, policy, null, "no runtime", new EvidenceWriter(Path.Combine(dir, "evidence")));
        var result = await CheckExecutor.RunOneAsync(ctx, new PlannedCheck(spec, impl, impl is null ? null : new object()), TestContext.Current.CancellationToken);
        Assert.Equal(Verdict.Inconclusive, result.Verdict);
        Assert.Contains(expected, result.Summary);

        var passing = new CheckResult { Id = "graph", Type = "static-inspection", Verdict = Verdict.Pass };
        Assert.Equal(GateDecision.Inconclusive, DecisionRules.Decide(new DecisionSpec(InconclusiveHandling.Inconclusive), [passing, result]).Decision);
        Assert.Equal(GateDecision.Reject, DecisionRules.Decide(new DecisionSpec(InconclusiveHandling.Reject), [passing, result]).Decision);
    }

    private sealed class ThrowingCheck(Exception e) : ICheck
    {
        public CheckDeclaration Declaration { get; } = new() { Type = "accuracy", Purpose = "test double" };
        public CheckPlacement Placement => CheckPlacement.Sandbox;
        public object Bind(CheckSpec spec, DeploymentPolicy policy) => new();
        public Task<CheckResult> RunAsync(CheckContext context, CheckSpec spec, object options, CancellationToken ct) => throw e;
    }
}
