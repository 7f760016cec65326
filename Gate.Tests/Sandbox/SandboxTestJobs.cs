using Gate.Core.Model;
using Gate.Core.Policy;
using Gate.Core.Sandbox;
using Gate.Tests.Support;

namespace Gate.Tests.Sandbox;

/// <summary>A small real job (digits CNN, accuracy on the example test set, built-in runtime) for the sandbox tests.</summary>
internal static class SandboxTestJobs
{
    public static string ModelPath => Path.Combine(TestPaths.RepoRoot, "examples", "digits", "digits-cnn.onnx");

    public static string WritePolicy(string dir, string isolation = "process", string timeout = "2m", string memory = "1Gi", int pids = 256)
    {
        var data = Path.Combine(TestPaths.RepoRoot, "examples", "digits", "data");
        var path = Path.Combine(dir, "policy.yaml");
        File.WriteAllText(path, $"""
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata: {"{"} name: sandbox-test {"}"}
            spec:
              model:
                format: onnx
                inputs:
                  input: {"{"} shape: [-1, 1, 8, 8], range: [0.0, 1.0] {"}"}
              runtime: builtin
              sandbox:
                isolation: {isolation}
                limits: {"{"} memory: {memory}, cpus: 1, timeout: {timeout}, pids: {pids} {"}"}
              seed: 7
              datasets:
                test: {"{"} inputs: {data}/digits_test_x.npy, labels: {data}/digits_test_y.npy {"}"}
              checks:
                - id: graph
                  type: static-inspection
                  allowOps: [Conv, Relu, MaxPool, Flatten, Gemm]
                - id: accuracy
                  type: accuracy
                  dataset: test
                  samples: 100
                  require: {"{"} min: 0.5 {"}"}
            """);
        return path;
    }

    /// <summary>The job the pipeline would make: the sandbox checks of the bound plan, with the inputs that plan uses.</summary>
    public static SandboxJob Job(string policyPath, ResourceLimits? limits = null, IReadOnlyDictionary<string, string>? data = null)
    {
        var policy = PolicyLoader.Load(policyPath, data);
        var model = OnnxModelLoader.Load(ModelPath);
        var plan = Gate.Core.Plan.CheckPlan.Create(policy, model);
        var accuracy = plan.SandboxChecks.Where(c => c.Spec.Id == "accuracy").ToList();
        return new SandboxJob(ModelPath, Gate.Core.Plan.BoundPlan.Of(plan, accuracy), false, false, limits ?? policy.Spec.Sandbox.Limits,
            plan.InputsOf(accuracy).ModelExternalData);
    }

    public static IProgress<Gate.Core.Evidence.ProgressUpdate> Progress(List<Gate.Core.Evidence.ProgressUpdate> sink) => new Sync(sink);

    private sealed class Sync(List<Gate.Core.Evidence.ProgressUpdate> sink) : IProgress<Gate.Core.Evidence.ProgressUpdate>
    {
        public void Report(Gate.Core.Evidence.ProgressUpdate value) { lock (sink) sink.Add(value); }
    }
}
