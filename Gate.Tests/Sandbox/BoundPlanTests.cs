using System.Collections;
using System.Diagnostics;
using System.Reflection;
using System.Text.Json;
using Gate.Core.Evidence;
using Gate.Core.Checks;
using Gate.Core.Plan;
using Gate.Core.Policy;
using Gate.Core.Sandbox;
using Gate.Sandbox.Protocol;
using Gate.Tests.Support;

namespace Gate.Tests.Sandbox;

/// <summary>
/// The bound plan is the contract across the sandbox boundary: bound once on the host, carried as JSON, re-verified
/// (model and data digests) and executed by the runner without reading any policy.
/// </summary>
public class BoundPlanTests
{
    private static string Data(string f) => Path.Combine(TestPaths.RepoRoot, "examples", "digits", "data", f);

    /// <summary>The check types the example policies do not use (formal with a VNN-LIB file, surrogate), in one policy.</summary>
    private static string ExtraTypesPolicy()
    {
        var dir = TestPaths.TempDir("gate-plan");
        File.WriteAllText(Path.Combine(dir, "prop.vnnlib"), """
            (declare-const X_0 Real)
            (declare-const X_1 Real)
            (declare-const Y_0 Real)
            (declare-const Y_1 Real)
            (assert (>= X_0 0.0))
            (assert (<= X_0 1.0))
            (assert (>= X_1 -0.5))
            (assert (<= X_1 0.5))
            (assert (>= Y_1 Y_0))
            """);
        var path = Path.Combine(dir, "policy.yaml");
        File.WriteAllText(path, $$"""
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata: { name: plan-types }
            spec:
              model:
                format: onnx
                inputs:
                  input: { shape: [-1, 1, 8, 8], range: [0.0, 1.0] }
              sandbox: { isolation: process }
              datasets:
                test: { inputs: "{{Data("digits_test_x.npy")}}", labels: "{{Data("digits_test_y.npy")}}" }
              checks:
                - id: proof
                  type: formal
                  spec: prop.vnnlib
                  method: crown
                  timeout: 90s
                - id: tree
                  type: surrogate
                  dataset: test
                  maxDepth: 3
            """);
        return path;
    }

    private static IEnumerable<string> AllPolicies() =>
        Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "policies"), "*.yaml", SearchOption.AllDirectories).Order()
            .Concat(Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "Gate.Tests", "Governance", "Policies"), "*.yaml").Order())
            .Append(ExtraTypesPolicy()).Append(SandboxTestJobs.WritePolicy(TestPaths.TempDir("gate-plan")));

    /// <summary>
    /// Every check type's bound options survive JSON unchanged — every public property and field, deeply — so what
    /// the runner executes is what the host bound. All registered types are covered, so a new type is held to it too.
    /// </summary>
    [Fact]
    public void Bound_options_of_every_check_type_round_trip_identically()
    {
        var covered = new HashSet<string>();
        foreach (var path in AllPolicies())
        {
            var policy = PolicyLoader.Load(path);
            foreach (var spec in policy.Spec.Checks)
            {
                var impl = CheckRegistry.Find(spec.Type);
                if (impl is null) continue;
                var bound = impl.Bind(spec, policy);
                Assert.Equal(impl.OptionsType, bound.GetType());
                var back = BoundPlan.ReadOptions(impl, spec.Id, BoundPlan.WriteOptions(bound));
                AssertDeepEqual(bound, back, $"{Path.GetFileName(path)}: {spec.Id} ({spec.Type})");
                covered.Add(spec.Type);
            }
        }
        // Gate's own types: a test-only type another test registers (Checks/ExampleCheck) joins the registry in
        // whatever order the tests run, and has no policy file here.
        var builtIn = CheckRegistry.Types.Where(t => CheckRegistry.Find(t)!.GetType().Assembly == typeof(CheckRegistry).Assembly);
        Assert.Equal(builtIn.Order(), covered.Order());
    }

    [Fact]
    public void A_plan_round_trips_to_identical_bound_options_and_digests()
    {
        var dir = TestPaths.TempDir("gate-plan");
        var policy = PolicyLoader.Load(SandboxTestJobs.WritePolicy(dir));
        var plan = CheckPlan.Create(policy, Gate.Core.Model.OnnxModelLoader.Load(SandboxTestJobs.ModelPath));
        var bound = BoundPlan.Of(plan, plan.Checks);
        var json = bound.ToJson();
        var back = BoundPlan.FromJson(json);
        Assert.Equal(json, back.ToJson());
        Assert.Equal(policy.Sha256, back.PolicySha256);
        Assert.Equal(plan.Model.Sha256, back.ModelSha256);
        Assert.Equal(plan.Datasets.Single().Inputs.Sha256, back.Datasets["test"].InputsSha256);
        Assert.Equal(plan.Datasets.Single().Labels!.Sha256, back.Datasets["test"].LabelsSha256);

        var (view, checks) = back.Executable(p => p);
        Assert.Equal(plan.Checks.Select(c => c.Spec.Id), checks.Select(c => c.Spec.Id));
        foreach (var (host, runner) in plan.Checks.Zip(checks))
        {
            AssertDeepEqual(host.Options, runner.Options, host.Spec.Id);
            Assert.Same(host.Implementation, runner.Implementation);
            Assert.Equal(host.Spec.Require.ToDictionary(), runner.Spec.Require.ToDictionary());
            Assert.Equal(host.Spec.Location, runner.Spec.Location);
        }
        Assert.Equal(policy.Spec.Seed, view.Spec.Seed);
        Assert.Equal(policy.Spec.Runtime, view.Spec.Runtime);
        AssertDeepEqual(policy.Spec.Model, view.Spec.Model, "spec.model");
    }

    /// <summary>Executing a staged job parses no YAML at all: the runner gets the plan, never a policy to re-read.</summary>
    [Fact]
    public async Task Executing_a_staged_job_parses_no_policy()
    {
        var dir = TestPaths.TempDir("gate-plan");
        var job = SandboxTestJobs.Job(SandboxTestJobs.WritePolicy(dir));
        var jobDir = StageByHand(job, Path.Combine(dir, "job"));
        var manifest = JobProtocol.ReadJson<JobManifest>(Path.Combine(jobDir, JobManifest.FileName));
        Assert.Empty(Directory.EnumerateFiles(jobDir, "*.yaml", SearchOption.AllDirectories));
        var parsed = new List<string>();
        PolicyYamlReader.ParseObserver.Value = parsed.Add;
        try
        {
            var (results, _) = await SandboxJobExecutor.RunAsync(manifest.Plan!, Path.Combine(jobDir, manifest.Model), rel => Path.Combine(jobDir, rel),
                false, false, Path.Combine(dir, "evidence"), new Progress<ProgressUpdate>(), TestContext.Current.CancellationToken);
            Assert.Equal(Gate.Core.Evidence.Verdict.Pass, Assert.Single(results).Verdict);
        }
        finally { PolicyYamlReader.ParseObserver.Value = null; }
        Assert.Empty(parsed);
    }

    public static TheoryData<string> Tampering => new() { "none", "model-digest", "data-digest", "labels-digest", "data-file" };

    /// <summary>
    /// The real runner program, on a job folder whose plan does not match its files: it refuses (exit 1, results.json
    /// says why, no result), whichever digest differs. The untampered folder — no policy in it — runs and passes.
    /// </summary>
    [Theory]
    [MemberData(nameof(Tampering))]
    public async Task The_runner_refuses_a_plan_whose_digests_do_not_match_its_files(string tampering)
    {
        var dir = TestPaths.TempDir("gate-plan");
        var job = SandboxTestJobs.Job(SandboxTestJobs.WritePolicy(dir));
        string Zero = new('0', 64);
        var plan = tampering switch
        {
            "model-digest" => job.Plan with { ModelSha256 = Zero },
            "data-digest" => job.Plan with { Datasets = job.Plan.Datasets.ToDictionary(kv => kv.Key, kv => kv.Value with { InputsSha256 = Zero }) },
            "labels-digest" => job.Plan with { Datasets = job.Plan.Datasets.ToDictionary(kv => kv.Key, kv => kv.Value with { LabelsSha256 = Zero }) },
            _ => job.Plan,
        };
        var jobDir = StageByHand(job with { Plan = plan }, Path.Combine(dir, "job"));
        if (tampering == "data-file")
        {
            var x = Path.Combine(jobDir, "data", "0.inputs.npy");
            var bytes = File.ReadAllBytes(x);
            bytes[^1] ^= 1;
            File.WriteAllBytes(x, bytes);
        }
        var outDir = Path.Combine(dir, "out");
        Directory.CreateDirectory(outDir);
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "Gate.Sandbox.Runner.dll"), "--job", jobDir, "--out", outDir }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = p.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using (var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken))
        {
            cts.CancelAfter(TimeSpan.FromMinutes(2));
            await p.WaitForExitAsync(cts.Token);
        }
        var err = await stderr;
        await stdout;
        var results = JobProtocol.ReadJson<RunnerResults>(Path.Combine(outDir, RunnerResults.FileName));
        if (tampering == "none")
        {
            Assert.True(p.ExitCode == 0, err);
            Assert.True(results.Completed);
            Assert.Empty(results.Results); // each check's result is a file of its own
            var check = JobProtocol.ReadJson<Gate.Core.Evidence.CheckResult>(Path.Combine(outDir, RunnerResults.CheckFile(0)));
            Assert.Equal(Gate.Core.Evidence.Verdict.Pass, check.Verdict);
            return;
        }
        Assert.True(p.ExitCode == 1, err);
        Assert.False(results.Completed);
        Assert.Empty(results.Results);
        Assert.Contains(tampering == "model-digest" ? "model digest changed" : "differs from the plan", results.Error);
    }

    /// <summary>A job folder as staging lays it out (job.json, model/, data/), writable so a test can tamper with it.</summary>
    private static string StageByHand(SandboxJob job, string jobDir)
    {
        Directory.CreateDirectory(Path.Combine(jobDir, "model"));
        Directory.CreateDirectory(Path.Combine(jobDir, "data"));
        File.Copy(job.ModelPath, Path.Combine(jobDir, "model", "model.onnx"));
        int i = 0;
        var plan = job.Plan.WithDataAt(ds =>
        {
            int n = i++;
            File.Copy(ds.InputsPath, Path.Combine(jobDir, "data", $"{n}.inputs.npy"));
            if (ds.LabelsPath is not null) File.Copy(ds.LabelsPath, Path.Combine(jobDir, "data", $"{n}.labels.npy"));
            return ($"data/{n}.inputs.npy", ds.LabelsPath is null ? null : $"data/{n}.labels.npy");
        });
        JobProtocol.WriteJsonAtomic(Path.Combine(jobDir, JobManifest.FileName),
            new JobManifest { Model = "model/model.onnx", ModelSha256 = job.ModelSha256, Plan = plan });
        return jobDir;
    }

    /// <summary>Structural equality over public properties and fields, collections element by element; YAML nodes (bind-time error positions) are not compared.</summary>
    private static void AssertDeepEqual(object? expected, object? actual, string at)
    {
        if (expected is PolicyNode) return;
        if (expected is null || actual is null) { Assert.True(expected is null && actual is null, $"{at}: {expected ?? "null"} vs {actual ?? "null"}"); return; }
        var t = expected.GetType();
        if (t.IsPrimitive || t.IsEnum || expected is string or decimal or TimeSpan or DateTimeOffset)
        {
            Assert.True(expected.Equals(actual), $"{at}: {expected} vs {actual}");
            return;
        }
        if (expected is IDictionary ed && actual is IDictionary ad)
        {
            Assert.True(ed.Count == ad.Count, $"{at}: {ed.Count} vs {ad.Count} entries");
            foreach (DictionaryEntry e in ed) AssertDeepEqual(e.Value, ad[e.Key], $"{at}[{e.Key}]");
            return;
        }
        if (expected is IEnumerable ee && actual is IEnumerable ae)
        {
            var (el, al) = (ee.Cast<object?>().ToList(), ae.Cast<object?>().ToList());
            if (expected.GetType().GetInterfaces().Any(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IReadOnlySet<>)))
                (el, al) = (el.OrderBy(x => x?.ToString(), StringComparer.Ordinal).ToList(), al.OrderBy(x => x?.ToString(), StringComparer.Ordinal).ToList());
            Assert.True(el.Count == al.Count, $"{at}: {el.Count} vs {al.Count} items");
            for (int i = 0; i < el.Count; i++) AssertDeepEqual(el[i], al[i], $"{at}[{i}]");
            return;
        }
        foreach (var p in t.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.GetIndexParameters().Length == 0))
            AssertDeepEqual(p.GetValue(expected), p.GetValue(actual), $"{at}.{p.Name}");
        foreach (var f in t.GetFields(BindingFlags.Public | BindingFlags.Instance))
            AssertDeepEqual(f.GetValue(expected), f.GetValue(actual), $"{at}.{f.Name}");
    }
}
