using System.Diagnostics;
using Gate.Tests.Support;

namespace Gate.Tests.Verification;

/// <summary>
/// scripts/vnncomp: prepare_instance.sh stops the prover an earlier run_instance.sh left behind. It must stop only its
/// own install's: with one pid file per machine, a benchmark run from another checkout killed this one's prover in
/// its first seconds (the run came back `error`, or `unknown` once the signal handler was in place).
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

    private static Process Bash(string script, string tmp, string gate, params string[] args)
    {
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(script);
        foreach (var x in args) psi.ArgumentList.Add(x);
        psi.Environment["TMPDIR"] = tmp;
        psi.Environment["GATE_VNNCOMP_GATE"] = gate;
        psi.Environment.Remove("GATE_VNNCOMP_PIDFILE");
        var p = Process.Start(psi)!;
        p.StandardOutput.ReadToEndAsync(); p.StandardError.ReadToEndAsync();
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
