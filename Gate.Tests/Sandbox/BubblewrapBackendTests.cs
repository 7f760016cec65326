using Gate.Core.Policy;
using Gate.Core;
using Gate.Core.Sandbox;
using Gate.Sandbox;
using Gate.Sandbox.Bubblewrap;
using Gate.Sandbox.Process;
using Gate.Sandbox.Protocol;
using Gate.Sandbox.Rootfs;
using Gate.Tests.Support;

namespace Gate.Tests.Sandbox;

public sealed class BubblewrapFixture
{
    public BubblewrapBackend Backend { get; } = new();

    /// <summary>The backend, when bubblewrap works here and the runner rootfs is built; fails in CI (GATE_REQUIRE_BWRAP=1), skips locally.</summary>
    public BubblewrapBackend Require()
    {
        var why = BubblewrapBackend.WhyNotAvailable();
        if (why is null)
            try { RunnerRootfs.Locate(); }
            catch (GateComponentMissingException e) { why = e.Message; }
        Need.Component("GATE_REQUIRE_BWRAP", why is null, $"bubblewrap: {why} (scripts/setup.d/16-bubblewrap.sh installs it; docker/rootfs/build-rootfs.sh builds the rootfs)");
        return Backend;
    }
}

[CollectionDefinition(nameof(BubblewrapBackendTests), DisableParallelization = true)]
public sealed class BubblewrapBackendCollection;

/// <summary>The backend contract (<see cref="BackendContract"/>) and bubblewrap's own guarantees. Alone: "nothing left
/// behind" would see the cgroups of sandboxes other tests run at the same time.</summary>
[Collection(nameof(BubblewrapBackendTests))]
public sealed class BubblewrapBackendTests(BubblewrapFixture fixture) : BackendContract, IClassFixture<BubblewrapFixture>
{
    protected override RunnerBackend Backend => fixture.Require();
    protected override IsolationLevel ExpectedIsolation => BubblewrapBackend.KernelLimits ? IsolationLevel.Container : IsolationLevel.ProcessNetns;
    // With a cgroup the kernel kills native over-allocation (as Docker's); without one only the managed heap is capped.
    protected override string OomFault => BubblewrapBackend.KernelLimits ? "oom-native" : "oom";
    protected override string OomReason => BubblewrapBackend.KernelLimits ? "killed for memory (OOM" : "OutOfMemoryException";
    // With a cgroup, a kill that was not the memory limit's says so.
    protected override string KillReason => BubblewrapBackend.KernelLimits ? "killed (SIGKILL), not for memory" : "killed (SIGKILL)";

    protected override void AssertSelfTest(IReadOnlyDictionary<string, string> probes) =>
        // Every namespace is unshared and the root is read-only whoever runs gate; as root also a fresh uid and a pids cgroup.
        Assert.All(probes, p => Assert.Equal("blocked", p.Value));

    protected override void AssertNothingLeftBehind()
    {
        // No sandbox cgroup of this process survives its run (the class runs alone, so none is in use).
        foreach (var root in new[] { "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup" })
            if (Directory.Exists(root))
                Assert.DoesNotContain(Directory.EnumerateDirectories(root, CgroupLimits.NamePrefix + "*", SearchOption.AllDirectories), d => !d.Contains("/unified/", StringComparison.Ordinal));
    }

    [Fact]
    public void Command_line_mounts_the_pinned_rootfs_read_only_and_unshares_everything()
    {
        var caps = new BubblewrapBackend.HostCapabilities(null, DropUser: true, Prlimit: true, Cgroups: true);
        var runner = new RunnerLocation("/d/dotnet", "/d", "/bin/Gate.Sandbox.Runner.dll", "/ort/libonnxruntime.so.1");
        var staged = new StagedJob("/w", "/w/job", "/w/results", 345678);
        var argv = BubblewrapBackend.CommandLine(caps, "/rootfs", runner, staged, new(1L << 30, 2, TimeSpan.FromSeconds(60), 99), ["/cg/cgroup.procs"], false);
        string Joined() => string.Join(' ', argv);
        Assert.Equal("/bin/sh", argv[0]); // joins the cgroup, then execs the rest
        int prlimit = argv.IndexOf("prlimit"), setpriv = argv.IndexOf("setpriv"), bwrap = argv.IndexOf("bwrap");
        Assert.True(prlimit > 0 && setpriv > prlimit && bwrap > setpriv, Joined());
        Assert.Contains("--nproc=99", argv);
        Assert.Contains("--reuid=345678", argv);
        Assert.Contains("--no-new-privs", argv);
        foreach (var flag in new[] { "--unshare-all", "--die-with-parent", "--new-session", "--clearenv" }) Assert.Contains(flag, argv);
        Assert.Contains("--cap-drop ALL", Joined());
        Assert.Contains("--ro-bind /rootfs / ", Joined());
        Assert.Contains("--ro-bind /w/job /job ", Joined());
        Assert.Contains("--bind /w/results /results ", Joined());
        Assert.DoesNotContain("--share-net", argv);
        // The only writable bind is results (plus the private /tmp tmpfs); everything else is read-only.
        Assert.Single(argv, a => a == "--bind");
        Assert.Contains("--setenv GATE_ORT_LIB /gate/ort/libonnxruntime.so.1", Joined());
        Assert.Equal(["--", "/gate/dotnet/dotnet", "/gate/runner/Gate.Sandbox.Runner.dll", "--job", "/job", "--out", "/results"], argv[^7..]);
    }

    [Fact]
    public void Environment_is_a_fixed_list_and_names_only_paths_inside()
    {
        Environment.SetEnvironmentVariable("GATE_TEST_SECRET", "hunter2");
        var runner = new RunnerLocation("/d/dotnet", "/d", "/r.dll", "/ort/libonnxruntime.so.1");
        var env = BubblewrapBackend.Environment(runner, new(1L << 30, 1, TimeSpan.FromSeconds(1), 64), faultsEnabled: false);
        Assert.DoesNotContain("GATE_TEST_SECRET", env.Keys);
        Assert.DoesNotContain("GATE_RUNNER_FAULTS", env.Keys);
        Assert.Equal("/gate/dotnet", env["DOTNET_ROOT"]);
        Assert.Equal("0x40000000", env["DOTNET_GCHeapHardLimit"]);
    }

    [Fact]
    public async Task The_pipeline_approves_through_bubblewrap_and_records_its_isolation_and_self_test()
    {
        var backend = fixture.Require();
        var dir = TestPaths.TempDir("gate-sbx");
        var policy = SandboxTestJobs.WritePolicy(dir, isolation: BubblewrapBackend.KernelLimits ? "container" : "process-netns");
        var record = await new GateCheckPipeline(backend).RunAsync(new GateCheckRequest(SandboxTestJobs.ModelPath, policy, dir), null, TestContext.Current.CancellationToken);
        Assert.Equal(Gate.Core.Decision.GateDecision.Approve, record.Decision);
        Assert.Equal("bubblewrap", record.Sandbox.Backend);
        Assert.Equal(backend.AchievedIsolation, record.Sandbox.Isolation);
        Assert.Equal("bubblewrap", record.Sandbox.SelfTest?["backend"]?.GetValue<string>());
        Assert.NotNull(record.Sandbox.SelfTest?["probes"]);
    }

    [Fact]
    public void The_runner_sees_the_pinned_rootfs_not_the_host()
    {
        fixture.Require();
        // The rootfs is the lock's: its copy of the lock names the pinned trixie packages, and it has no shell.
        var rootfs = RunnerRootfs.Locate();
        Assert.Equal(RunnerRootfs.Id(Path.Combine(TestPaths.RepoRoot, RunnerRootfs.LockInRepository), Path.Combine(TestPaths.RepoRoot, RunnerRootfs.ScriptInRepository)),
            RunnerRootfs.IdOf(rootfs));
        Assert.Equal(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, RunnerRootfs.LockInRepository)), File.ReadAllText(Path.Combine(rootfs, RunnerRootfs.LockInRootfs)));
        Assert.Contains("libstdc++6 14.", File.ReadAllText(Path.Combine(rootfs, RunnerRootfs.LockInRootfs)));
        foreach (var shell in new[] { "bin/sh", "usr/bin/sh", "bin/bash", "usr/bin/dpkg", "usr/bin/apt-get" })
            Assert.False(File.Exists(Path.Combine(rootfs, shell)), $"the rootfs has {shell}");
        Assert.Contains("GLIBCXX_3.4.32", System.Text.Encoding.ASCII.GetString(File.ReadAllBytes(Path.Combine(rootfs, "usr/lib/x86_64-linux-gnu/libstdc++.so.6"))));
    }

    [Fact]
    public void Auto_without_docker_picks_bubblewrap_and_says_why()
    {
        fixture.Require();
        var nosock = "unix://" + Path.Combine(TestPaths.TempDir("gate-nosock"), "docker.sock");
        var r = GateProcess.Run(["sandbox", "selftest", "--json"], new Dictionary<string, string> { ["DOCKER_HOST"] = nosock }, TimeSpan.FromMinutes(2));
        Assert.True(r.ExitCode == 0, r.All);
        var report = System.Text.Json.Nodes.JsonNode.Parse(r.Stdout)!;
        Assert.Equal("bubblewrap", report["backend"]!.GetValue<string>());
        Assert.Matches("sandbox: docker: no engine socket at .*; using bubblewrap", r.Stderr);
    }
}
