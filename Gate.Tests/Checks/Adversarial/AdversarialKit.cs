using System.Text.Json.Nodes;
using Gate.Core.Checks;
using Gate.Core.Evidence;
using Gate.Core.Model;
using Gate.Core.Plan;
using Gate.Core.Policy;
using Gate.Core.Runtime;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Checks.Adversarial;

/// <summary>Runs adversarial checks end to end: a real policy file on disk → CheckPlan → CheckExecutor, on the digits fixtures.</summary>
public static class AdversarialKit
{
    public sealed record Run(CheckResult Result, string EvidenceDir, DeploymentPolicy Policy, OnnxModel Model)
    {
        public string CheckDir => Path.Combine(EvidenceDir, Result.Id);
        public JsonArray Counterexamples => File.Exists(Path.Combine(CheckDir, "counterexamples.json"))
            ? JsonNode.Parse(File.ReadAllText(Path.Combine(CheckDir, "counterexamples.json")))!.AsArray() : [];
    }

    public static string PolicyYaml(string checkBody, string runtime = "builtin", ulong seed = 1234) => $$"""
        apiVersion: gate/v1
        kind: DeploymentPolicy
        metadata:
          name: adversarial-test
        spec:
          model:
            format: onnx
            inputs:
              input: { shape: [-1, 1, 8, 8], range: [0.0, 1.0] }
          runtime: {{runtime}}
          sandbox:
            isolation: process
          seed: {{seed}}
          datasets:
            test: { inputs: {{TestPaths.FixtureData("digits_test_x.npy")}}, labels: {{TestPaths.FixtureData("digits_test_y.npy")}} }
          checks:
            - id: robustness
              type: adversarial
              dataset: test
        {{Indent(checkBody, 6)}}
        """;

    private static string Indent(string text, int spaces) =>
        string.Join("\n", text.Replace("\r", "").Trim('\n').Split('\n').Select(l => new string(' ', spaces) + l.TrimStart()));

    public static DeploymentPolicy WritePolicy(string yaml, out string dir)
    {
        dir = TestPaths.TempDir("gate-adv");
        var path = Path.Combine(dir, "policy.yaml");
        File.WriteAllText(path, yaml);
        return PolicyLoader.Load(path);
    }

    /// <summary>Runs the policy's only check. production: null = what the policy's runtime opens.</summary>
    public static Run Execute(string modelFile, string checkBody, string runtime = "builtin", ulong seed = 1234,
        IInferenceSession? production = null, string? productionReason = null, bool openProduction = true,
        IProgress<ProgressUpdate>? progress = null)
    {
        if (runtime == "onnxruntime" && production is null && openProduction) Gate.Tests.Runtime.OrtTestSupport.RequireOrt();
        var policy = WritePolicy(PolicyYaml(checkBody, runtime, seed), out var dir);
        var model = OnnxModelLoader.Load(TestPaths.FixtureModel(modelFile));
        var plan = CheckPlan.Create(policy, model);
        if (production is null && openProduction)
            (production, productionReason) = ProductionRuntime.Open(policy, model, new RuntimeOptions());
        var evidence = Path.Combine(dir, "evidence");
        var ctx = new CheckContext(model, policy, production, productionReason, new EvidenceWriter(evidence), progress);
        var result = CheckExecutor.RunOneAsync(ctx, plan.Checks.Single(), CancellationToken.None).GetAwaiter().GetResult();
        return new Run(result, evidence, policy, model);
    }

    /// <summary>Records progress synchronously (Progress&lt;T&gt; would post to the thread pool).</summary>
    public sealed class ProgressLog : IProgress<ProgressUpdate>
    {
        public List<ProgressUpdate> Updates { get; } = [];
        public void Report(ProgressUpdate value) { lock (Updates) Updates.Add(value); }
    }

    public static Tensor ReadCounterexample(Run run, JsonNode record) => Npy.Read(Path.Combine(run.EvidenceDir, (string)record["file"]!));

    public static int ArgMax(ReadOnlySpan<float> z)
    {
        int a = 0;
        for (int k = 1; k < z.Length; k++) if (z[k] > z[a]) a = k;
        return a;
    }
}
