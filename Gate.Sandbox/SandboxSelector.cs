using Gate.Core;
using Gate.Core.Policy;
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
    /// A fallback is taken only when it meets <paramref name="floor"/> (the policy's isolation); otherwise auto fails
    /// here, before any work, naming why each backend was passed over. The chosen fallback's
    /// <see cref="ISandboxBackend.FallbackReason"/> says the same (for stderr and decision.json). An explicit backend is
    /// used as asked and never falls back: one below the floor, or one whose component is missing, makes the sandbox
    /// checks INCONCLUSIVE with the reason.
    /// </summary>
    /// <exception cref="GateInputException">Unknown name, or auto found no backend meeting the floor.</exception>
    public static ISandboxBackend Select(string? requested, IsolationLevel floor = IsolationLevel.Process) => (requested ?? "auto") switch
    {
        "none" => new InProcessBackend(),
        "process" => new ProcessBackend(),
        "bubblewrap" => new BubblewrapBackend(),
        "docker" => new DockerBackend(DockerEngine.FromEnvironment()),
        "auto" => DockerBackend.TryCreateReady(out var whyNot) ?? Fallback($"docker: {whyNot}", floor),
        var other => throw new GateInputException($"--sandbox: unknown backend '{other}' (expected {string.Join(", ", Names)})"),
    };

    private static ISandboxBackend Fallback(string whyNotDocker, IsolationLevel floor)
    {
        var whyNotBwrap = BubblewrapBackend.WhyNotAvailable();
        if (whyNotBwrap is null)
            try { RunnerRootfs.Locate(); }
            catch (GateComponentMissingException e) { whyNotBwrap = e.Message; }
        if (whyNotBwrap is null)
        {
            var bwrap = new BubblewrapBackend { FallbackReason = $"{whyNotDocker}; using bubblewrap" };
            if (bwrap.AchievedIsolation.Meets(floor)) return bwrap;
            whyNotBwrap = $"achieves only '{bwrap.AchievedIsolation.Name()}'";
        }
        var process = new ProcessBackend { FallbackReason = $"{whyNotDocker}; bubblewrap: {whyNotBwrap}; using process" };
        if (!process.AchievedIsolation.Meets(floor))
            throw new GateInputException($"--sandbox auto: no backend on this host meets the policy's isolation floor '{floor.Name()}': " +
                $"{whyNotDocker}; bubblewrap: {whyNotBwrap}; the process backend achieves only '{process.AchievedIsolation.Name()}'. " +
                "Make Docker and the runner image available (gate sandbox build-image), or bubblewrap with the runner rootfs (scripts/setup.sh)");
        return process;
    }
}
