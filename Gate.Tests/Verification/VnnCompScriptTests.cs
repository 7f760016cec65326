using System.Diagnostics;
using Gate.Tests.Support;

namespace Gate.Tests.Verification;

/// <summary>
/// scripts/vnncomp: prepare_instance.sh stops the prover an earlier run_instance.sh left behind. It must stop only its
/// own install's: with one pid file per machine, a benchmark run from another checkout killed this one's prover in
/// its first seconds (the run came back `error`, or `unknown` once the signal handler was in place). And a prover
/// stopped by a signal says so (exit 143), never a result that reads as the prover's own "unknown".
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")] // bash scripts
public sealed class VnnCompScriptTests
{
    [Fact]
    public void PrepareInstanceOfAnotherInstallDoesNotStopThisInstallsProver()
    {
        var root = TestPaths.TempDir("vnncomp-scripts");
        try
        {
            // Two installs of the tool (two checkouts), sharing TMPDIR as helpers' checkouts on one machine do.
            string Install(string name)
            {
                var dir = Path.Combine(root, name, "scripts", "vnncomp");
                Directory.CreateDirectory(dir);
                foreach (var f in Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "scripts", "vnncomp"), "*.sh"))
                    File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
                return dir;
            }
            var a = Install("a"); var b = Install("b");
            var tmp = Directory.CreateDirectory(Path.Combine(root, "tmp")).FullName;
            // A stand-in prover: "prove" is on its command line (what prepare_instance.sh checks); it answers after 3 s.
            var gate = Path.Combine(root, "gate");
            File.WriteAllText(gate, "#!/usr/bin/env bash\nout=\"\"\nwhile [ $# -gt 0 ]; do [ \"$1\" = --out ] && out=\"$2\"; shift; done\nsleep 3\necho unsat > \"$out\"\n");
            File.SetUnixFileMode(gate, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            var onnx = Path.Combine(root, "m.onnx"); var spec = Path.Combine(root, "p.vnnlib"); var results = Path.Combine(root, "results.txt");
            File.WriteAllText(onnx, "x"); File.WriteAllText(spec, "x");

            using var run = Bash(Path.Combine(a, "run_instance.sh"), tmp, gate, "v1", "test", onnx, spec, results, "10");
            var pidFiles = WaitFor(() => Directory.GetFiles(tmp, "gate-vnncomp*.pid"), f => f.Length > 0);
            Assert.NotEmpty(pidFiles);
            using (var prepare = Bash(Path.Combine(b, "prepare_instance.sh"), tmp, gate, "v1", "test", onnx, spec))
                Assert.True(prepare.WaitForExit(30_000) && prepare.ExitCode == 0, "prepare_instance.sh failed");
            Assert.True(run.WaitForExit(60_000), "run_instance.sh did not finish");
            Assert.Equal("unsat", File.ReadAllText(results).Trim());
        }
        finally { Directory.Delete(root, recursive: true); }
    }

    [Fact]
    public async Task Gate_prove_stopped_by_sigterm_exits_143_and_writes_no_result()
    {
        // An instance the prover takes seconds on (unsat; 9.5 s on 2 cores).
        var bench = Path.Combine(TestPaths.Shared, "vnncomp", "mnist_fc");
        var dir = TestPaths.TempDir("prove-sigterm");
        var outFile = Path.Combine(dir, "result.txt");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { GateProcess.GateDll, "prove", "--model", Path.Combine(bench, "onnx", "mnist-net_256x2.onnx"),
                     "--spec", Path.Combine(bench, "vnnlib", "prop_6_0.03.vnnlib"), "--timeout", "600", "--out", outFile })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var ct = TestContext.Current.CancellationToken;
        var stderrRead = p.StandardError.ReadToEndAsync(ct); _ = p.StandardOutput.ReadToEndAsync(ct);
        // ONNX Runtime is loaded (the confirming runtime) just before the prover starts, well after the signal handler.
        var sw = Stopwatch.StartNew();
        while (!p.HasExited && sw.Elapsed < TimeSpan.FromSeconds(60) && !File.ReadAllText($"/proc/{p.Id}/maps").Contains("onnxruntime", StringComparison.Ordinal))
            await Task.Delay(20, ct);
        if (p.HasExited) Assert.Fail($"gate prove exited early ({p.ExitCode}): {await stderrRead}");
        Assert.Equal(0, kill(p.Id, SIGTERM));
        Assert.True(p.WaitForExit(TimeSpan.FromSeconds(60)), "gate prove did not stop within 60 s of SIGTERM");
        var stderr = await stderrRead;
        Assert.True(p.ExitCode == 143, $"exit {p.ExitCode}\n{stderr}");
        Assert.Contains("cancelled by SIGTERM", stderr);
        Assert.False(File.Exists(outFile), "a cancelled prover wrote a result: " + (File.Exists(outFile) ? File.ReadAllText(outFile) : ""));
        Directory.Delete(dir, recursive: true);
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)] private static extern int kill(int pid, int sig);
    private const int SIGTERM = 15;

    private static Process Bash(string script, string tmp, string gate, params string[] args)
    {
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(script);
        foreach (var x in args) psi.ArgumentList.Add(x);
        psi.Environment["TMPDIR"] = tmp;
        psi.Environment["GATE_VNNCOMP_GATE"] = gate;
        psi.Environment.Remove("GATE_VNNCOMP_PIDFILE");
        var p = Process.Start(psi)!;
        _ = p.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken); _ = p.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        return p;
    }

    private static T WaitFor<T>(Func<T> get, Func<T, bool> ok)
    {
        var sw = Stopwatch.StartNew();
        var v = get();
        while (!ok(v) && sw.Elapsed < TimeSpan.FromSeconds(20)) { Thread.Sleep(20); v = get(); }
        return v;
    }
}
