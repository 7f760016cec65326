using Gate.Core.Checks;
using Gate.Core.Evidence;
using Gate.Core.Model;
using Gate.Core.Plan;
using Gate.Core.Policy;
using Gate.Core.Runtime;
using Gate.Tests.Support;

namespace Gate.Tests.Checks;

/// <summary>Builds a policy around one check (runtime: builtin, so production = the built-in engine) and runs it on a fixture model.</summary>
public static class MechanisticHarness
{
    public static string Policy(string inputName, string shape, string range, string datasets, string check, ulong seed = 1234, string runtime = "builtin") => $$"""
        apiVersion: gate/v1
        kind: DeploymentPolicy
        metadata: { name: mechanistic-test }
        spec:
          model:
            format: onnx
            inputs:
              {{inputName}}: { shape: {{shape}}, range: {{range}} }
          runtime: {{runtime}}
          seed: {{seed}}
          datasets:
        {{datasets}}
          checks:
        {{check}}
        """;

    public static string DigitsDatasets =>
        $"    test: {{ inputs: {TestPaths.FixtureData("digits_test_x.npy")}, labels: {TestPaths.FixtureData("digits_test_y.npy")} }}";

    public static string ConceptDatasets =>
        $"    concept: {{ inputs: {TestPaths.FixtureData("absent-supervisor-concept_x.npy")}, labels: {TestPaths.FixtureData("absent-supervisor-concept_y.npy")} }}";

    public static string DigitsPolicy(string check, ulong seed = 1234, string runtime = "builtin") =>
        Policy("input", "[-1, 1, 8, 8]", "[0.0, 1.0]", DigitsDatasets, check, seed, runtime);

    public static string AgentPolicy(string check, ulong seed = 1234) =>
        Policy("obs", "[-1, 288]", "[0.0, 1.0]", ConceptDatasets, check, seed);

    /// <summary>Loads the policy text, plans it (binding every check) and runs its only check on the model.</summary>
    public static (CheckResult Result, string EvidenceDir) Run(string modelFile, string policyText, bool withoutProduction = false, Func<object, object>? options = null) =>
        Run(OnnxModelLoader.Load(TestPaths.FixtureModel(modelFile)), policyText, withoutProduction, options);

    /// <param name="withoutProduction">run as if the production runtime were missing (the check must not pass on the engine alone)</param>
    /// <param name="options">changes the bound options before the check runs (e.g. the sandbox's budget scaling)</param>
    public static (CheckResult Result, string EvidenceDir) Run(OnnxModel model, string policyText, bool withoutProduction = false, Func<object, object>? options = null)
    {
        var dir = TestPaths.TempDir("gate-mech");
        var policyPath = Path.Combine(dir, "policy.yaml");
        File.WriteAllText(policyPath, policyText);
        var policy = PolicyLoader.Load(policyPath);
        var plan = CheckPlan.Create(policy, model);
        var planned = plan.Checks.Single();
        var (session, reason) = planned.Placement == CheckPlacement.Host ? (null, "host checks do not execute the model")
            : withoutProduction ? (null, "production runtime withheld by the test")
            : ProductionRuntime.Open(policy, model, new RuntimeOptions());
        var evidence = new EvidenceWriter(Path.Combine(dir, "evidence")).ForCheck(planned.Spec.Id);
        var ctx = new CheckContext(model, policy, session, reason, evidence);
        var result = planned.Implementation!.RunAsync(ctx, planned.Spec, options?.Invoke(planned.Options!) ?? planned.Options!, CancellationToken.None).GetAwaiter().GetResult();
        result.Evidence.AddRange(evidence.Files.Where(f => !result.Evidence.Contains(f)));
        return (result, Path.Combine(dir, "evidence"));
    }
}
