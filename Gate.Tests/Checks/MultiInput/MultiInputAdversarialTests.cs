using System.Text.Json.Nodes;
using Gate.Core.Tensors;
using Gate.Tests.Runtime;
using Gate.Tests.Support;

namespace Gate.Tests.Checks.MultiInput;

/// <summary>
/// Adversarial search on a two-input model (a float input x and an int64 input s) through `gate check` on ONNX
/// Runtime: the search perturbs the named float input and holds s at each sample's value, so the samples whose s
/// widens the margin are robust and the others have counterexamples, which replay with `gate run` given all inputs.
/// </summary>
public class MultiInputAdversarialTests
{
    private const int N = 10;

    /// <summary>logits = x + E[s] with E = [[0, 0], [0.3, 0]]: s = 1 adds 0.3 to class 0's logit.</summary>
    private static string Model(string dir, bool twoFloats = false)
    {
        var b = new OnnxBuilder(opset: 13).Input("x", -1, 2);
        if (twoFloats) b.Input("y", -1, 2); else b.Input("s", DType.Int64, -1);
        var bias = twoFloats ? "y" : b.Node("Gather", [b.Init([0, 0, 0.3f, 0], 2, 2), "s"], ("axis", 0));
        b.Node("Add", ["x", bias], ["logits"]);
        b.Output("logits", -1, 2);
        return b.Save(Path.Combine(dir, "two-input.onnx"));
    }

    /// <summary>Every sample x = (0.6, 0.4), label 0 (margin 0.2); s = 0 for the first half, 1 (margin 0.5) for the rest.</summary>
    private static void Data(string dir)
    {
        Npy.Write(Path.Combine(dir, "x.npy"), Tensor.FromFloats([N, 2], Enumerable.Range(0, N).SelectMany(_ => new[] { 0.6f, 0.4f }).ToArray()));
        Npy.Write(Path.Combine(dir, "s.npy"), Tensor.FromLongs([N], Enumerable.Range(0, N).Select(i => i < N / 2 ? 0L : 1L).ToArray()));
        Npy.Write(Path.Combine(dir, "y.npy"), Tensor.FromFloats([N, 2], new float[N * 2]));
        Npy.Write(Path.Combine(dir, "labels.npy"), Tensor.FromLongs([N], new long[N]));
    }

    private static string Policy(string dir, string threat, double min, string inputs = "{ x: x.npy, s: s.npy }", string declared = "x: { shape: [-1, 2], range: [0, 1] }")
    {
        var path = Path.Combine(dir, "policy.yaml");
        File.WriteAllText(path, $$"""
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata: { name: two-input }
            spec:
              model:
                format: onnx
                inputs:
                  {{declared}}
              runtime: onnxruntime
              sandbox: { isolation: process }
              seed: 3
              datasets:
                d: { inputs: {{inputs}}, labels: labels.npy }
              checks:
                - id: robustness
                  type: adversarial
                  dataset: d
                  threat: {{threat}}
                  search: [ { method: pgd, steps: 20, restarts: 1 } ]
                  require: { robustAccuracy: { min: {{min}} } }
            """);
        return path;
    }

    [Fact]
    public void The_search_perturbs_the_float_input_holds_the_other_and_its_counterexamples_replay_with_all_inputs()
    {
        OrtTestSupport.RequireOrt();
        var dir = TestPaths.TempDir();
        Data(dir);
        var model = Model(dir);
        var outDir = Path.Combine(dir, "out");
        // threat.input left out: x is the model's only float input.
        var r = GateCli.Run("check", "--model", model, "--policy", Policy(dir, "{ norm: linf, epsilon: 0.15 }", 0.5), "--out", outDir);
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}\n{r.All}");
        var check = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "decision.json")))!["checks"]![0]!;
        Assert.Equal("onnxruntime", check["runtime"]!.GetValue<string>().Split(' ')[0].ToLowerInvariant());
        Assert.Equal(0.5, check["metrics"]!["robustAccuracy"]!.GetValue<double>());
        Assert.Equal(5, check["metrics"]!["robust"]!.GetValue<double>());

        // Each counterexample names the perturbed input and the held one; gate run replays it on ONNX Runtime.
        var evidence = Path.Combine(outDir, "evidence");
        var cex = JsonNode.Parse(File.ReadAllText(Path.Combine(evidence, "robustness", "counterexamples.json")))!.AsArray();
        Assert.Equal([0L, 1, 2, 3, 4], cex.Select(c => c!["sampleIndex"]!.GetValue<long>()));
        foreach (var c in cex)
        {
            Assert.Equal("x", c!["input"]!.GetValue<string>());
            var held = Path.Combine(evidence, c["heldInputs"]!["s"]!.GetValue<string>());
            Assert.Equal(0L, Npy.Read(held).ToLongArray().Single());
            var replayDir = Path.Combine(dir, $"replay{c["sampleIndex"]}");
            var replay = GateCli.Run("run", "--model", model, "--input", $"x={Path.Combine(evidence, c["file"]!.GetValue<string>())}",
                "--input", $"s={held}", "--runtime", "onnxruntime", "--sandbox", "process", "--output-dir", replayDir);
            Assert.True(replay.ExitCode == 0, $"exit {replay.ExitCode}\n{replay.All}");
            var z = Npy.Read(Directory.GetFiles(replayDir, "logits*.npy").Single()).ToFloatArray();
            Assert.True(z[1] >= z[0], $"replayed logits {z[0]}, {z[1]} do not break label 0");
        }

        // The same search with a stricter requirement rejects: the counterexamples are real.
        var strict = GateCli.Run("check", "--model", model, "--policy", Policy(dir, "{ norm: linf, epsilon: 0.15, input: x }", 0.9), "--out", Path.Combine(dir, "out2"));
        Assert.True(strict.ExitCode == 1, $"exit {strict.ExitCode}\n{strict.All}");
    }

    public static TheoryData<string, bool, string, string, string> Refusals => new()
    {
        { "integer input named", false, "{ norm: linf, epsilon: 0.1, input: s }", "x: { shape: [-1, 2], range: [0, 1] }\n      s: { shape: [-1], range: [0, 1] }", "'s', which is int64" },
        { "two floats, none named", true, "{ norm: linf, epsilon: 0.1 }", "x: { shape: [-1, 2], range: [0, 1] }", "the model has 2 float inputs (x, y)" },
        { "default is not the declared range", false, "{ norm: linf, epsilon: 0.1 }", "s: { shape: [-1], range: [0, 1] }", "name the perturbed input in threat.input (x)" },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public void Lint_refuses_an_input_the_search_cannot_perturb_before_anything_runs(string what, bool twoFloats, string threat, string declared, string expected)
    {
        _ = what;
        var dir = TestPaths.TempDir();
        Data(dir);
        var policy = Policy(dir, threat, 0.5, twoFloats ? "{ x: x.npy, y: y.npy }" : "{ x: x.npy, s: s.npy }", declared);
        var lint = GateCli.Run("policy", "lint", policy, "--model", Model(dir, twoFloats));
        Assert.True(lint.ExitCode == 3, $"exit {lint.ExitCode}\n{lint.All}");
        Assert.True(lint.All.Contains(expected), $"no \"{expected}\" in:\n{lint.All}");
        Assert.Contains("policy.yaml:", lint.All);
    }
}
