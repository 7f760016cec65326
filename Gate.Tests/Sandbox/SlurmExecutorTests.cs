using System.Diagnostics;
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
}
