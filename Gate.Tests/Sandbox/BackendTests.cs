using Gate.Core.Policy;
using System.Text.Json;
using Gate.Core;
using Gate.Core.Checks;
using Gate.Core.Evidence;
using Gate.Core.Sandbox;
using Gate.Sandbox;
using Gate.Tests.Support;

namespace Gate.Tests.Sandbox;

/// <summary>
/// The same behaviour demanded of every real backend: a job's results equal in-process execution, and every fault
/// (crash, OOM, deadline, malformed/truncated/missing results) ends Completed=false with its reason and no evidence.
/// </summary>
public abstract class BackendContract
{
    /// <summary>The backend under test (skips or fails via <see cref="Need"/> when its component is missing).</summary>
    protected abstract RunnerBackend Backend { get; }
    protected abstract IsolationLevel ExpectedIsolation { get; }
    /// <summary>The fault that exceeds this backend's memory limit (managed heap for processes, native for cgroups).</summary>
    protected abstract string OomFault { get; }
    /// <summary>What the OOM fault's reason must say on this backend.</summary>
    protected abstract string OomReason { get; }
    /// <summary>What a runner killed by SIGKILL must be reported as on this backend.</summary>
    protected virtual string KillReason => "killed (SIGKILL)";
    protected virtual void AssertNothingLeftBehind() { }

    [Fact]
    public async Task A_real_job_gives_the_same_results_as_in_process_execution()
    {
        var dir = TestPaths.TempDir("gate-sbx");
        var job = SandboxTestJobs.Job(SandboxTestJobs.WritePolicy(dir));
        var (expected, _) = await SandboxJobExecutor.RunAsync(job, Path.Combine(dir, "ref"), new Progress<ProgressUpdate>(), TestContext.Current.CancellationToken);

        var updates = new List<ProgressUpdate>();
        var outcome = await Backend.RunAsync(job, Path.Combine(dir, "evidence"), SandboxTestJobs.Progress(updates), TestContext.Current.CancellationToken);

        Assert.True(outcome.Completed, outcome.FaultReason);
        Assert.Equal(ExpectedIsolation, outcome.Isolation);
        var got = Assert.Single(outcome.Results);
        Assert.Equal(Verdict.Pass, got.Verdict);
        Assert.Equal(Strip(expected[0]), Strip(got));
        Assert.Contains(updates, u => u.CheckId == "accuracy");
        Assert.Equal("builtin", outcome.Runtime?.Name);
        Assert.NotNull(outcome.Details?["selfTest"]?["probes"]);
        AssertNothingLeftBehind();
    }

    /// <summary>Everything but the wall-clock duration must agree.</summary>
    private static string Strip(CheckResult r)
    {
        var node = JsonSerializer.SerializeToNode(r, Gate.Core.IO.GateJson.Options)!.AsObject();
        node.Remove("durationSeconds");
        return node.ToJsonString();
    }

    [Theory]
    [InlineData("crash", "crashed")]
    [InlineData("oom", null)]
    [InlineData("hang", "deadline")]
    [InlineData("sigkill", null)]
    [InlineData("garbage", "malformed")]
    [InlineData("truncated", "malformed")]
    [InlineData("noresults", "no results.json")]
    public async Task Every_fault_ends_incomplete_with_its_reason_and_no_evidence(string fault, string? reasonMentions)
    {
        reasonMentions ??= fault == "oom" ? OomReason : KillReason;
        var dir = TestPaths.TempDir("gate-sbx");
        var policy = SandboxTestJobs.WritePolicy(dir);
        // Only the hang is meant to meet the deadline; every other fault must be reported as itself even when a loaded
        // machine starts the runner slowly, so its deadline is far away.
        var deadline = TimeSpan.FromSeconds(fault == "hang" ? 4 : 60);
        var limits = Gate.Core.Policy.PolicyLoader.Load(policy).Spec.Sandbox.Limits with { MemoryBytes = 256L << 20, Timeout = deadline };
        var job = SandboxTestJobs.Job(policy, limits);
        var evidence = Path.Combine(dir, "evidence");
        var backend = Backend;
        backend.InjectFault = fault == "oom" ? OomFault : fault;
        SandboxOutcome outcome;
        try { outcome = await backend.RunAsync(job, evidence, new Progress<ProgressUpdate>(), TestContext.Current.CancellationToken); }
        finally { backend.InjectFault = null; }

        Assert.False(outcome.Completed);
        Assert.Empty(outcome.Results);
        Assert.NotNull(outcome.FaultReason);
        Assert.Contains(reasonMentions, outcome.FaultReason, StringComparison.OrdinalIgnoreCase);
        Assert.False(Directory.Exists(evidence) && Directory.EnumerateFiles(evidence, "*", SearchOption.AllDirectories).Any());
        AssertNothingLeftBehind();
    }

    [Fact]
    public async Task A_fault_makes_the_pipeline_inconclusive_never_approve()
    {
        var dir = TestPaths.TempDir("gate-sbx");
        var policy = SandboxTestJobs.WritePolicy(dir);
        var backend = Backend;
        backend.InjectFault = "crash";
        Gate.Core.Decision.DecisionRecord record;
        try { record = await new GateCheckPipeline(backend).RunAsync(new GateCheckRequest(SandboxTestJobs.ModelPath, policy, dir), null, TestContext.Current.CancellationToken); }
        finally { backend.InjectFault = null; }
        Assert.NotEqual(Gate.Core.Decision.GateDecision.Approve, record.Decision);
        var acc = record.Checks.Single(c => c.Id == "accuracy");
        Assert.Equal(Verdict.Inconclusive, acc.Verdict);
        Assert.Contains("crashed", acc.Summary);
        Assert.NotNull(record.Sandbox.Fault);
        Assert.NotNull(record.Sandbox.SelfTest);
    }

    [Fact]
    public async Task The_self_test_runs_inside_and_the_host_environment_never_leaks()
    {
        var limits = new Gate.Core.Policy.ResourceLimits(1L << 30, 1, TimeSpan.FromMinutes(1), 64);
        var report = await Backend.SelfTestAsync(limits, TestContext.Current.CancellationToken);
        Assert.Null(report["error"]);
        var probes = report["probes"]!.AsArray().ToDictionary(p => p!["name"]!.GetValue<string>(), p => p!["outcome"]!.GetValue<string>());
        Assert.Equal(["host-environment", "host-process-environ", "network-loopback", "network-outside", "pids-limit", "rootfs-write"], probes.Keys.Order());
        Assert.Equal("blocked", probes["host-environment"]);
        AssertSelfTest(probes);
    }

    protected abstract void AssertSelfTest(IReadOnlyDictionary<string, string> probes);
}
