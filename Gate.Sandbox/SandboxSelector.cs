using Gate.Core;
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
    /// <see cref="ISandboxBackend.FallbackReason"/> then says why (for stderr and decision.json). An explicit
    /// "docker" never falls back: without an engine its runs fault (INCONCLUSIVE) with the reason.
    /// </summary>
    public static ISandboxBackend Select(string? requested) => (requested ?? "auto") switch
    {
        "none" => new InProcessBackend(),
        "process" => new ProcessBackend(),
        "docker" => new DockerBackend(DockerEngine.FromEnvironment()),
        "auto" => DockerBackend.TryCreateReady(out var whyNot) ?? (ISandboxBackend)new ProcessBackend { FallbackReason = $"docker: {whyNot}; using process" },
        var other => throw new GateInputException($"--sandbox: unknown backend '{other}' (expected {string.Join(", ", Names)})"),
    };
}
