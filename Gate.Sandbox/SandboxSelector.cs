using Gate.Core;
using Gate.Core.Sandbox;
using Gate.Sandbox.Backends;
using Gate.Sandbox.Bubblewrap;
using Gate.Sandbox.Docker;
using Gate.Sandbox.Process;
using Gate.Sandbox.Rootfs;

namespace Gate.Sandbox;

/// <summary>Chooses the sandbox backend for a run: what the user asked for, else the strongest this host offers.</summary>
public static class SandboxSelector
{
    public static readonly string[] Names = ["auto", "docker", "bubblewrap", "process", "none"];

    /// <summary>
    /// "auto": Docker when an engine answers and this gate's runner image exists; else bubblewrap when it can build
    /// its sandbox here and the runner rootfs is built; else the process backend (for hosts without user namespaces).
    /// The chosen fallback's <see cref="ISandboxBackend.FallbackReason"/> says why each stronger one was passed over
    /// (for stderr and decision.json). An explicit choice never falls back: without its component its runs fault
    /// (INCONCLUSIVE) with the reason.
    /// </summary>
    public static ISandboxBackend Select(string? requested) => (requested ?? "auto") switch
    {
        "none" => new InProcessBackend(),
        "process" => new ProcessBackend(),
        "bubblewrap" => new BubblewrapBackend(),
        "docker" => new DockerBackend(DockerEngine.FromEnvironment()),
        "auto" => DockerBackend.TryCreateReady(out var whyNot) ?? Fallback($"docker: {whyNot}"),
        var other => throw new GateInputException($"--sandbox: unknown backend '{other}' (expected {string.Join(", ", Names)})"),
    };

    private static ISandboxBackend Fallback(string whyNotDocker)
    {
        var whyNotBwrap = BubblewrapBackend.WhyNotAvailable();
        if (whyNotBwrap is null)
            try { RunnerRootfs.Locate(); }
            catch (GateComponentMissingException e) { whyNotBwrap = e.Message; }
        return whyNotBwrap is null
            ? new BubblewrapBackend { FallbackReason = $"{whyNotDocker}; using bubblewrap" }
            : new ProcessBackend { FallbackReason = $"{whyNotDocker}; bubblewrap: {whyNotBwrap}; using process" };
    }
}
