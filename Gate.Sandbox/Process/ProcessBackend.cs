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
    protected override long RunnerUid(StagedJob staged) => Caps.Value.DropUser ? staged.Uid : JobStaging.geteuid();
    public override string AchievedIsolation => Caps.Value.Netns is not null ? IsolationLevels.ProcessNetns : IsolationLevels.Process;

    /// <summary>What this host lets us use, probed once: [unshare args], whether we may drop to the sandbox user, prlimit.</summary>
    internal sealed record HostCapabilities(string[]? Netns, bool DropUser, bool Prlimit)
    {
        public static HostCapabilities Probe()
        {
            bool root = JobStaging.geteuid() == 0;
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

        var stderr = new TailBuffer();
        using var proc = new System.Diagnostics.Process { StartInfo = psi };
        proc.Start();
        proc.StandardInput.Close();
        // Bounded readers: the runner's output is untrusted and must not be able to exhaust the host's memory.
        var pumps = Task.WhenAll(
            BoundedLines.PumpAsync(proc.StandardOutput.BaseStream, stdoutLine, JobProtocol.MaxLineChars),
            BoundedLines.PumpAsync(proc.StandardError.BaseStream, stderr.Add, JobProtocol.MaxLineChars));

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(limits.Timeout > TimeSpan.Zero ? limits.Timeout : TimeSpan.FromMinutes(10));
        try
        {
            await proc.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            try { proc.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            await proc.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            await Task.WhenAny(pumps, Task.Delay(TimeSpan.FromSeconds(5), CancellationToken.None)).ConfigureAwait(false);
            ct.ThrowIfCancellationRequested();
            return new RunnerExit(null, $"the sandbox exceeded its wall-clock deadline ({limits.Timeout}) and was killed", stderr.ToString());
        }
        // Last lines, but never wait long: something the runner left behind could hold the pipes open.
        await Task.WhenAny(pumps, Task.Delay(TimeSpan.FromSeconds(5), CancellationToken.None)).ConfigureAwait(false);
        return new RunnerExit(proc.ExitCode, null, stderr.ToString());
    }
}

/// <summary>Where the runner program and what it needs live on this host.</summary>
public sealed record RunnerLocation(string Dotnet, string DotnetRoot, string RunnerDll, string? OrtLibrary)
{
    public const string RunnerAssembly = "Gate.Sandbox.Runner.dll";

    /// <summary>GATE_RUNNER (path to the runner dll) or the runner beside this program; dotnet is the one running us.</summary>
    public static RunnerLocation Find()
    {
        var dll = System.Environment.GetEnvironmentVariable("GATE_RUNNER") ?? Path.Combine(AppContext.BaseDirectory, RunnerAssembly);
        if (!File.Exists(dll)) throw new Gate.Core.GateComponentMissingException($"the sandbox runner is missing ({dll}); build Gate.Sandbox/Runner or set GATE_RUNNER");
        // .../dotnet/shared/Microsoft.NETCore.App/<version>/ → .../dotnet
        var root = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));
        var dotnet = Path.Combine(root, "dotnet");
        // The runner loads the ONNX Runtime library its own build carries. Only a GATE_ORT_LIB the user set (a custom
        // or CUDA build) is passed on, as given even when it names no file: the runner then says so, rather than
        // this host silently substituting another library.
        var ort = System.Environment.GetEnvironmentVariable("GATE_ORT_LIB") is { Length: > 0 } given ? Path.GetFullPath(given) : null;
        return new RunnerLocation(dotnet, root, Path.GetFullPath(dll), ort);
    }
}
