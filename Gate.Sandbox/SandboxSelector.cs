using Gate.Core;
using Gate.Core.Policy;
using Gate.Core.Sandbox;
using Gate.Sandbox.Backends;
using Gate.Sandbox.Docker;
using Gate.Sandbox.Process;

namespace Gate.Sandbox;

/// <summary>Chooses the sandbox backend for a run: what the user asked for, else the strongest this host offers.</summary>
public static class SandboxSelector
{
    public static readonly string[] Names = ["auto", "docker", "process", "none"];

    /// <summary>
    /// "auto": Docker when an engine answers and this gate's runner image exists, else the process backend, whose
    /// <see cref="ISandboxBackend.FallbackReason"/> then says why (for stderr and decision.json) — but only when the
    /// process backend meets <paramref name="floor"/> (the policy's isolation); otherwise auto fails here, before any
    /// work, naming both reasons. An explicit backend is used as asked and never falls back: one below the floor, or
    /// "docker" without an engine, makes the sandbox checks INCONCLUSIVE with the reason.
    /// </summary>
    /// <exception cref="GateInputException">Unknown name, or auto found no backend meeting the floor.</exception>
    public static ISandboxBackend Select(string? requested, IsolationLevel floor = IsolationLevel.Process) => (requested ?? "auto") switch
    {
        "none" => new InProcessBackend(),
        "process" => new ProcessBackend(),
        "docker" => new DockerBackend(DockerClient.FromEnvironment()),
        "auto" => DockerBackend.TryCreateReady(out var whyNot) ?? (ISandboxBackend)Fallback(whyNot, floor),
        var other => throw new GateInputException($"--sandbox: unknown backend '{other}' (expected {string.Join(", ", Names)})"),
    };

    private static ProcessBackend Fallback(string dockerWhyNot, IsolationLevel floor)
    {
        var process = new ProcessBackend();
        if (!process.AchievedIsolation.Meets(floor))
            throw new GateInputException($"--sandbox auto: no backend on this host meets the policy's isolation floor '{floor.Name()}': " +
                $"docker: {dockerWhyNot}; the process backend achieves only '{process.AchievedIsolation.Name()}'. " +
                "Make Docker and the runner image available (gate sandbox build-image), or run where they are");
        return new ProcessBackend { FallbackReason = $"docker: {dockerWhyNot}; using process" };
    }
}
