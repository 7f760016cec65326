using System.CommandLine;
using Gate.Cli.Commands;
using Gate.Core.Checks;
using Gate.Core.Checks.Formal;
using Gate.Core.Engine;
using Gate.Core.Evidence;
using Gate.Core.Model;
using Gate.Core.Policy;
using Gate.Core.Runtime;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Verification;

/// <summary>The formal check type and <c>gate prove</c> end to end on the digits MLP fixture.</summary>
public class FormalCheckTests
{
    private static string Policy(string dir, string checks)
    {
        var yaml = $$"""
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata: { name: formal-test }
            spec:
              model:
                format: onnx
                inputs:
                  input: { shape: [-1, 1, 8, 8], range: [0.0, 1.0] }
              runtime: builtin
              sandbox: { isolation: process, gpu: none, limits: { memory: 1Gi, cpus: 1, timeout: 5m } }
              seed: 7
              datasets:
                test: { inputs: {{TestPaths.FixtureData("digits_test_x.npy")}}, labels: {{TestPaths.FixtureData("digits_test_y.npy")}} }
              checks:
            {{checks}}
            """;
        var path = Path.Combine(dir, "policy.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    private static async Task<(CheckResult, string evidence)> Run(string checks, string? vnnlib = null)
    {
        var model = TestPaths.FixtureModel("digits-mlp.onnx");
        var dir = TestPaths.TempDir("formal");
        if (vnnlib is not null) File.WriteAllText(Path.Combine(dir, "prop.vnnlib"), vnnlib);
        var policy = PolicyLoader.Load(Policy(dir, checks));
        var m = OnnxModelLoader.Load(model);
        var check = new FormalCheck();
        var spec = policy.Spec.Checks[0];
        var options = check.BindOptions(spec, policy);
        using var session = new BuiltinRuntime().Load(m, new RuntimeOptions());
        var evidence = Path.Combine(dir, "evidence");
        var ctx = new CheckContext(m, policy, session, null, new EvidenceWriter(evidence));
        return (await check.RunAsync(ctx, spec, options, TestContext.Current.CancellationToken), evidence);
    }

    [Fact]
    public async Task Small_epsilon_robustness_is_proved()
    {
        var (r, _) = await Run("""
                - id: robust
                  type: formal
                  dataset: test
                  samples: 3
                  property: { type: local-robustness, epsilon: 0.005 }
                  timeout: 30s
                  require: { provedFraction: { min: 1.0 } }
            """);
        Assert.Equal(Verdict.Pass, r.Verdict);
        Assert.Equal(1.0, r.Metrics["provedFraction"]);
        Assert.Equal(0, r.Metrics["violations"]);
    }

    [Fact]
    public async Task Large_epsilon_gives_confirmed_counterexamples_inside_the_ball()
    {
        var (r, evidence) = await Run("""
                - id: robust
                  type: formal
                  dataset: test
                  samples: 2
                  property: { type: local-robustness, epsilon: 0.5 }
                  timeout: 20s
            """);
        Assert.Equal(Verdict.Fail, r.Verdict);
        Assert.True(r.Metrics["violations"] >= 1);
        var engine = CompiledModel.Compile(OnnxModelLoader.Load(TestPaths.FixtureModel("digits-mlp.onnx")));
        var xs = Npy.Read(TestPaths.FixtureData("digits_test_x.npy")); var ys = Npy.Read(TestPaths.FixtureData("digits_test_y.npy")).ToLongArray();
        foreach (var f in r.Evidence.Where(e => e.Path.EndsWith(".npy")))
        {
            int i = int.Parse(Path.GetFileNameWithoutExtension(f.Path).Split('-')[^1]);
            var cex = Npy.Read(Path.Combine(evidence, f.Path));
            var x0 = xs.SliceBatch(i, 1).Floats!;
            for (int j = 0; j < 64; j++) Assert.InRange(cex.Floats![j], Math.Max(0, x0[j] - 0.5), Math.Min(1, x0[j] + 0.5));
            var y = engine.Run(cex).Floats!;
            Assert.True(Enumerable.Range(0, 10).Any(k => k != ys[i] && y[k] >= y[ys[i]]), $"counterexample for sample {i} is classified as its label");
        }
    }

    [Fact]
    public async Task Spec_files_resolve_relative_to_the_policy_and_bad_ones_name_their_position()
    {
        var decl = string.Join("\n", Enumerable.Range(0, 64).Select(i => $"(declare-const X_{i} Real)\n(assert (>= X_{i} 0))\n(assert (<= X_{i} 0.1))"))
            + "\n" + string.Join("\n", Enumerable.Range(0, 10).Select(j => $"(declare-const Y_{j} Real)"));
        var (r, _) = await Run("""
                - id: spec
                  type: formal
                  spec: prop.vnnlib
                  timeout: 10s
            """, decl + "\n(assert (<= Y_0 1e9))\n");
        Assert.Equal(Verdict.Fail, r.Verdict); // every input "violates" a property whose region is everything
        var e = await Assert.ThrowsAsync<PolicyException>(() => Run("""
                - id: spec
                  type: formal
                  spec: prop.vnnlib
            """, decl + "\n(assert (<= Y_0 Y_11))\n"));
        Assert.True(e.Message.Contains("prop.vnnlib:" + (64 * 3 + 10 + 1) + ":17: 'Y_11' is used before it is declared"), e.Message);
    }

    [Fact]
    public async Task Gate_prove_writes_the_vnn_comp_result()
    {
        var model = TestPaths.FixtureModel("digits-mlp.onnx");
        var dir = TestPaths.TempDir("prove");
        var x0 = Npy.Read(TestPaths.FixtureData("digits_test_x.npy")).SliceBatch(0, 1).Floats!;
        long label = Npy.Read(TestPaths.FixtureData("digits_test_y.npy")).ToLongArray()[0];
        string Prop(double eps) =>
            string.Join("\n", Enumerable.Range(0, 64).Select(i => $"(declare-const X_{i} Real)\n(assert (>= X_{i} {Math.Max(0, x0[i] - eps)}))\n(assert (<= X_{i} {Math.Min(1, x0[i] + eps)}))"))
            + "\n" + string.Join("\n", Enumerable.Range(0, 10).Select(j => $"(declare-const Y_{j} Real)"))
            + "\n(assert (or " + string.Join(" ", Enumerable.Range(0, 10).Where(j => j != label).Select(j => $"(and (>= Y_{j} Y_{label}))")) + "))\n";
        var root = new RootCommand { ProveCommand.Create() };
        foreach (var (eps, expected, code) in new[] { (0.005, "unsat", 0), (0.6, "sat", 1) })
        {
            var spec = Path.Combine(dir, $"p{eps}.vnnlib"); File.WriteAllText(spec, Prop(eps));
            var outFile = Path.Combine(dir, $"r{eps}.txt");
            int rc = await Gate.Cli.Cli.InvokeAsync(root, ["prove", "--model", model, "--spec", spec, "--timeout", "20", "--out", outFile], TestContext.Current.CancellationToken);
            var lines = File.ReadAllLines(outFile);
            Assert.Equal(expected, lines[0]);
            Assert.Equal(code, rc);
            if (expected == "sat")
            {
                Assert.StartsWith("((X_0 ", lines[1]);
                Assert.Equal(64 + 10, lines.Length - 1);
            }
        }
        Assert.Equal(3, await Gate.Cli.Cli.InvokeAsync(root, ["prove", "--model", model, "--spec", Path.Combine(dir, "missing.vnnlib")], TestContext.Current.CancellationToken));
    }
}
