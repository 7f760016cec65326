using System.Diagnostics;

namespace Gate.Sandbox;

/// <summary>
/// A child process forked from a thread of its own, which stays alive until the owner disposes this (after the child
/// has exited). Linux sends a child its parent-death signal (PR_SET_PDEATHSIG: bubblewrap's --die-with-parent,
/// setpriv --pdeathsig) when the <em>thread</em> that forked it exits, not the process. Started from a thread-pool
/// worker, a sandbox was SIGKILLed whenever that worker retired — at a random point of a long run (issue #17,
/// traced with the kernel's signal_generate event: the sender was a ".NET TP Worker").
/// </summary>
public sealed class OwnThreadChild : IDisposable
{
    private readonly ManualResetEventSlim _release = new();

    public System.Diagnostics.Process Process { get; }

    private OwnThreadChild(System.Diagnostics.Process process) => Process = process;

    /// <summary>Starts <paramref name="psi"/> on a new thread and returns once it has started (or failed to).</summary>
    public static OwnThreadChild Start(ProcessStartInfo psi)
    {
        var child = new OwnThreadChild(new System.Diagnostics.Process { StartInfo = psi });
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try { child.Process.Start(); }
            catch (Exception e) { started.SetException(e); return; }
            started.SetResult();
            child._release.Wait(); // the child's parent thread lives until its owner is done with it
        })
        { IsBackground = true, Name = $"gate child {Path.GetFileName(psi.FileName)}" };
        thread.Start();
        try { started.Task.GetAwaiter().GetResult(); }
        catch { child.Dispose(); throw; }
        return child;
    }

    /// <summary>Lets the forking thread end. Once the child has exited that changes nothing; before, its parent-death signal (if any) fires.</summary>
    public void Dispose()
    {
        _release.Set();
        Process.Dispose();
    }
}
