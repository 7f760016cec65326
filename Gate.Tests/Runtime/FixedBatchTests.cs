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

    /// <summary>A digits classifier (input [1,1,8,8], Reshape to [1,64], Gemm to [1,10]) whose batch is fixed at 1.</summary>
    private static Gate.Core.Model.OnnxModel BatchOneDigits()
    {
        var b = new OnnxBuilder().Input("input", 1, 1, 8, 8);
        var flat = b.Node("Reshape", ["input", b.InitLong([1, 64], 2)]);
        var logits = b.Dense(flat, 64, 10, new Random(5), scale: 3);
        b.Output(logits, 1, 10);
        return OnnxModelLoader.Parse(b.Bytes(), "batch1-digits.onnx");
    }

    [Fact]
    public void Pgd_runs_on_a_batch_one_model_one_sample_per_gradient_pass()
    {
        // Labels are the model's own predictions, so every sample is attacked (none fails unperturbed). Before: the
        // engine was fed chunks of samples, the batch-1 input refused them and the check was INCONCLUSIVE.
        var dir = TestPaths.TempDir();
        var x = Tensor.FromFloats([6, 1, 8, 8], Enumerable.Range(0, 384).Select(i => (float)((i * 37 % 101) / 101.0)).ToArray());
        var free = Gate.Core.Engine.CompiledModel.Compile(OnnxModelLoader.Parse(FreeBatch(BatchOneDigits()), "free.onnx"));
        var z = free.Run(new Dictionary<string, Tensor> { ["input"] = x }, [free.OutputNames[0]])[free.OutputNames[0]].ToFloatArray();
        var y = Enumerable.Range(0, 6).Select(i => (long)Enumerable.Range(0, 10).MaxBy(k => z[i * 10 + k])).ToArray();
        Npy.Write(Path.Combine(dir, "x.npy"), x);
        Npy.Write(Path.Combine(dir, "y.npy"), Tensor.FromLongs([6], y));
        var (r, _) = Gate.Tests.Checks.MechanisticHarness.Run(BatchOneDigits(), Gate.Tests.Checks.MechanisticHarness.Policy("input", "[-1, 1, 8, 8]", "[0.0, 1.0]",
            $"    test: {{ inputs: {Path.Combine(dir, "x.npy")}, labels: {Path.Combine(dir, "y.npy")} }}", """
                - id: robustness
                  type: adversarial
                  dataset: test
                  threat: { norm: linf, epsilon: 0.5 }
                  search: [ { method: pgd, steps: 10, restarts: 0 } ]
                  require: { robustAccuracy: { min: 0.0 } }
            """));
        Assert.True(r.Verdict != Gate.Core.Evidence.Verdict.Inconclusive, string.Join("; ", r.Reasons));
        Assert.Equal(0, r.Metrics["undecided"]);
        Assert.Equal(0, r.Metrics["cleanErrors"]);
        // ε = 0.5 on [0,1] pixels flips a random linear classifier: the per-sample gradients were followed.
        Assert.True(r.Metrics["counterexamples"] > 0, r.Summary);
    }

    [Fact]
    public void Trojan_scan_optimises_triggers_on_a_batch_one_model()
    {
        var (r, _) = Gate.Tests.Checks.MechanisticHarness.Run(BatchOneDigits(), Gate.Tests.Checks.MechanisticHarness.DigitsPolicy("""
                - id: trojan
                  type: trojan-scan
                  dataset: test
                  samples: 20
                  detectors: [neural-cleanse]
                  steps: 200
            """));
        Assert.DoesNotContain(r.Reasons, x => x.Contains("shape", StringComparison.OrdinalIgnoreCase));
        // Every class's mask was optimised through one-sample passes. The verdict itself is not the point: a random
        // linear model is no digits classifier, so the digits class reference may find it anomalous and leave the
        // scan INCONCLUSIVE when production does not confirm the trigger; that is a decision about the model, not
        // a refusal of its fixed batch.
        Assert.Equal(10, r.Metrics["classes"]);
        Assert.True(double.IsFinite(r.Metrics["anomalyIndex"]) && r.Metrics["minL1"] > 0 && r.Metrics["minL1"] < 64, r.Summary);
        Assert.True(r.Verdict != Gate.Core.Evidence.Verdict.Inconclusive || r.Reasons.All(x => x.Contains("confirmation", StringComparison.Ordinal)),
            string.Join("; ", r.Reasons));
    }

    [Fact]
    public void The_engine_wrapper_gives_the_batched_engines_gradients()
    {
        // Same weights with a free batch axis: the stacked single-sample gradients equal the batched ones.
        var one = BatchOneDigits();
        var free = OnnxModelLoader.Parse(FreeBatch(one), "free.onnx");
        var wrapped = Gate.Core.Runtime.FixedBatch.SampleBySample(Gate.Core.Engine.CompiledModel.Compile(one));
        var batched = Gate.Core.Engine.CompiledModel.Compile(free);
        var x = Tensor.FromFloats([3, 1, 8, 8], Enumerable.Range(0, 192).Select(i => (float)((i * 37 % 101) / 101.0)).ToArray());
        var seed = Tensor.FromFloats([3, 10], Enumerable.Range(0, 30).Select(i => (float)(i % 7 - 3)).ToArray());
        (float[] Y, float[] G) Grad(Gate.Core.Engine.IWhiteBoxEngine e)
        {
            string o = e.OutputNames[0];
            using var pass = e.Forward(new Dictionary<string, Tensor> { ["input"] = x }, [o], recordForBackward: true);
            return (pass[o].ToFloatArray(), e.Backward(pass, new Dictionary<string, Tensor> { [o] = seed }, ["input"])["input"].ToFloatArray());
        }
        var (y1, g1) = Grad(wrapped);
        var (y2, g2) = Grad(batched);
        Assert.Equal(y2.Length, y1.Length);
        for (int i = 0; i < y1.Length; i++) Assert.Equal(y2[i], y1[i], 4);
        Assert.Equal(g2.Length, g1.Length);
        for (int i = 0; i < g1.Length; i++) Assert.Equal(g2[i], g1[i], 4);
    }

    /// <summary>The model with its batch dimension made symbolic (input, Reshape target and output).</summary>
    private static byte[] FreeBatch(Gate.Core.Model.OnnxModel _)
    {
        var b = new OnnxBuilder([1, 1, 8, 8], input: "input");
        var flat = b.Node("Reshape", ["input", b.InitLong([-1, 64], 2)]);
        var logits = b.Dense(flat, 64, 10, new Random(5), scale: 3);
        b.Output(logits, -1, 10);
        return b.Bytes();
    }
}
