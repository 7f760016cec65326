using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Gate.Core.Tensors;
using Gate.Sandbox.Docker;
using Gate.Tests.Support;

namespace Gate.Tests.Hostile;

/// <summary>
/// The engine, cancellation, images and <c>gate run</c> (issue 15, items 7, 8, 11), all through the gate program as
/// a user or CI runs it: SIGINT/SIGTERM mid-run, an engine that accepts and never answers, auto's fallback reason,
/// gate run in the sandbox, and each build asking for its own runner image.
/// </summary>
public class EngineTests
{
    private static string Model => Path.Combine(TestPaths.RepoRoot, "examples", "digits", "digits-cnn.onnx");
    private static string Data => Path.Combine(TestPaths.RepoRoot, "examples", "digits", "data");

    [DllImport("libc", SetLastError = true)] private static extern int kill(int pid, int sig);
    private const int SIGINT = 2, SIGTERM = 15;

    // ---- cancellation -------------------------------------------------------------------------------------------

    [Fact]
    public void Sigterm_during_a_docker_check_removes_the_container_and_the_staged_job_and_exits_143()
    {
        using var docker = DockerEngine.FromEnvironment();
        NeedDocker(docker);
        var dir = TestPaths.TempDir("gate-engine");
        var tmp = PrivateTemp(dir);
        var policy = LongPolicy(dir, "container");
        BuildImage(GateProcess.GateDll); // this build's own runner image (cached by the engine when it exists)
        using var gate = Start(["check", "--model", Model, "--policy", policy, "--out", Path.Combine(dir, "out"), "--sandbox", "docker"], tmp);
        var owner = $"{Environment.MachineName}:{gate.Process.Id}";

        // The job's own container (the self-test runs in one first): found by the owner label, told apart by its job.
        string? id = null, work = null;
        Eventually(TimeSpan.FromMinutes(3), gate, () =>
        {
            foreach (var cid in ContainersOf(docker, owner))
            {
                IList<Docker.DotNet.Models.MountPoint> mounts;
                try { mounts = docker.InspectContainerAsync(cid).GetAwaiter().GetResult().Mounts ?? []; }
                catch (Docker.DotNet.DockerApiException) { continue; } // gone between list and inspect (the self-test's)
                var job = mounts.FirstOrDefault(m => m.Destination == "/job")?.Source;
                if (job is not null && IsChecksJob(job)) { id = cid; work = Path.GetDirectoryName(job); return true; }
            }
            return false;
        });

        var sw = Stopwatch.StartNew();
        Assert.Equal(0, kill(gate.Process.Id, SIGTERM));
        var (code, stderr) = gate.WaitForExit(TimeSpan.FromSeconds(40));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"gate took {sw.Elapsed} to stop after SIGTERM");
        Assert.True(code == 143, $"exit {code}\n{stderr}");
        Assert.Contains("cancelled by SIGTERM", stderr);
        Assert.Empty(ContainersOf(docker, owner)); // docker ps -a: none left
        Assert.False(Directory.Exists(work), $"the staged job {work} was left behind");
        Assert.Empty(Directory.GetFileSystemEntries(tmp, "gate-*"));
        Assert.False(File.Exists(Path.Combine(dir, "out", "decision.json")), "a cancelled run wrote a decision");
    }

    [Fact]
    public void Sigint_during_a_process_check_kills_the_runner_removes_the_staged_job_and_exits_130()
    {
        var dir = TestPaths.TempDir("gate-engine");
        var tmp = PrivateTemp(dir);
        var policy = LongPolicy(dir, "process");
        using var gate = Start(["check", "--model", Model, "--policy", policy, "--out", Path.Combine(dir, "out"), "--sandbox", "process"], tmp);
        string? work = null;
        Eventually(TimeSpan.FromMinutes(2), gate, () =>
        {
            work = Directory.GetDirectories(tmp, "gate-sandbox-*").FirstOrDefault(w => IsChecksJob(Path.Combine(w, "job")));
            return work is not null && RunnerProcesses(work).Count > 0;
        });

        Assert.Equal(0, kill(gate.Process.Id, SIGINT));
        var (code, stderr) = gate.WaitForExit(TimeSpan.FromSeconds(40));
        Assert.True(code == 130, $"exit {code}\n{stderr}");
        Assert.Contains("cancelled by SIGINT", stderr);
        Assert.Empty(RunnerProcesses(work!));
        Assert.Empty(Directory.GetFileSystemEntries(tmp, "gate-*"));
        Assert.False(File.Exists(Path.Combine(dir, "out", "decision.json")), "a cancelled run wrote a decision");
    }

    [Fact]
    public void Sigint_during_gate_run_stops_the_sandboxed_model_and_writes_no_outputs()
    {
        var dir = TestPaths.TempDir("gate-engine");
        var tmp = PrivateTemp(dir);
        var (model, x) = SlowModel(dir);
        var outDir = Path.Combine(dir, "run-out");
        using var gate = Start(["run", "--model", model, "--input", $"x={x}", "--output-dir", outDir, "--sandbox", "process", "--timeout", "10m"], tmp);
        string? work = null;
        Eventually(TimeSpan.FromMinutes(2), gate, () =>
        {
            work = Directory.GetDirectories(tmp, "gate-sandbox-*").FirstOrDefault();
            return work is not null && RunnerProcesses(work).Count > 0;
        });

        Assert.Equal(0, kill(gate.Process.Id, SIGINT));
        var (code, stderr) = gate.WaitForExit(TimeSpan.FromSeconds(40));
        Assert.True(code == 130, $"exit {code}\n{stderr}");
        Assert.Empty(RunnerProcesses(work!));
        Assert.Empty(Directory.GetFileSystemEntries(tmp, "gate-*"));
        Assert.False(Directory.Exists(outDir) && Directory.EnumerateFiles(outDir).Any(), "a cancelled gate run wrote outputs");
    }

    [Fact]
    public void Sigint_during_build_image_removes_its_build_context()
    {
        using var docker = DockerEngine.FromEnvironment();
        NeedDocker(docker);
        var dir = TestPaths.TempDir("gate-engine");
        var tmp = PrivateTemp(dir);
        using var gate = Start(["sandbox", "build-image"], tmp);
        Eventually(TimeSpan.FromMinutes(2), gate, () => Directory.GetFiles(tmp, "gate-image-*.tar").Length > 0);

        Assert.Equal(0, kill(gate.Process.Id, SIGINT));
        var (code, stderr) = gate.WaitForExit(TimeSpan.FromSeconds(40));
        Assert.True(code == 130, $"exit {code}\n{stderr}");
        Assert.Empty(Directory.GetFileSystemEntries(tmp, "gate-*")); // the ~150 MB context and the runner copy
    }

    // ---- an engine that accepts and never answers -------------------------------------------------------------

    [Fact]
    public void An_engine_that_accepts_and_never_answers_makes_a_docker_check_inconclusive_within_seconds()
    {
        using var engine = new SilentEngine();
        var dir = TestPaths.TempDir("gate-engine");
        var policy = Tests.Sandbox.SandboxTestJobs.WritePolicy(dir, isolation: "container");
        var sw = Stopwatch.StartNew();
        var r = GateProcess.Run(["check", "--model", Model, "--policy", policy, "--out", Path.Combine(dir, "out"), "--sandbox", "docker", "--json"],
            new Dictionary<string, string> { ["DOCKER_HOST"] = engine.Address }, TimeSpan.FromSeconds(120));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(60), $"gate took {sw.Elapsed} against a silent engine");
        Assert.True(r.ExitCode == 2, $"exit {r.ExitCode}\n{r.All}");
        var decision = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "out", "decision.json")))!;
        Assert.Equal("inconclusive", decision["decision"]!.GetValue<string>());
        var accuracy = decision["checks"]!.AsArray().Single(c => c!["id"]!.GetValue<string>() == "accuracy")!;
        Assert.Contains($"no Docker engine answered on {engine.Address} within", accuracy["summary"]!.GetValue<string>());
        Assert.True(engine.Accepted > 0, "the fake engine was never contacted");
    }

    [Fact]
    public void Auto_says_why_it_fell_back_on_stderr_and_in_the_decision()
    {
        using var engine = new SilentEngine();
        var dir = TestPaths.TempDir("gate-engine");
        var policy = Tests.Sandbox.SandboxTestJobs.WritePolicy(dir, isolation: "process");
        var r = GateProcess.Run(["check", "--model", Model, "--policy", policy, "--out", Path.Combine(dir, "out")],
            new Dictionary<string, string> { ["DOCKER_HOST"] = engine.Address }, TimeSpan.FromSeconds(120));
        // Without Docker, auto falls back to bubblewrap (installed by setup; GATE_REQUIRE_BWRAP=1 in CI).
        Need.Component("GATE_REQUIRE_BWRAP", Gate.Sandbox.Bubblewrap.BubblewrapBackend.WhyNotAvailable() is null, "bubblewrap cannot run here");
        var why = $"docker: no engine answered on {engine.Address} within 3 s; using bubblewrap";
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}\n{r.All}");
        Assert.Contains("sandbox: " + why, r.Stderr);
        var sandbox = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "out", "decision.json")))!["sandbox"]!;
        Assert.Equal("bubblewrap", sandbox["backend"]!.GetValue<string>());
        Assert.Equal(why, sandbox["fallbackReason"]!.GetValue<string>());
    }

    // ---- gate run in the sandbox ------------------------------------------------------------------------------

    [Fact]
    public void Gate_run_goes_through_the_docker_sandbox_so_a_silent_engine_fails_it_instead_of_a_host_run()
    {
        using var engine = new SilentEngine();
        var dir = TestPaths.TempDir("gate-engine");
        var x = Path.Combine(dir, "x.npy");
        Npy.Write(x, Npy.Read(Path.Combine(Data, "digits_test_x.npy")).SliceBatch(0, 2));
        var outDir = Path.Combine(dir, "out");
        var r = GateProcess.Run(["run", "--model", Model, "--input", $"input={x}", "--output-dir", outDir, "--sandbox", "docker"],
            new Dictionary<string, string> { ["DOCKER_HOST"] = engine.Address }, TimeSpan.FromSeconds(90));
        Assert.True(r.ExitCode == 2, $"exit {r.ExitCode}\n{r.All}");
        Assert.Contains("no Docker engine answered", r.Stderr);
        Assert.False(Directory.Exists(outDir), "outputs were written although no sandbox ran the model");
    }

    [Fact]
    public void Gate_run_kills_the_model_at_its_deadline_and_refuses_the_in_process_backend()
    {
        var dir = TestPaths.TempDir("gate-engine");
        var (model, x) = SlowModel(dir);
        var sw = Stopwatch.StartNew();
        var r = GateProcess.Run(["run", "--model", model, "--input", $"x={x}", "--output-dir", Path.Combine(dir, "o"), "--sandbox", "process", "--timeout", "3s"],
            null, TimeSpan.FromSeconds(90));
        Assert.True(r.ExitCode == 2, $"exit {r.ExitCode}\n{r.All}");
        Assert.Contains("wall-clock deadline", r.Stderr);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(45), $"took {sw.Elapsed}");

        var none = GateProcess.Run("run", "--model", model, "--input", $"x={x}", "--output-dir", Path.Combine(dir, "o2"), "--sandbox", "none");
        Assert.True(none.ExitCode == 3, none.All);
        Assert.Contains("--sandbox", none.Stderr);
    }

    // ---- one runner image per build ---------------------------------------------------------------------------

    [Fact]
    public async Task Two_runner_builds_get_different_tags_and_each_gate_asks_for_its_own()
    {
        using var docker = DockerEngine.FromEnvironment();
        NeedDocker(docker);
        var other = CopyOfGate("modified-runner");

        var mine = BuildImage(GateProcess.GateDll);
        var theirs = BuildImage(Path.Combine(other, "gate.dll")); // built last: under a shared tag it would win
        Assert.NotEqual(mine.Tag, theirs.Tag);
        Assert.NotEqual(mine.Id, theirs.Id);

        var selfTest = GateProcess.Run(["sandbox", "selftest", "--sandbox", "docker", "--json"], null, TimeSpan.FromMinutes(2));
        Assert.True(selfTest.ExitCode == 0, selfTest.All);
        var report = JsonNode.Parse(selfTest.Stdout)!;
        Assert.Equal(mine.Tag, report["image"]!.GetValue<string>());
        Assert.Equal(mine.Id, report["imageId"]!.GetValue<string>());

        var theirSelfTest = RunGate(Path.Combine(other, "gate.dll"), ["sandbox", "selftest", "--sandbox", "docker", "--json"], null);
        Assert.Equal(theirs.Tag, JsonNode.Parse(theirSelfTest.Stdout)!["image"]!.GetValue<string>());

        // GATE_SANDBOX_IMAGE still names another image on purpose.
        var named = GateProcess.Run(["sandbox", "selftest", "--sandbox", "docker", "--json"],
            new Dictionary<string, string> { ["GATE_SANDBOX_IMAGE"] = theirs.Tag }, TimeSpan.FromMinutes(2));
        Assert.Equal(theirs.Tag, JsonNode.Parse(named.Stdout)!["image"]!.GetValue<string>());
        await docker.RemoveImageAsync(theirs.Tag, TestContext.Current.CancellationToken); // the copy's image is this test's litter
    }

    [Fact]
    public async Task Prune_removes_only_this_builds_older_images()
    {
        using var docker = DockerEngine.FromEnvironment();
        NeedDocker(docker);
        var mine = BuildImage(GateProcess.GateDll);
        var theirs = BuildImage(Path.Combine(CopyOfGate("prune-other"), "gate.dll")); // another checkout's image
        // An older image of this build: the same image under another tag carries this build's label.
        var older = $"{DockerBackend.ImageRepository}:older{Guid.NewGuid():N}"[..(DockerBackend.ImageRepository.Length + 17)];
        using (var tag = Process.Start("docker", ["tag", mine.Tag, older]))
        {
            Assert.True(tag.WaitForExit(TimeSpan.FromMinutes(1)), "docker tag did not finish");
            Assert.Equal(0, tag.ExitCode);
        }

        var r = RunGate(GateProcess.GateDll, ["sandbox", "build-image", "--prune"], null, TimeSpan.FromMinutes(5));
        Assert.True(r.ExitCode == 0, r.All);
        Assert.Contains($"pruned {older}", r.Stderr);
        Assert.Null(await docker.InspectImageAsync(older, TestContext.Current.CancellationToken));
        Assert.NotNull(await docker.InspectImageAsync(mine.Tag, TestContext.Current.CancellationToken));
        Assert.NotNull(await docker.InspectImageAsync(theirs.Tag, TestContext.Current.CancellationToken));
        Assert.DoesNotContain(theirs.Tag, r.Stderr);
        await docker.RemoveImageAsync(theirs.Tag, TestContext.Current.CancellationToken); // the copy's image is this test's litter
    }

    [Fact]
    public void A_build_whose_image_is_missing_names_it_and_the_command_that_builds_it()
    {
        using var docker = DockerEngine.FromEnvironment();
        NeedDocker(docker);
        var other = CopyOfGate(Guid.NewGuid().ToString("N")); // a runner no image was ever built from
        var dir = TestPaths.TempDir("gate-engine");
        var policy = Tests.Sandbox.SandboxTestJobs.WritePolicy(dir, isolation: "process");
        var gate = Path.Combine(other, "gate.dll");

        var r = RunGate(gate, ["check", "--model", Model, "--policy", policy, "--out", Path.Combine(dir, "d"), "--sandbox", "docker"], null);
        Assert.True(r.ExitCode == 2, $"exit {r.ExitCode}\n{r.All}");
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "d", "decision.json")))!["checks"]!.AsArray()
            .Single(c => c!["id"]!.GetValue<string>() == "accuracy")!["summary"]!.GetValue<string>();
        Assert.Matches(@"the sandbox image gate-sandbox-runner:[0-9a-f]{16} \(this gate's runner\) is not built .*run 'gate sandbox build-image'", summary);

        var auto = RunGate(gate, ["check", "--model", Model, "--policy", policy, "--out", Path.Combine(dir, "a")], null);
        Assert.Matches(@"sandbox: docker: the sandbox image gate-sandbox-runner:[0-9a-f]{16} \(this gate's runner\) is not built .*; using bubblewrap", auto.Stderr);
    }

    // ---- helpers ----------------------------------------------------------------------------------------------

    private static void NeedDocker(DockerEngine docker) =>
        Need.Component("GATE_REQUIRE_DOCKER", docker.PingAsync(TimeSpan.FromSeconds(15)).GetAwaiter().GetResult(), $"no Docker engine answers on {docker.SocketPath}");

    /// <summary>Containers (running or not, as <c>docker ps -a</c>) that the gate process <paramref name="owner"/> labelled.</summary>
    private static List<string> ContainersOf(DockerEngine docker, string owner) =>
        docker.ListContainersAsync($"{ContainerSpec.OwnerLabel}={owner}").GetAwaiter().GetResult().Select(c => c.Id).ToList();

    /// <summary>A temp folder for the gate under test (TMPDIR), so every staged job in it is that gate's.</summary>
    private static string PrivateTemp(string dir)
    {
        var tmp = Path.Combine(dir, "tmp");
        Directory.CreateDirectory(tmp);
        if (!OperatingSystem.IsWindows())
            foreach (var d in new[] { dir, tmp }) File.SetUnixFileMode(d, (UnixFileMode)0b111_101_101); // the sandbox user passes through
        return tmp;
    }

    /// <summary>A policy whose one sandbox check runs for many minutes (an adversarial search with a huge budget).</summary>
    private static string LongPolicy(string dir, string isolation)
    {
        var path = Path.Combine(dir, "long.yaml");
        File.WriteAllText(path, $$"""
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata: { name: long-run }
            spec:
              model:
                format: onnx
                inputs:
                  input: { shape: [-1, 1, 8, 8], range: [0.0, 1.0] }
              runtime: builtin
              sandbox:
                isolation: {{isolation}}
                limits: { memory: 1Gi, cpus: 1, timeout: 10m, pids: 256 }
              seed: 7
              datasets:
                test: { inputs: {{Data}}/digits_test_x.npy, labels: {{Data}}/digits_test_y.npy }
              checks:
                - id: robustness
                  type: adversarial
                  dataset: test
                  samples: 100
                  threat: { norm: linf, epsilon: 0.05 }
                  search:
                    - { method: pgd, steps: 100000, restarts: 10 }
                  budget: { queries: 1000000000, wallTime: 30m }
                  require: { robustAccuracy: { min: 0.0 } }
            """);
        return path;
    }

    /// <summary>A model that computes for minutes on the built-in engine: 1000 chained 768×768 matrix products.</summary>
    private static (string Model, string Input) SlowModel(string dir)
    {
        const int n = 768, depth = 1000;
        var identity = new float[n * n];
        for (int i = 0; i < n; i++) identity[i * n + i] = 1f;
        var b = new OnnxBuilder().Input("x", n, n).Initializer("w", [n, n], identity);
        for (int i = 0; i < depth; i++) b.Node("MatMul", [i == 0 ? "x" : $"h{i}", "w"], [i == depth - 1 ? "y" : $"h{i + 1}"]);
        b.Output("y", n, n);
        var model = b.Save(Path.Combine(dir, "slow.onnx"));
        var x = Path.Combine(dir, "x.npy");
        Npy.Write(x, Tensor.FromFloats([n, n], new float[n * n]));
        return (model, x);
    }

    private static bool IsChecksJob(string jobDir)
    {
        try { return JsonNode.Parse(File.ReadAllText(Path.Combine(jobDir, "job.json")))?["kind"]?.GetValue<string>() == "checks"; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.Json.JsonException) { return false; }
    }

    /// <summary>Processes whose command line names this staged job (the process backend's runner).</summary>
    private static List<int> RunnerProcesses(string work)
    {
        var pids = new List<int>();
        foreach (var proc in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), out var pid)) continue;
            try { if (File.ReadAllText(Path.Combine(proc, "cmdline")).Contains(work, StringComparison.Ordinal)) pids.Add(pid); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        return pids;
    }

    private static void Eventually(TimeSpan limit, Started gate, Func<bool> condition)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            if (gate.Process.HasExited) Assert.Fail($"gate exited ({gate.Process.ExitCode}) before the sandbox ran\n{gate.WaitForExit(TimeSpan.FromSeconds(5)).Stderr}");
            if (sw.Elapsed > limit) Assert.Fail($"the sandbox did not start within {limit}\n{gate.Stderr}");
            Thread.Sleep(250);
        }
    }

    private static Started Start(string[] args, string tmp)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = TestPaths.RepoRoot };
        psi.ArgumentList.Add(GateProcess.GateDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["TMPDIR"] = tmp;
        psi.Environment["NO_COLOR"] = "1";
        return new Started(Process.Start(psi)!);
    }

    private sealed class Started(Process process) : IDisposable
    {
        public Process Process { get; } = process;
        private readonly Task<string> _stderr = process.StandardError.ReadToEndAsync();
        private readonly Task<string> _stdout = process.StandardOutput.ReadToEndAsync();
        public string Stderr => _stderr.IsCompleted ? _stderr.Result : "(running)";

        public (int Code, string Stderr) WaitForExit(TimeSpan limit)
        {
            if (!Process.WaitForExit(limit)) Assert.Fail($"gate did not exit within {limit} of the signal");
            Process.WaitForExit();
            return (Process.ExitCode, _stderr.Result + _stdout.Result);
        }

        public void Dispose()
        {
            if (!Process.HasExited) Process.Kill(entireProcessTree: true);
            Process.Dispose();
        }
    }

    /// <summary>A unix socket that accepts every connection and never says a word.</summary>
    private sealed class SilentEngine : IDisposable
    {
        private readonly Socket _listener = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        private readonly List<Socket> _accepted = [];
        public string Address { get; }
        public int Accepted { get { lock (_accepted) return _accepted.Count; } }

        public SilentEngine()
        {
            var path = Path.Combine(TestPaths.TempDir("gate-silent-engine"), "docker.sock");
            _listener.Bind(new UnixDomainSocketEndPoint(path));
            _listener.Listen(64);
            Address = "unix://" + path;
            _ = AcceptAsync();
        }

        private async Task AcceptAsync()
        {
            try { while (true) { var s = await _listener.AcceptAsync(); lock (_accepted) _accepted.Add(s); } }
            catch (Exception e) when (e is ObjectDisposedException or SocketException) { }
        }

        public void Dispose()
        {
            _listener.Dispose();
            lock (_accepted) foreach (var s in _accepted) s.Dispose();
        }
    }

    /// <summary>A copy of this gate build whose runner differs by one byte of its runtimeconfig (a different runner build).</summary>
    private static string CopyOfGate(string mark)
    {
        var to = TestPaths.TempDir("gate-build");
        foreach (var f in Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "Gate.Cli", "bin", "Release", "net10.0")))
            File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        var config = Path.Combine(to, "Gate.Sandbox.Runner.runtimeconfig.json");
        // Trailing whitespace keeps the JSON valid; its pattern encodes the mark, so each mark is its own runner.
        File.AppendAllText(config, string.Concat(mark.Select(c => " \t\n\r"[c % 4].ToString() + " \t\n\r"[(c / 4) % 4])));
        return to;
    }

    private static (string Tag, string Id) BuildImage(string gateDll)
    {
        var r = RunGate(gateDll, ["sandbox", "build-image"], null, TimeSpan.FromMinutes(5));
        Assert.True(r.ExitCode == 0, r.All);
        var words = r.Stdout.Trim().Split(' ');
        return (words[0], words[1]);
    }

    private static ProcessResult RunGate(string gateDll, string[] args, IDictionary<string, string>? env, TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = TestPaths.RepoRoot };
        psi.ArgumentList.Add(gateDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        psi.Environment[Gate.Sandbox.Rootfs.RunnerRootfs.Variable] = Gate.Sandbox.Rootfs.RunnerRootfs.Locate();
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout ?? TimeSpan.FromMinutes(3))) { p.Kill(true); Assert.Fail($"gate {string.Join(' ', args)} did not finish"); }
        p.WaitForExit();
        return new ProcessResult(p.ExitCode, stdout.Result, stderr.Result);
    }
}
