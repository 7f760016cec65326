using System.Diagnostics;
using Gate.Core.Policy;
using Gate.Core.Sandbox;
using Gate.Sandbox.Process;
using Gate.Sandbox.Protocol;
using Gate.Sandbox.Rootfs;

namespace Gate.Sandbox.Bubblewrap;

/// <summary>
/// The runner under bubblewrap (Debian <c>bubblewrap</c>), the default without Docker: the pinned runner rootfs
/// (<see cref="RunnerRootfs"/>, the same tree the Docker image is made of) mounted read-only as <c>/</c>, the .NET
/// runtime, the runner and ONNX Runtime read-only beside it, the job read-only, results the only writable folder,
/// fresh /proc, /dev and a /tmp tmpfs; every namespace unshared (no network at all), no capabilities, its own
/// session, killed with its parent, a scrubbed environment; when gate is root, a fresh unprivileged uid per run
/// (setpriv, no-new-privs) and a memory + pids cgroup (<see cref="CgroupLimits"/>); rlimits always (prlimit).
/// </summary>
public sealed class BubblewrapBackend : RunnerBackend
{
    private static readonly Lazy<HostCapabilities> Caps = new(HostCapabilities.Probe);

    public override string Name => "bubblewrap";

    /// <summary>
    /// Container-level confinement (own mount, pid, network, ipc and uts namespaces on a read-only pinned root, no
    /// capabilities) needs the kernel's memory limit too before it counts as a container: without cgroups the
    /// memory cap covers only the managed heap, as for the process backend.
    /// </summary>
    public override IsolationLevel AchievedIsolation => Caps.Value.Cgroups ? IsolationLevel.Container : IsolationLevel.ProcessNetns;

    /// <summary>Whether a memory + pids cgroup limits each run (root on a host with cgroups).</summary>
    public static bool KernelLimits => Caps.Value.Cgroups;

    protected override int NextUid() => Caps.Value.DropUser ? System.Security.Cryptography.RandomNumberGenerator.GetInt32(200_000, 1_000_000) : JobStaging.SandboxUid;
    protected override long RunnerUid(StagedJob staged) => Caps.Value.DropUser ? staged.Uid : Posix.geteuid();

    /// <summary>Null when bubblewrap can build a sandbox on this host; otherwise why not, in words (for auto's fallback reason).</summary>
    public static string? WhyNotAvailable() => Caps.Value.Unavailable;

    /// <summary>What this host lets us use, probed once.</summary>
    internal sealed record HostCapabilities(string? Unavailable, bool DropUser, bool Prlimit, bool Cgroups)
    {
        public static HostCapabilities Probe()
        {
            bool root = Posix.geteuid() == 0;
            bool drop = root && Works(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--no-new-privs", "true"]);
            // The real test: an unprivileged bubblewrap with every namespace unshared (user namespaces may be off).
            string[] probe = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--ro-bind", "/", "/", "true"];
            string? why = null;
            if (!Works(["bwrap", "--version"])) why = "bwrap is not installed (Debian package bubblewrap)";
            else if (!Works(drop ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--no-new-privs", "--", .. probe] : probe))
                why = "bwrap cannot create its namespaces here (unprivileged user namespaces disabled?)";
            return new HostCapabilities(why, drop, Works(["prlimit", "--core=0", "true"]), root && CgroupLimits.Available());
        }

        private static bool Works(string[] argv)
        {
            try
            {
                var psi = new ProcessStartInfo(argv[0]) { RedirectStandardError = true, RedirectStandardOutput = true };
                foreach (var a in argv.Skip(1)) psi.ArgumentList.Add(a);
                using var p = System.Diagnostics.Process.Start(psi)!;
                if (!p.WaitForExit(5000)) { p.Kill(true); return false; }
                return p.ExitCode == 0;
            }
            catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException) { return false; }
        }
    }

    /// <summary>Where the runner's parts sit inside the sandbox (the same paths as in the Docker image).</summary>
    internal const string DotnetInside = "/gate/dotnet", RunnerInside = "/gate/runner", OrtInside = "/gate/ort";

    /// <summary>
    /// The full command line: [sh: join the cgroup] [prlimit …] [setpriv …] bwrap … -- /gate/dotnet/dotnet
    /// /gate/runner/Gate.Sandbox.Runner.dll --job /job --out /results.
    /// </summary>
    internal static List<string> CommandLine(HostCapabilities caps, string rootfs, RunnerLocation runner, StagedJob staged, ResourceLimits limits,
        IReadOnlyList<string> cgroupProcs, bool faultsEnabled)
    {
        var argv = new List<string>();
        if (cgroupProcs.Count > 0)
        {
            // The first process joins the cgroups, then becomes the rest of the command: everything it starts is inside.
            argv.AddRange(["/bin/sh", "-c", "for f in $CGROUP_PROCS; do echo $$ > \"$f\" || exit 125; done; exec \"$@\"", "gate-sandbox"]);
        }
        if (caps.Prlimit)
        {
            long cpuSeconds = (long)Math.Ceiling(limits.Timeout.TotalSeconds * Math.Max(1, limits.Cpus)) + 30;
            argv.AddRange(["prlimit", "--core=0", "--nofile=1024", $"--fsize={4L << 30}", $"--cpu={cpuSeconds}"]);
            if (caps.DropUser) argv.Add($"--nproc={limits.Pids}");
            argv.Add("--");
        }
        if (caps.DropUser) argv.AddRange(["setpriv", $"--reuid={staged.Uid}", $"--regid={JobStaging.SandboxGid}", "--clear-groups", "--no-new-privs", "--"]);
        argv.AddRange(["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--ro-bind", rootfs, "/",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
            "--ro-bind", runner.DotnetRoot, DotnetInside,
            "--ro-bind", Path.GetDirectoryName(runner.RunnerDll)!, RunnerInside]);
        if (runner.OrtLibrary is not null && Path.GetDirectoryName(runner.OrtLibrary) is { } ortDir && Directory.Exists(ortDir))
            argv.AddRange(["--ro-bind", ortDir, OrtInside]);
        argv.AddRange(["--ro-bind", staged.JobDir, "/job", "--bind", staged.ResultsDir, "/results", "--chdir", "/results", "--clearenv"]);
        foreach (var (k, v) in Environment(runner, limits, faultsEnabled)) argv.AddRange(["--setenv", k, v]);
        argv.AddRange(["--", $"{DotnetInside}/dotnet", $"{RunnerInside}/{Path.GetFileName(runner.RunnerDll)}", "--job", "/job", "--out", "/results"]);
        return argv;
    }

    /// <summary>The only variables the runner sees (set inside by bwrap after --clearenv): nothing of the host's passes through.</summary>
    internal static Dictionary<string, string> Environment(RunnerLocation runner, ResourceLimits limits, bool faultsEnabled)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["PATH"] = "/nonexistent", // no shell and no programs inside: nothing is looked up
            ["HOME"] = "/results",
            ["TMPDIR"] = "/tmp",
            ["DOTNET_ROOT"] = DotnetInside,
            ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
            ["DOTNET_EnableDiagnostics"] = "0",
            ["DOTNET_gcServer"] = "0",
            ["DOTNET_PROCESSOR_COUNT"] = Math.Max(1, (int)Math.Ceiling(limits.Cpus)).ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        // The runtime cannot see the cgroup from inside (no /sys): the managed heap gets the limit explicitly.
        if (limits.MemoryBytes > 0) env["DOTNET_GCHeapHardLimit"] = "0x" + limits.MemoryBytes.ToString("x", System.Globalization.CultureInfo.InvariantCulture);
        if (runner.OrtLibrary is not null) env["GATE_ORT_LIB"] = $"{OrtInside}/{Path.GetFileName(runner.OrtLibrary)}";
        if (faultsEnabled) env["GATE_RUNNER_FAULTS"] = "1";
        return env;
    }

    protected override async Task<RunnerExit> LaunchAsync(StagedJob staged, ResourceLimits limits, bool gpu, bool requireGpu, bool faultsEnabled,
        Action<string> stdoutLine, CancellationToken ct)
    {
        if (Caps.Value.Unavailable is { } why) return new RunnerExit(null, $"bubblewrap: {why}");
        string rootfs;
        try { rootfs = RunnerRootfs.Locate(); }
        catch (Gate.Core.GateComponentMissingException e) { return new RunnerExit(null, e.Message); }
        var runner = RunnerLocation.Find();
        // GPUs: no device nodes are bound (a fresh /dev), so the runner runs on the CPU; a required GPU is a fault.
        if (gpu && requireGpu) return new RunnerExit(null, "bubblewrap gives the sandbox no GPU device; use --sandbox docker with the NVIDIA runtime");
        using var cgroup = Caps.Value.Cgroups ? CgroupLimits.TryCreate(limits.MemoryBytes, limits.Pids) : null;
        if (Caps.Value.Cgroups && cgroup is null) return new RunnerExit(null, "bubblewrap: could not create the sandbox's memory/pids cgroup");
        var procs = cgroup?.ProcsFiles ?? [];
        var argv = CommandLine(Caps.Value, rootfs, runner, staged, limits, procs, faultsEnabled);
        var psi = new ProcessStartInfo(argv[0])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true,
            UseShellExecute = false, WorkingDirectory = staged.WorkDir,
        };
        foreach (var a in argv.Skip(1)) psi.ArgumentList.Add(a);
        psi.Environment.Clear();
        psi.Environment["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"; // host side: finds prlimit, setpriv, bwrap
        if (procs.Count > 0) psi.Environment["CGROUP_PROCS"] = string.Join(' ', procs);

        // bwrap runs with --die-with-parent: killing the tree at the deadline takes the sandbox's own pid namespace down with it.
        var exit = await RunChildAsync(psi, limits, stdoutLine, ct).ConfigureAwait(false);
        if (exit.ExitCode is null) return exit;
        if (exit.ExitCode == 125 && procs.Count > 0 && exit.StderrTail.Contains("cgroup", StringComparison.Ordinal))
            return exit with { ExitCode = null, Fault = "bubblewrap: the sandbox could not join its cgroup" };
        if (cgroup?.OomKilled() == true)
            return exit with { Fault = $"the sandbox was killed for memory (OOM; limit {limits.MemoryBytes} bytes, no swap)" };
        // With a cgroup we know a SIGKILL was not the memory limit's: say so, so nobody raises the limit in vain.
        if (exit.ExitCode == 137 && cgroup is not null)
            return exit with { Fault = "the runner was killed (SIGKILL), not for memory: the sandbox's cgroup recorded no OOM kill" };
        return exit;
    }
}
