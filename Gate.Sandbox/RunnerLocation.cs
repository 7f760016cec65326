using System.Runtime.InteropServices;

namespace Gate.Sandbox;

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
