using System.Diagnostics;
using System.Runtime.InteropServices;
using Gate.Core.Decision;
using Gate.Core.Evidence;
using Gate.Sandbox.Slurm;
using Gate.Tests.Runtime;
using Gate.Tests.Support;

namespace Gate.Tests.Sandbox;

/// <summary>
/// The Slurm executor against a real cluster (scripts/setup.d/60-slurm.sh: one node, 2 CPUs): real job arrays,
/// real retries and cancellation. In CI (GATE_REQUIRE_SLURM=1) a missing cluster fails these tests.
/// </summary>
[Collection(nameof(SlurmExecutorTests))]
public sealed class SlurmExecutorTests
{
    private static void RequireCluster()
    {
        OrtTestSupport.RequireOrt();
        bool up = Slurm.Available && Run("sinfo", "-h", "-o", "%t").Split('\n').Any(s => s.Trim() is "idle" or "mix" or "alloc");
        Need.Component("GATE_REQUIRE_SLURM", up, "no Slurm cluster answers here (run scripts/setup.d/60-slurm.sh)");
    }

    private static string Run(string tool, params string[] args)
    {
        try
        {
            var (code, stdout, _) = Slurm.RunAsync(tool, args, CancellationToken.None).GetAwaiter().GetResult();
            return code == 0 ? stdout : "";
        }
        catch (Gate.Core.GateComponentMissingException) { return ""; }
    }

    /// <summary>The gate the nodes start: the CLI built beside the tests (this process is the test host, not gate).</summary>
    private static SlurmOptions Options(int shards, string? prologue = null, int retries = 2) =>
        new(shards, TestPaths.TempDir("gate-slurm-shared"), Retries: retries, Sandbox: "process")
        { GateCommand = ["dotnet", GateProcess.GateDll], TaskPrologue = prologue, Poll = TimeSpan.FromMilliseconds(300) };

    [Fact]
    public async Task Three_slurm_tasks_give_the_same_decision_as_one_local_run_and_leave_nothing_staged()
    {
        RequireCluster();
        var policy = ShardTests.Policy();
        var local = await ShardTests.RunAsync(policy, null, TestContext.Current.CancellationToken);
        var options = Options(3);
        var slurm = await ShardTests.RunAsync(policy, new SlurmExecutor(options), TestContext.Current.CancellationToken);
        Assert.Equal(ShardTests.Content(local), ShardTests.Content(slurm));
        Assert.Equal("slurm", slurm.Execution!.Executor);
        Assert.All(slurm.Execution.ShardList, s => { Assert.Equal(0, s.ExitStatus); Assert.False(string.IsNullOrEmpty(s.Node)); Assert.Equal(1, s.Attempts); });
        Assert.StartsWith("slurm/", slurm.Sandbox.Backend);
        Assert.Empty(Directory.EnumerateFileSystemEntries(options.SharedDir));
    }

    [Fact]
    public async Task A_killed_task_is_resubmitted_and_the_decision_is_unchanged()
    {
        RequireCluster();
        var policy = ShardTests.Policy(samples: 9);
        var local = await ShardTests.RunAsync(policy, new Gate.Core.Sandbox.LocalShardExecutor(3), TestContext.Current.CancellationToken);
        // Shard 1's first attempt dies by SIGKILL before it writes anything, as on a lost node.
        var slurm = await ShardTests.RunAsync(policy, new SlurmExecutor(Options(3, """if [ "$i" = 1 ] && [ "$a" = 1 ]; then kill -9 $$; fi""")),
            TestContext.Current.CancellationToken);
        Assert.Equal(ShardTests.Content(local), ShardTests.Content(slurm));
        Assert.Equal(2, slurm.Execution!.ShardList[1].Attempts);
        Assert.Equal(1, slurm.Execution.ShardList[0].Attempts);
        Assert.Equal(local.Execution!.MerkleRoot, slurm.Execution.MerkleRoot);
    }

    [Fact]
    public async Task A_task_that_keeps_failing_ends_inconclusive_after_its_retries()
    {
        RequireCluster();
        var record = await ShardTests.RunAsync(ShardTests.Policy(samples: 9),
            new SlurmExecutor(Options(3, """if [ "$i" = 2 ]; then kill -9 $$; fi""", retries: 1)), TestContext.Current.CancellationToken);
        var robustness = record.Checks.Single(c => c.Id == "robustness");
        Assert.Equal(Verdict.Inconclusive, robustness.Verdict);
        Assert.Contains("shard 2", robustness.Summary);
        Assert.Contains("without an exit status", robustness.Summary);
        Assert.NotEqual(GateDecision.Approve, record.Decision);
        Assert.Equal(2, record.Execution!.ShardList[2].Attempts);
        Assert.Null(record.Execution.ShardList[2].ResultSha256);
        // Shard 0 completed, so the unsharded check it carried stands.
        Assert.Equal(Verdict.Pass, record.Checks.Single(c => c.Id == "accuracy").Verdict);
    }

    [Fact]
    public async Task Cancelling_a_run_scancels_its_array_and_leaves_no_job_behind()
    {
        RequireCluster();
        var executor = new SlurmExecutor(Options(3, "sleep 300"));
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var run = ShardTests.RunAsync(ShardTests.Policy(samples: 9), executor, cts.Token);
        var sw = Stopwatch.StartNew();
        while (executor.SubmittedJobs.Count == 0 || Run("squeue", "-h", "-j", executor.SubmittedJobs[0], "-o", "%T").Trim().Length == 0)
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(60), "the array never showed up in squeue");
            await Task.Delay(200, TestContext.Current.CancellationToken);
        }
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        Assert.Equal("", Run("squeue", "-h", "-j", string.Join(',', executor.SubmittedJobs), "-o", "%i").Trim());
    }
    [Fact]
    public async Task Three_slurm_tasks_give_the_same_decision_as_one_local_run_for_the_trojan_formal_and_probe_units()
    {
        RequireCluster();
        var (model, policy) = WorkUnitShardTests.Digits();
        var local = await WorkUnitShardTests.RunAsync(model, policy, null);
        var slurm = await WorkUnitShardTests.RunAsync(model, policy, new SlurmExecutor(Options(3)));
        Assert.Equal(ShardTests.Content(local), ShardTests.Content(slurm));
        Assert.All(slurm.Execution!.ShardList, s => Assert.Equal(0, s.ExitStatus));
        Assert.Empty(slurm.Execution.Unsharded);
    }

    [DllImport("libc", SetLastError = true)] private static extern int kill(int pid, int sig);

    /// <summary>Jobs whose working folder is under <paramref name="sharedDir"/> (the executor submits with --chdir into its stage there).</summary>
    private static List<string> JobsUnder(string sharedDir) =>
        Run("squeue", "-h", "-o", "%i %Z").Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim().Split(' ', 2))
            .Where(f => f.Length == 2 && f[1].StartsWith(sharedDir, StringComparison.Ordinal)).Select(f => f[0]).ToList();

    [Fact]
    public async Task Sigint_to_gate_check_scancels_its_array_leaves_no_job_and_no_stage_behind_and_exits_130()
    {
        RequireCluster();
        var dir = TestPaths.TempDir("gate-slurm-sigint");
        var shared = Path.Combine(dir, "shared");
        Directory.CreateDirectory(shared);
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = dir };
        foreach (var a in new[] { GateProcess.GateDll, "check", "--model", ShardTests.Model, "--policy", ShardTests.Policy(), "--out", Path.Combine(dir, "out"),
                     "--executor", "slurm", "--shards", "3", "--shared-dir", shared, "--sandbox", "process" })
            psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        using var gate = Process.Start(psi)!;
        var stderr = gate.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        _ = gate.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        try
        {
            var sw = Stopwatch.StartNew();
            while (JobsUnder(shared).Count == 0)
            {
                Assert.False(gate.HasExited, $"gate exited ({(gate.HasExited ? gate.ExitCode : 0)}) before its array showed up in squeue");
                Assert.True(sw.Elapsed < TimeSpan.FromMinutes(2), "the array never showed up in squeue");
                await Task.Delay(200, TestContext.Current.CancellationToken);
            }
            Assert.Equal(0, kill(gate.Id, 2)); // SIGINT, as Ctrl-C
            Assert.True(gate.WaitForExit(TimeSpan.FromSeconds(90)), "gate did not stop within 90 s of SIGINT");
            var err = await stderr;
            Assert.True(gate.ExitCode == 130, $"exit {gate.ExitCode}\n{err}");
            Assert.Contains("cancelled by SIGINT", err);
            Assert.Empty(JobsUnder(shared));
            Assert.Empty(Directory.EnumerateFileSystemEntries(shared));
            Assert.False(File.Exists(Path.Combine(dir, "out", "decision.json")), "a cancelled run wrote a decision");
        }
        finally
        {
            if (!gate.HasExited) gate.Kill(entireProcessTree: true);
            foreach (var id in JobsUnder(shared)) Run("scancel", id);
        }
    }
}
