using System.Runtime.InteropServices;

namespace Gate.Cli;

/// <summary>
/// SIGINT (Ctrl-C) and SIGTERM (a CI runner cancelling the job) cancel the running command's token instead of
/// killing the process, so the command can stop and remove its sandbox and temp files before gate exits
/// (130 or 143, no decision). A second signal is left to its default action: exit at once.
/// </summary>
public sealed class SignalCancellation : IDisposable
{
    private readonly CancellationTokenSource _cts = new();
    private readonly PosixSignalRegistration[] _registrations;
    private int _received;

    public SignalCancellation()
    {
        _registrations = [PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle), PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle)];
    }

    public CancellationToken Token => _cts.Token;

    /// <summary>The first signal received, if any.</summary>
    public PosixSignal? Received { get; private set; }

    /// <summary>The documented exit code for the signal received (130 SIGINT, 143 SIGTERM).</summary>
    public int ExitCode => Received == PosixSignal.SIGINT ? ExitCodes.Interrupted : ExitCodes.Terminated;

    public static string NameOf(PosixSignal s) => s == PosixSignal.SIGINT ? "SIGINT" : "SIGTERM";

    private void Handle(PosixSignalContext context)
    {
        if (Interlocked.Exchange(ref _received, 1) == 1) return; // the second one: default action, exit now
        context.Cancel = true;
        Received = context.Signal;
        Console.Error.WriteLine($"gate: {NameOf(context.Signal)} received: stopping the sandbox and removing its files (send it again to exit at once)");
        // Cancellation callbacks run synchronously; keep them off the signal-handling thread.
        _ = Task.Run(_cts.Cancel);
    }

    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose();
        _cts.Dispose();
    }
}
