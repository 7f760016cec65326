using Gate.Core.Policy;
using Gate.Core.Sandbox;
using Gate.Sandbox;

namespace Gate.Cli;

/// <summary>Backend selection as every command does it: the choice, and on stderr why auto fell back, if it did.</summary>
public static class Sandboxes
{
    /// <param name="floor">The isolation the work needs (a policy's floor); auto fails rather than pick less.</param>
    public static ISandboxBackend Select(string? requested, IsolationLevel floor = IsolationLevel.Process)
    {
        var backend = SandboxSelector.Select(requested, floor);
        if (backend.FallbackReason is { } why) Console.Error.WriteLine($"sandbox: {why}");
        return backend;
    }
}
