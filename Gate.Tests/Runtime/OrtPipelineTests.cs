using Gate.Core.Policy;
using Gate.Core;
using Gate.Core.Checks;
using Gate.Core.Evidence;
using Gate.Core.Runtime.OnnxRuntime;
using Gate.Core.Sandbox;
using Gate.Tests.Support;

namespace Gate.Tests.Runtime;

/// <summary>
/// ONNX Runtime as the production runtime inside `gate check`: what ran is recorded in the decision, and a required
/// GPU that cannot be used makes the checks INCONCLUSIVE with the reason.
/// </summary>
public class OrtPipelineTests
{
    /// <summary>Runs the sandbox job in this process but reports process isolation, so the policy's floor is met;
    /// these tests are about the runtime wiring, not about isolation.</summary>
    private sealed class SameProcessBackend : ISandboxBackend
    {
        public string Name => "test-same-process";
        public IsolationLevel AchievedIsolation => IsolationLevel.Process;
        public async Task<SandboxOutcome> RunAsync(SandboxJob job, string evidenceDir, IProgress<ProgressUpdate> progress, CancellationToken ct)
        {
            var (results, runtime) = await SandboxJobExecutor.RunAsync(job, evidenceDir, progress, ct);
            return new SandboxOutcome(true, null, results, AchievedIsolation, runtime);
        }
    }

    private static string WritePolicy(string dir, string gpu)
    {
        var path = Path.Combine(dir, "policy.yaml");
        File.WriteAllText(path, $"""
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata:
              name: ort-wiring
              owner: gate-tests
            spec:
              model:
                format: onnx
                inputs:
                  input: {"{"} shape: [-1, 1, 8, 8], range: [0.0, 1.0] {"}"}
              runtime: onnxruntime
              sandbox:
                isolation: process
                gpu: {gpu}
              seed: 1
              datasets:
                test: {"{"} inputs: {TestPaths.FixtureData("digits_test_x.npy")}, labels: {TestPaths.FixtureData("digits_test_y.npy")} {"}"}
              checks:
                - id: accuracy
                  type: accuracy
                  dataset: test
                  require: {"{"} min: 0.95 {"}"}
            """);
        return path;
    }

    [Fact]
    public async Task Decision_records_onnxruntime_version_provider_and_device()
    {
        OrtTestSupport.RequireOrt();
        var dir = TestPaths.TempDir("ort-pipeline");
        var record = await new GateCheckPipeline(new SameProcessBackend()).RunAsync(
            new GateCheckRequest(TestPaths.FixtureModel("digits-cnn.onnx"), WritePolicy(dir, "none"), Path.Combine(dir, "out")),
            ct: TestContext.Current.CancellationToken);
        var accuracy = Assert.Single(record.Checks);
        Assert.Equal(Verdict.Pass, accuracy.Verdict);
        Assert.Equal(353, accuracy.Metrics["correct"]); // MANIFEST.md: 98.06% of 360, here computed by ORT
        Assert.NotNull(record.Runtime);
        Assert.Equal("onnxruntime", record.Runtime!.Name);
        Assert.Equal(OrtLibrary.Version, record.Runtime.Version);
        Assert.Equal(OrtSession.CpuProvider, record.Runtime.Provider);
        Assert.Equal("cpu", record.Runtime.Device);
    }

    [Fact]
    public async Task Optional_gpu_that_cannot_be_used_is_a_recorded_fallback()
    {
        OrtTestSupport.RequireOrt();
        var dir = TestPaths.TempDir("ort-pipeline-optional");
        var record = await new GateCheckPipeline(new SameProcessBackend()).RunAsync(
            new GateCheckRequest(TestPaths.FixtureModel("digits-cnn.onnx"), WritePolicy(dir, "optional"), Path.Combine(dir, "out")),
            ct: TestContext.Current.CancellationToken);
        Assert.Equal(Verdict.Pass, Assert.Single(record.Checks).Verdict);
        Assert.NotNull(record.Runtime);
        if (record.Runtime!.Provider == OrtSession.CudaProvider) { Assert.Null(record.Runtime.FallbackReason); return; }
        Assert.Equal(OrtSession.CpuProvider, record.Runtime.Provider);
        Assert.Contains(OrtSession.CudaProvider, record.Runtime.FallbackReason); // never a silent fallback
    }

    [Fact]
    public async Task Required_gpu_without_cuda_makes_checks_inconclusive_with_the_reason()
    {
        OrtTestSupport.RequireOrt();
        var dir = TestPaths.TempDir("ort-pipeline-gpu");
        var record = await new GateCheckPipeline(new SameProcessBackend()).RunAsync(
            new GateCheckRequest(TestPaths.FixtureModel("digits-cnn.onnx"), WritePolicy(dir, "required"), Path.Combine(dir, "out")),
            ct: TestContext.Current.CancellationToken);
        var accuracy = Assert.Single(record.Checks);
        if (record.Runtime?.Provider == OrtSession.CudaProvider) return; // a CUDA build on a GPU machine: nothing fell back
        Assert.Equal(Verdict.Inconclusive, accuracy.Verdict);
        var text = accuracy.Summary + " " + string.Join(" ", accuracy.Reasons);
        Assert.Contains("gpu: required", text);
        Assert.Contains(OrtSession.CudaProvider, text);
        Assert.NotEqual(Gate.Core.Decision.GateDecision.Approve, record.Decision);
    }
}
