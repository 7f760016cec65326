using System.Diagnostics;
using Gate.Core.Runtime.OnnxRuntime;
using Gate.Tests.Support;

namespace Gate.Tests.Runtime;

/// <summary>Shared helpers for the ONNX Runtime tests: the availability guard and running the gate CLI as a process.</summary>
internal static class OrtTestSupport
{
    /// <summary>Skips (locally) or fails (CI, GATE_REQUIRE_ORT=1) when the ORT library cannot be loaded.</summary>
    public static void RequireOrt()
    {
        bool ok = OrtLibrary.TryLoad(out var reason);
        Need.Component("GATE_REQUIRE_ORT", ok, reason ?? "");
    }

    /// <summary>Runs the gate CLI (gate.dll beside the tests) in a separate process; returns exit code, stdout, stderr.</summary>
    public static (int Exit, string Stdout, string Stderr) RunGate(IReadOnlyDictionary<string, string?>? env, params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "gate.dll");
        Assert.True(File.Exists(dll), $"gate.dll not found beside the tests at {dll}");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (env is not null)
            foreach (var (k, v) in env)
                if (v is null) psi.Environment.Remove(k); else psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(120_000)) { p.Kill(entireProcessTree: true); Assert.Fail("gate did not exit within 120 s"); }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}
