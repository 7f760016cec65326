using System.Diagnostics;

namespace Gate.Tests.Support;

public sealed record ProcessResult(int ExitCode, string Stdout, string Stderr)
{
    public string All => Stdout + Stderr;
}

/// <summary>
/// Runs the built `gate` CLI as a separate process, as a user or CI pipeline would: the one place tests start gate
/// as a process. Use it for what only a process shows (signals, crashes, environment, working directory, the OS exit
/// status); everything else runs in-process through <see cref="GateCli"/>.
/// </summary>
public static class GateProcess
{
    /// <summary>gate.dll is copied next to the test assembly because Gate.Tests references Gate.Cli.</summary>
    public static string GateDll => Path.Combine(AppContext.BaseDirectory, "gate.dll");

    public static ProcessResult Run(params string[] args) => Run(args, null, TimeSpan.FromMinutes(3));

    /// <summary><paramref name="env"/> sets variables; <paramref name="unset"/> removes inherited ones.</summary>
    public static ProcessResult Run(IEnumerable<string> args, IDictionary<string, string>? env, TimeSpan timeout, string? workingDirectory = null,
        IEnumerable<string>? unset = null)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? TestPaths.RepoRoot,
        };
        psi.ArgumentList.Add(GateDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        psi.Environment["COLUMNS"] = "200";
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        foreach (var k in unset ?? []) psi.Environment.Remove(k);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"gate {string.Join(' ', args)} did not finish within {timeout}");
        }
        p.WaitForExit();
        return new ProcessResult(p.ExitCode, stdout.Result, stderr.Result);
    }
}
