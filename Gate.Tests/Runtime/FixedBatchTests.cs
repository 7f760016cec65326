using System.Text.Json.Nodes;
using Gate.Core.Model;
using Gate.Core.Plan;
using Gate.Core.Policy;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Runtime;

/// <summary>
/// A model whose batch dimension is fixed at 1 (input [1,4], a Reshape to [1,3] inside, as in ONNX Runtime's MNIST
/// test models) is run one sample at a time: accuracy and probes are decided, and the plan and the check's coverage
/// say how it was run, instead of every data check ending INCONCLUSIVE on a shape error.
/// </summary>
public class FixedBatchTests
{
    private static string BatchOneModel(string dir)
    {
        var b = new OnnxBuilder().Input("x", 1, 4).Output("y", 1, 3);
        // y = reshape(x · W, [1,3]), W picks the first three features: the class is the argmax of x[0..2].
        var w = b.Init([1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0], 4, 3);
        var h = b.Node("MatMul", ["x", w]);
        var r = b.Node("Relu", [h]);
        b.Node("Reshape", [r, b.InitLong([1, 3], 2)], ["y"]);
        return b.Save(Path.Combine(dir, "batch1.onnx"));
    }

    private static string Policy(string dir)
    {
        var rng = new Random(3);
        int n = 20;
        var x = new float[n * 4];
        var y = new long[n];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < 4; j++) x[i * 4 + j] = (float)rng.NextDouble();
            y[i] = Enumerable.Range(0, 3).MaxBy(j => x[i * 4 + j]);
        }
        Npy.Write(Path.Combine(dir, "x.npy"), Tensor.FromFloats([n, 4], x));
        Npy.Write(Path.Combine(dir, "y.npy"), Tensor.FromLongs([n], y));
        var path = Path.Combine(dir, "policy.yaml");
        File.WriteAllText(path, """
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata: { name: batch-one }
            spec:
              model:
                format: onnx
                inputs:
                  x: { shape: [1, 4], range: [0.0, 1.0] }
              runtime: builtin
              sandbox: { isolation: process }
              seed: 1
              datasets:
                d: { inputs: x.npy, labels: y.npy }
              checks:
                - id: acc
                  type: accuracy
                  dataset: d
                  require: { accuracy: { min: 0.99 } }
                - id: probe
                  type: linear-probe
                  dataset: d
                  layers: auto
                  folds: 2
                  require: { accuracy: { min: 0.0 } }

            """);
        return path;
    }

    [Fact]
    public void Plan_notes_that_a_batch_fixed_at_one_runs_sample_by_sample()
    {
        var dir = TestPaths.TempDir();
        var plan = CheckPlan.Create(PolicyLoader.Load(Policy(dir)), OnnxModelLoader.Load(BatchOneModel(dir)));
        Assert.Contains(plan.Notes, n => n.Contains("batch dimension is fixed at 1") && n.Contains("one sample at a time"));
    }

    [Fact]
    public void Gate_check_decides_accuracy_and_a_probe_on_a_batch_one_model()
    {
        var dir = TestPaths.TempDir();
        var outDir = Path.Combine(dir, "out");
        var r = GateCli.Run("check", "--model", BatchOneModel(dir), "--policy", Policy(dir), "--out", outDir);
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}\n{r.All}");
        Assert.Contains("one sample at a time", r.All);
        var checks = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "decision.json")))!["checks"]!.AsArray();
        var acc = checks.Single(c => c!["id"]!.GetValue<string>() == "acc")!;
        Assert.Equal(1.0, acc["metrics"]!["accuracy"]!.GetValue<double>());
        Assert.Contains("one sample at a time", acc["coverage"]!.GetValue<string>());
        var probe = checks.Single(c => c!["id"]!.GetValue<string>() == "probe")!;
        Assert.Equal("pass", probe["verdict"]!.GetValue<string>().ToLowerInvariant());
    }
}
