using Gate.Core;
using Gate.Core.Sandbox;
using Gate.Sandbox.Backends;

namespace Gate.Sandbox;

/// <summary>Chooses the sandbox backend for a run: what the user asked for, else the strongest this host offers.</summary>
public static class SandboxSelector
{
    public static readonly string[] Names = ["auto", "none"];

    public static ISandboxBackend Select(string? requested) => (requested ?? "auto") switch
    {
        "none" => new InProcessBackend(),
        "auto" => new InProcessBackend(),
        var other => throw new GateInputException($"--sandbox: unknown backend '{other}' (expected {string.Join(", ", Names)})"),
    };
}
