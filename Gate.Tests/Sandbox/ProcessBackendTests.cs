using Gate.Core.Policy;
using Gate.Core;
using Gate.Core.Evidence;
using Gate.Core.Sandbox;
using Gate.Sandbox;
using Gate.Sandbox.Backends;
using Gate.Sandbox.Process;
using Gate.Tests.Support;

namespace Gate.Tests.Sandbox;

public sealed class ProcessBackendFixture
{
    public ProcessBackend Backend { get; } = new();
}

public sealed class ProcessBackendTests(ProcessBackendFixture fixture) : BackendContract, IClassFixture<ProcessBackendFixture>
{
    protected override RunnerBackend Backend => fixture.Backend;
    protected override IsolationLevel ExpectedIsolation => fixture.Backend.AchievedIsolation;
    protected override string OomFault => "oom";
    // The GC heap hard limit turns the runaway allocation into an OutOfMemoryException the runner reports.
    protected override string OomReason => "OutOfMemoryException";

    private static bool Root => Gate.Sandbox.Posix.geteuid() == 0;

    protected override void AssertSelfTest(IReadOnlyDictionary<string, string> probes)
    {
        // What the host permits decides what is blocked; the report must say so truthfully.
        var netns = fixture.Backend.AchievedIsolation == IsolationLevel.ProcessNetns;
        Assert.Equal(netns ? "blocked" : "allowed", probes["network-loopback"]);
        if (netns) Assert.Equal("blocked", probes["network-outside"]);
        if (Root)
        {
            // Dropped to the sandbox user: no writes to /, no reading the host's /proc/<pid>/environ, RLIMIT_NPROC holds.
            Assert.Equal("blocked", probes["rootfs-write"]);
            Assert.Equal("blocked", probes["host-process-environ"]);
            Assert.Equal("blocked", probes["pids-limit"]);
        }
    }

    [Fact]
    public void This_host_gives_a_network_namespace_when_root()
    {
        if (!Root) Assert.Skip("unshare -n needs root (or user namespaces) here");
        Assert.Equal(IsolationLevel.ProcessNetns, fixture.Backend.AchievedIsolation);
    }

    [Fact]
    public void Command_line_wraps_the_runner_in_rlimits_netns_and_the_sandbox_user()
    {
        var caps = new ProcessBackend.HostCapabilities(["-n"], true, true);
        var runner = new RunnerLocation("/d/dotnet", "/d", "/bin/Gate.Sandbox.Runner.dll", null);
        var staged = new Gate.Sandbox.Protocol.StagedJob("/w", "/w/job", "/w/results", 345678);
        var argv = ProcessBackend.CommandLine(caps, runner, staged, new(1L << 30, 2, TimeSpan.FromSeconds(60), 99));
        Assert.Equal("prlimit", argv[0]);
        Assert.Contains("--nproc=99", argv);
        Assert.Contains("--core=0", argv);
        int unshare = argv.IndexOf("unshare"), setpriv = argv.IndexOf("setpriv"), dotnet = argv.IndexOf("/d/dotnet");
        Assert.True(unshare > 0 && setpriv > unshare && dotnet > setpriv, string.Join(' ', argv));
        Assert.Contains("--no-new-privs", argv);
        Assert.Contains("--reuid=345678", argv);
        Assert.Equal(["--job", "/w/job", "--out", "/w/results"], argv[^4..]);
    }

    [Fact]
    public void Environment_is_scrubbed_to_a_fixed_list()
    {
        Environment.SetEnvironmentVariable("GATE_TEST_SECRET", "hunter2");
        var runner = new RunnerLocation("/d/dotnet", "/d", "/r.dll", "/ort/libonnxruntime.so.1");
        var env = ProcessBackend.Environment(runner, new("/w", "/w/job", "/w/results"), new(1L << 30, 1, TimeSpan.FromSeconds(1), 64), faultsEnabled: false);
        Assert.DoesNotContain("GATE_TEST_SECRET", env.Keys);
        Assert.DoesNotContain("GATE_RUNNER_FAULTS", env.Keys);
        Assert.Equal("/ort/libonnxruntime.so.1", env["GATE_ORT_LIB"]);
        Assert.Equal("0x40000000", env["DOTNET_GCHeapHardLimit"]);
        Assert.Subset(new HashSet<string> { "PATH", "HOME", "TMPDIR", "DOTNET_ROOT", "DOTNET_CLI_TELEMETRY_OPTOUT", "DOTNET_EnableDiagnostics",
            "DOTNET_gcServer", "DOTNET_PROCESSOR_COUNT", "DOTNET_GCHeapHardLimit", "GATE_ORT_LIB" }, env.Keys.ToHashSet());
    }

    [Fact]
    public async Task A_policy_requiring_a_container_is_never_run_in_a_process()
    {
        var dir = TestPaths.TempDir("gate-sbx");
        var policy = SandboxTestJobs.WritePolicy(dir, isolation: "container");
        var record = await new GateCheckPipeline(fixture.Backend).RunAsync(new GateCheckRequest(SandboxTestJobs.ModelPath, policy, dir), null, TestContext.Current.CancellationToken);
        var acc = record.Checks.Single(c => c.Id == "accuracy");
        Assert.Equal(Verdict.Inconclusive, acc.Verdict);
        Assert.Contains("requires isolation 'container'", acc.Summary);
        Assert.Equal(Verdict.Pass, record.Checks.Single(c => c.Id == "graph").Verdict); // host checks still ran
        Assert.NotEqual(Gate.Core.Decision.GateDecision.Approve, record.Decision);
    }

    [Fact]
    public async Task The_pipeline_approves_through_the_process_sandbox_and_records_the_self_test()
    {
        var dir = TestPaths.TempDir("gate-sbx");
        var policy = SandboxTestJobs.WritePolicy(dir);
        var record = await new GateCheckPipeline(fixture.Backend).RunAsync(new GateCheckRequest(SandboxTestJobs.ModelPath, policy, dir), null, TestContext.Current.CancellationToken);
        Assert.Equal(Gate.Core.Decision.GateDecision.Approve, record.Decision);
        Assert.Equal(fixture.Backend.AchievedIsolation, record.Sandbox.Isolation);
        Assert.NotNull(record.Sandbox.SelfTest?["probes"]);
        Assert.Contains("\"selfTest\"", record.ToJson());
    }

    [Fact]
    public void Selector_names_every_backend_and_rejects_unknown_ones()
    {
        Assert.IsType<ProcessBackend>(Gate.Sandbox.SandboxSelector.Select("process"));
        Assert.IsType<InProcessBackend>(Gate.Sandbox.SandboxSelector.Select("none"));
        Assert.Throws<GateInputException>(() => Gate.Sandbox.SandboxSelector.Select("vm"));
    }
}
