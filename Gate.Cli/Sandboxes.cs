using Gate.Core.Sandbox;
using Gate.Sandbox;

namespace Gate.Cli;

/// <summary>Backend selection as every command does it: the choice, and on stderr why auto fell back, if it did.</summary>
public static class Sandboxes
{
    public static ISandboxBackend Select(string? requested)
    {
        var backend = SandboxSelector.Select(requested);
        if (backend.FallbackReason is { } why) Console.Error.WriteLine($"sandbox: {why}");
        return backend;
    }
}
