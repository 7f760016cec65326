using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Gate.Core;
using Gate.Core.Attestation;
using Gate.Core.Checks;
using Gate.Core.Evidence;
using Gate.Core.Model;
using Gate.Core.Plan;
using Gate.Core.Policy;
using Gate.Core.Sandbox;
using Gate.Sandbox;
using Gate.Sandbox.Process;
using Gate.Sandbox.Protocol;
using Gate.Tests.Sandbox;
using Gate.Tests.Support;

namespace Gate.Tests.Hostile;

/// <summary>
/// Only what the bound plan uses enters the sandbox — the model, the policy, the datasets its sandbox checks read
/// and the files those checks declare — never a file some other policy string happens to name; the job folder is
/// private to the sandbox user and removed on every exit path.
/// </summary>
public class StagingTests
{
    private static readonly string Data = Path.Combine(TestPaths.RepoRoot, "examples", "digits", "data");

    /// <summary>
    /// A valid policy whose free strings (description, labels, a check description, an unused dataset) name the
    /// signing key, /etc/shadow and a secret beside the policy, by absolute and by relative path.
    /// </summary>
    private static (string Policy, string Key, string Secret) HostilePolicy(string dir)
    {
        var key = Path.Combine(dir, "signing", "gate.key");
        Directory.CreateDirectory(Path.GetDirectoryName(key)!);
        File.WriteAllText(key, SigningKey.Generate().PrivatePem);
        var secret = Path.Combine(dir, "secret.txt");
        File.WriteAllText(secret, "not for the sandbox");
        var policy = Path.Combine(dir, "policy.yaml");
        File.WriteAllText(policy, $$"""
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata:
              name: staging-hostile
              description: {{key}}
              labels:
                key: {{key}}
                shadow: /etc/shadow
                relative: signing/gate.key
                beside: secret.txt
            spec:
              model:
                format: onnx
                inputs:
                  input: { shape: [-1, 1, 8, 8], range: [0.0, 1.0] }
              runtime: builtin
              sandbox:
                isolation: process
                limits: { memory: 1Gi, cpus: 1, timeout: 2m, pids: 256 }
              seed: 7
              datasets:
                test: { inputs: {{Data}}/digits_test_x.npy, labels: {{Data}}/digits_test_y.npy }
                unused: { inputs: /etc/shadow }
              checks:
                - id: accuracy
                  type: accuracy
                  description: /etc/shadow
                  dataset: test
                  samples: 100
                  require: { min: 0.5 }
            """);
        return (policy, key, secret);
    }

    private static List<string> StagedFiles(StagedJob staged) =>
        [.. Directory.EnumerateFileSystemEntries(staged.WorkDir, "*", SearchOption.AllDirectories)
            .Where(File.Exists).Select(f => Path.GetRelativePath(staged.WorkDir, f).Replace('\\', '/')).Order(StringComparer.Ordinal)];

    [Fact]
    public void A_policy_naming_the_signing_key_and_etc_shadow_stages_neither_only_what_the_plan_uses()
    {
        var dir = TestPaths.TempDir("gate-staging-hostile");
        var (policy, key, secret) = HostilePolicy(dir);
        using var staged = JobStaging.Stage(SandboxTestJobs.Job(policy));

        Assert.Equal(["job/data/0.inputs.npy", "job/data/0.labels.npy", "job/job.json", "job/model/model.onnx"], StagedFiles(staged));
        var forbidden = new List<byte[]> { File.ReadAllBytes(key), File.ReadAllBytes(secret) };
        if (File.Exists("/etc/shadow") && Environment.UserName == "root") forbidden.Add(File.ReadAllBytes("/etc/shadow"));
        foreach (var f in Directory.EnumerateFiles(staged.WorkDir, "*", SearchOption.AllDirectories))
        {
            var bytes = File.ReadAllBytes(f);
            Assert.DoesNotContain(forbidden, b => b.AsSpan().SequenceEqual(bytes));
        }
        Assert.DoesNotContain("BEGIN", File.ReadAllText(Path.Combine(staged.JobDir, JobManifest.FileName)));
    }

    [Fact]
    public void The_work_folder_is_private_to_the_sandbox_user_and_nothing_in_it_is_group_or_world_readable()
    {
        var dir = TestPaths.TempDir("gate-staging-modes");
        using var staged = JobStaging.Stage(SandboxTestJobs.Job(SandboxTestJobs.WritePolicy(dir)));
        bool root = Posix.geteuid() == 0;
        var expectedOwner = root ? JobStaging.SandboxUid : (int)Posix.geteuid();
        Assert.Equal(expectedOwner, staged.Uid);
        const UnixFileMode rwx = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        const UnixFileMode rx = UnixFileMode.UserRead | UnixFileMode.UserExecute;
        Assert.Equal(rwx, Mode(staged.WorkDir));
        Assert.Equal(rwx, Mode(staged.ResultsDir));
        foreach (var d in Directory.EnumerateDirectories(staged.JobDir, "*", SearchOption.AllDirectories).Append(staged.JobDir))
            Assert.True(Mode(d) == rx, $"{d}: {Mode(d)}");
        foreach (var f in Directory.EnumerateFiles(staged.WorkDir, "*", SearchOption.AllDirectories))
            Assert.True(Mode(f) == UnixFileMode.UserRead, $"{f}: {Mode(f)}");
        foreach (var p in Directory.EnumerateFileSystemEntries(staged.WorkDir, "*", SearchOption.AllDirectories).Append(staged.WorkDir))
            Assert.True(Owner(p) == expectedOwner, $"{p} is owned by uid {Owner(p)}, expected the sandbox user {expectedOwner}");
        Assert.StartsWith("gate-sandbox-", Path.GetFileName(staged.WorkDir));
    }

    [Fact]
    public void A_model_or_data_file_changed_after_planning_is_refused_rather_than_staged()
    {
        var dir = TestPaths.TempDir("gate-staging-toctou");
        var x = Path.Combine(dir, "x.npy");
        File.Copy(Path.Combine(TestPaths.RepoRoot, "examples", "digits", "data", "digits_test_x.npy"), x);
        var job = SandboxTestJobs.Job(SandboxTestJobs.WritePolicy(dir), data: new Dictionary<string, string> { ["test"] = x });
        var bytes = File.ReadAllBytes(x);
        bytes[^1] ^= 1;
        File.WriteAllBytes(x, bytes);
        var e = Assert.Throws<InvalidDataException>(() => JobStaging.Stage(job));
        Assert.Contains("data file changed after it was planned", e.Message);
        var planned = SandboxTestJobs.Job(SandboxTestJobs.WritePolicy(dir));
        Assert.Contains("model changed after it was planned",
            Assert.Throws<InvalidDataException>(() => JobStaging.Stage(planned with { Plan = planned.Plan with { ModelSha256 = new string('0', 64) } })).Message);
    }

    public static TheoryData<string> ExitPaths => new() { "success", "exception", "cancellation" };

    /// <summary>The staged folder is gone after the run, however the run ended.</summary>
    [Theory]
    [MemberData(nameof(ExitPaths))]
    public async Task The_work_folder_is_removed_on_every_exit_path(string how)
    {
        var dir = TestPaths.TempDir("gate-staging-exit");
        var job = SandboxTestJobs.Job(SandboxTestJobs.WritePolicy(dir));
        var backend = new RecordingBackend(how);
        using var cts = new CancellationTokenSource();
        backend.OnJob = () => { if (how == "cancellation") cts.Cancel(); };
        Task<SandboxOutcome> run = backend.RunAsync(job, Path.Combine(dir, "evidence"), new Progress<ProgressUpdate>(), cts.Token);
        switch (how)
        {
            case "success": Assert.True((await run).Completed); break;
            case "exception": await Assert.ThrowsAsync<IOException>(() => run); break;
            case "cancellation": await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run); break;
        }
        Assert.Equal(2, backend.WorkDirs.Count); // the self-test's folder and the job's
        Assert.All(backend.WorkDirs, w => Assert.False(Directory.Exists(w), $"{w} was left behind ({how})"));
    }

    /// <summary>
    /// A check that reads a file of its own (a formal check's VNN-LIB spec, in a folder beside the policy) declares
    /// it and reads it at bind time, on the host; its content crosses in the bound plan, so the file itself never
    /// enters the sandbox, and the check runs in the real process sandbox to a verdict.
    /// </summary>
    [Fact]
    public async Task A_check_that_reads_its_own_file_runs_end_to_end_from_the_bound_plan()
    {
        var dir = TestPaths.TempDir("gate-staging-declared");
        Directory.CreateDirectory(Path.Combine(dir, "specs"));
        var spec = Path.Combine(dir, "specs", "everything.vnnlib");
        // The property's "violation" region is every output, so any input is a counterexample: a certain FAIL.
        File.WriteAllText(spec, string.Join("\n", Enumerable.Range(0, 64).Select(i => $"(declare-const X_{i} Real)\n(assert (>= X_{i} 0))\n(assert (<= X_{i} 0.1))"))
            + "\n" + string.Join("\n", Enumerable.Range(0, 10).Select(j => $"(declare-const Y_{j} Real)")) + "\n(assert (<= Y_0 1e9))\n");
        var policy = SandboxTestJobs.WritePolicy(dir);
        File.AppendAllText(policy, "\n" + """
                - id: proof
                  type: formal
                  spec: specs/everything.vnnlib
                  method: ibp
                  timeout: 30s

            """);
        var plan = CheckPlan.Create(PolicyLoader.Load(policy), OnnxModelLoader.Load(SandboxTestJobs.ModelPath));
        var inputs = plan.InputsOf(plan.SandboxChecks);
        Assert.Equal([spec], inputs.Files);
        Assert.Equal(["test"], inputs.Datasets.Select(d => d.Name));

        var outDir = Path.Combine(dir, "out");
        var record = await new GateCheckPipeline(new ProcessBackend()).RunAsync(new GateCheckRequest(SandboxTestJobs.ModelPath, policy, outDir),
            null, TestContext.Current.CancellationToken);
        var proof = record.Checks.Single(c => c.Id == "proof");
        Assert.True(proof.Verdict == Verdict.Fail, $"{proof.Verdict}: {proof.Summary}");
        Assert.Equal(Verdict.Pass, record.Checks.Single(c => c.Id == "accuracy").Verdict);
    }

    private static UnixFileMode Mode(string path) => OperatingSystem.IsWindows() ? 0 : File.GetUnixFileMode(path) & ~(UnixFileMode)0xE00;

    private static int Owner(string path)
    {
        Span<byte> buf = stackalloc byte[256];
        unsafe { fixed (byte* p = buf) Assert.Equal(0, statx(-100, path, 0x100, 0x8, p)); }
        return BitConverter.ToInt32(buf[20..24]); // struct statx: stx_uid at 20
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern unsafe int statx(int dirfd, string path, int flags, uint mask, byte* buf);

    /// <summary>
    /// A backend whose "runner" is this test: it records each staged folder, answers the self-test like the real
    /// runner, and for the job succeeds, throws, or cancels.
    /// </summary>
    private sealed class RecordingBackend(string how) : RunnerBackend
    {
        public List<string> WorkDirs { get; } = [];
        public Action? OnJob { get; set; }
        public override string Name => "recording";
        public override IsolationLevel AchievedIsolation => IsolationLevel.Process;
        protected override long RunnerUid(StagedJob staged) => 4242;

        protected override Task<RunnerExit> LaunchAsync(StagedJob staged, ResourceLimits limits, bool gpu, bool requireGpu, bool faultsEnabled,
            Action<string> stdoutLine, CancellationToken ct)
        {
            WorkDirs.Add(staged.WorkDir);
            var manifest = JobProtocol.ReadJson<JobManifest>(Path.Combine(staged.JobDir, JobManifest.FileName));
            var results = Path.Combine(staged.ResultsDir, RunnerResults.FileName);
            if (manifest.SelfTest is { } req)
            {
                var probes = new JsonArray();
                foreach (var name in SelfTestCheck.ProbeNames)
                    probes.Add(new JsonObject { ["name"] = name, ["target"] = "t", ["outcome"] = "blocked", ["detail"] = "d" });
                JobProtocol.WriteJsonAtomic(results, new RunnerResults { Completed = true, SelfTest = new JsonObject { ["nonce"] = req.Nonce, ["uid"] = 4242, ["probes"] = probes } });
                return Task.FromResult(new RunnerExit(0, null));
            }
            OnJob?.Invoke();
            if (how == "exception") throw new IOException("the runner's pipe broke");
            ct.ThrowIfCancellationRequested();
            JobProtocol.WriteJsonAtomic(results, new RunnerResults { Completed = true, Results = [new CheckResult { Id = "accuracy", Type = "accuracy", Verdict = Verdict.Pass }] });
            return Task.FromResult(new RunnerExit(0, null));
        }
    }
}
