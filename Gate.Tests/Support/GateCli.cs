using Gate.Cli;

namespace Gate.Tests.Support;

/// <summary>
/// Runs the <c>gate</c> command line in this process: the same command tree and exit-code contract as the real
/// program (<see cref="GateCommand"/>, <see cref="Gate.Cli.Cli.InvokeAsync(System.CommandLine.RootCommand, string[], CancellationToken)"/>),
/// with stdout and stderr captured for this call only (<see cref="Terminal.Capture"/>), so CLI tests need no process
/// and may run in parallel. Paths must be absolute (the working directory is the test host's). What only a real
/// process shows — signals, the exit status the OS reports, crashes, the working directory, environment variables —
/// is tested with <see cref="GateProcess"/>.
/// </summary>
public static class GateCli
{
    public static ProcessResult Run(params string[] args) => Run(args, TimeSpan.FromMinutes(3));

    /// <summary>Fails with <see cref="TimeoutException"/> when the command has not returned within <paramref name="timeout"/> (it is cancelled first).</summary>
    public static ProcessResult Run(IEnumerable<string> args, TimeSpan timeout)
    {
        var argv = args.ToArray();
        // Off the test's synchronisation context, so a command's continuations never wait for the blocked caller.
        return Task.Run(async () =>
        {
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            using var cts = new CancellationTokenSource(timeout);
            int code;
            using (Terminal.Capture(stdout, stderr))
            {
                try { code = await Gate.Cli.Cli.InvokeAsync(GateCommand.Create(), argv, cts.Token).WaitAsync(timeout + TimeSpan.FromSeconds(30)); }
                catch (TimeoutException) { throw new TimeoutException($"gate {string.Join(' ', argv)} did not finish within {timeout}"); }
            }
            return new ProcessResult(code, stdout.ToString(), stderr.ToString());
        }).GetAwaiter().GetResult();
    }
}
