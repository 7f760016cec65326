using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Gate.Core.Policy;
using Gate.Core.Sandbox;
using Gate.Sandbox.Protocol;

namespace Gate.Sandbox.Process;

/// <summary>
/// The runner as a child process: scrubbed environment, its own working folder, rlimits (prlimit), a fresh network
/// namespace (unshare -n) where the host permits it, and — when we are root — the unprivileged sandbox user
/// (setpriv, no-new-privs). Memory is capped by the GC heap hard limit (managed heap only: native allocations are
/// not covered; the container backend's cgroup limit is the real one).
/// </summary>
public sealed class ProcessBackend : RunnerBackend
{
    private static readonly Lazy<HostCapabilities> Caps = new(HostCapabilities.Probe);

    public override string Name => "process";

    /// <summary>
    /// A fresh unprivileged uid per run (when we can switch users): concurrent sandboxes cannot signal or read each
    /// other, and RLIMIT_NPROC, which counts per uid, is this run's budget alone rather than shared with others.
    /// </summary>
    protected override int NextUid() => Caps.Value.DropUser ? System.Security.Cryptography.RandomNumberGenerator.GetInt32(200_000, 1_000_000) : JobStaging.SandboxUid;
    /// <summary>Without setpriv the runner keeps our own uid, whatever the staged folder's owner is.</summary>
    protected override long RunnerUid(StagedJob staged) => Caps.Value.DropUser ? staged.Uid : Posix.geteuid();
    public override IsolationLevel AchievedIsolation => Caps.Value.Netns is not null ? IsolationLevel.ProcessNetns : IsolationLevel.Process;

    /// <summary>What this host lets us use, probed once: [unshare args], whether we may drop to the sandbox user, prlimit.</summary>
    internal sealed record HostCapabilities(string[]? Netns, bool DropUser, bool Prlimit)
    {
        public static HostCapabilities Probe()
        {
            bool root = Posix.geteuid() == 0;
            string[]? netns = Works("unshare", "-n", "true") ? ["-n"] : Works("unshare", "-rn", "true") ? ["-rn"] : null;
            return new HostCapabilities(netns, root && Works("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--no-new-privs", "true"),
                Works("prlimit", "--core=0", "true"));
        }

        private static bool Works(string file, params string[] args)
        {
            try
            {
                var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
                foreach (var a in args) psi.ArgumentList.Add(a);
                using var p = System.Diagnostics.Process.Start(psi)!;
                if (!p.WaitForExit(5000)) { p.Kill(true); return false; }
                return p.ExitCode == 0;
            }
            catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException) { return false; }
        }
    }

    /// <summary>The full command line: [prlimit …] [unshare -n] [setpriv …] dotnet runner.dll --job … --out ….</summary>
    internal static List<string> CommandLine(HostCapabilities caps, RunnerLocation runner, StagedJob staged, ResourceLimits limits)
    {
        var argv = new List<string>();
        if (caps.Prlimit)
        {
            long cpuSeconds = (long)Math.Ceiling(limits.Timeout.TotalSeconds * Math.Max(1, limits.Cpus)) + 30;
            argv.AddRange(["prlimit", "--core=0", "--nofile=1024", $"--fsize={4L << 30}", $"--cpu={cpuSeconds}"]);
            // RLIMIT_NPROC counts the sandbox user's tasks; root ignores it, so it only means something after setpriv.
            if (caps.DropUser) argv.Add($"--nproc={limits.Pids}");
            argv.Add("--");
        }
        if (caps.Netns is not null) { argv.Add("unshare"); argv.AddRange(caps.Netns); argv.Add("--"); }
        if (caps.DropUser) argv.AddRange(["setpriv", $"--reuid={staged.Uid}", $"--regid={JobStaging.SandboxGid}", "--clear-groups", "--no-new-privs", "--"]);
        argv.AddRange([runner.Dotnet, runner.RunnerDll, "--job", staged.JobDir, "--out", staged.ResultsDir]);
        return argv;
    }

    /// <summary>The only variables the runner sees: nothing of the host's environment passes through.</summary>
    internal static Dictionary<string, string> Environment(RunnerLocation runner, StagedJob staged, ResourceLimits limits, bool faultsEnabled)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["PATH"] = "/usr/bin:/bin",
            ["HOME"] = staged.ResultsDir,
            ["TMPDIR"] = staged.ResultsDir,
            ["DOTNET_ROOT"] = runner.DotnetRoot,
            ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
            // No diagnostics IPC socket: nothing outside should be able to attach to the runner.
            ["DOTNET_EnableDiagnostics"] = "0",
            ["DOTNET_gcServer"] = "0",
            ["DOTNET_PROCESSOR_COUNT"] = Math.Max(1, (int)Math.Ceiling(limits.Cpus)).ToString(CultureInfo.InvariantCulture),
        };
        if (limits.MemoryBytes > 0) env["DOTNET_GCHeapHardLimit"] = "0x" + limits.MemoryBytes.ToString("x", CultureInfo.InvariantCulture);
        if (runner.OrtLibrary is not null) env["GATE_ORT_LIB"] = runner.OrtLibrary;
        if (faultsEnabled) env["GATE_RUNNER_FAULTS"] = "1";
        return env;
    }

    // A child process sees the host's GPUs like any process; the runtime decides whether to use them (job.UseGpu).
    protected override async Task<RunnerExit> LaunchAsync(StagedJob staged, ResourceLimits limits, bool gpu, bool requireGpu, bool faultsEnabled,
        Action<string> stdoutLine, CancellationToken ct)
    {
        var runner = RunnerLocation.Find();
        var argv = CommandLine(Caps.Value, runner, staged, limits);
        var psi = new ProcessStartInfo(argv[0])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true,
            UseShellExecute = false, WorkingDirectory = staged.WorkDir,
        };
        foreach (var a in argv.Skip(1)) psi.ArgumentList.Add(a);
        psi.Environment.Clear();
        foreach (var (k, v) in Environment(runner, staged, limits, faultsEnabled)) psi.Environment[k] = v;

        return await RunChildAsync(psi, limits, stdoutLine, ct).ConfigureAwait(false);
    }
}
