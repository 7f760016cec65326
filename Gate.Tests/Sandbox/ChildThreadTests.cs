using System.Diagnostics;
using Gate.Core.Policy;
using Gate.Sandbox;

namespace Gate.Tests.Sandbox;

/// <summary>
/// A sandbox child carries a parent-death signal (bubblewrap's --die-with-parent), which Linux sends when the thread
/// that forked it exits. The runner backends must fork it from a thread that outlives it: started from a thread-pool
/// worker, a release run was SIGKILLed whenever that worker retired (issue #17). setpriv --pdeathsig KILL stands in
/// for bubblewrap here: it arms the same signal and then runs a short sleep.
/// </summary>
public class ChildThreadTests
{
    private static ProcessStartInfo SleepWithParentDeathSignal() => new("setpriv", ["--pdeathsig", "KILL", "--", "sleep", "3"])
    {
        RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
    };

    /// <summary>Runs <paramref name="start"/> on a thread that ends 1 s later, while the child is still sleeping.</summary>
    private static T OnShortLivedThread<T>(Func<T> start)
    {
        T result = default!;
        var thread = new Thread(() => { result = start(); Thread.Sleep(1000); });
        thread.Start();
        thread.Join();
        return result;
    }

    [Fact]
    public void A_child_forked_by_a_thread_that_ends_is_killed_by_its_parent_death_signal()
    {
        // The hazard itself, so that the test below is known to be able to fail here.
        using var p = OnShortLivedThread(() => Process.Start(SleepWithParentDeathSignal())!);
        p.WaitForExit();
        Assert.Equal(128 + 9, p.ExitCode);
    }

    [Fact]
    public async Task The_runner_backends_child_outlives_the_thread_that_asked_for_it()
    {
        var limits = new ResourceLimits(0, 1, TimeSpan.FromSeconds(30), 64);
        var run = OnShortLivedThread(() => RunnerBackend.RunChildAsync(SleepWithParentDeathSignal(), limits, _ => { }, CancellationToken.None));
        var exit = await run;
        Assert.Null(exit.Fault);
        Assert.Equal(0, exit.ExitCode);
    }

    [Fact]
    public void A_child_that_cannot_start_reports_why()
    {
        var e = Assert.ThrowsAny<System.ComponentModel.Win32Exception>(() => OwnThreadChild.Start(new ProcessStartInfo("/nonexistent/gate-no-such-program") { UseShellExecute = false }));
        Assert.Contains("gate-no-such-program", e.Message);
    }
}
