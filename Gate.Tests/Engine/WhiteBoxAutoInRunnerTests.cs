using System.Text.Json.Nodes;
using Gate.Core.Engine;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Engine;

/// <summary>
/// <c>engine: auto</c> where it can choose: a PGD check through <c>gate check --sandbox bubblewrap</c>, so the
/// runner (with libtorch) makes the choice and the decision records it (runtime.whiteBox). A missing bubblewrap or
/// rootfs skips locally and fails in CI (GATE_REQUIRE_BWRAP=1), like the torch differential tests.
/// </summary>
public class WhiteBoxAutoInRunnerTests
{
    /// <summary>Runs a 2-sample, 1-step PGD check with engine: auto on the model and returns the recorded choice.</summary>
    private static JsonObject AutoChoice(OnnxBuilder b, string output, int[] sampleShape, int classes)
    {
        TorchEngineDifferentialTests.NeedSandbox();
        var dir = TestPaths.TempDir("gate-auto");
        b.Build(output, [1, classes]);
        var model = b.Save(Path.Combine(dir, "model.onnx"));
        var rng = new Random(5);
        Npy.Write(Path.Combine(dir, "x.npy"), Tensor.FromFloats([2, .. sampleShape], Enumerable.Range(0, 2 * Tensor.ElementCount(sampleShape)).Select(_ => rng.NextSingle()).ToArray()));
        Npy.Write(Path.Combine(dir, "y.npy"), Tensor.FromLongs([2], [0, 1]));
        File.WriteAllText(Path.Combine(dir, "policy.yaml"), $$"""
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata: { name: auto, owner: tests }
            spec:
              model:
                format: onnx
                inputs:
                  {{b.InputName}}: { shape: [-1, {{string.Join(", ", sampleShape)}}], range: [0.0, 1.0] }
              runtime: onnxruntime
              engine: auto
              sandbox:
                limits: { memory: 4Gi, cpus: 2, timeout: 5m }
              seed: 1
              datasets:
                d: { inputs: x.npy, labels: y.npy }
              checks:
                - id: pgd
                  type: adversarial
                  dataset: d
                  samples: 2
                  threat: { norm: linf, epsilon: 0.0001 }
                  search:
                    - { method: pgd, steps: 1, restarts: 1 }
                  require: { robustAccuracy: { min: 0.0 } }
            """);
        var r = GateCli.Run(["check", "-m", model, "-p", Path.Combine(dir, "policy.yaml"), "--sandbox", "bubblewrap", "-o", Path.Combine(dir, "out")], TimeSpan.FromMinutes(5));
        Assert.True(r.ExitCode is 0 or 1, $"gate check exited {r.ExitCode}\n{r.All}");
        var decision = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "out", "decision.json")))!;
        return Find(decision, "whiteBox") ?? throw new Xunit.Sdk.XunitException($"decision.json records no whiteBox choice:\n{decision}");
    }

    private static JsonObject? Find(JsonNode? node, string key) => node switch
    {
        JsonObject o when o[key] is JsonObject hit => hit,
        JsonObject o => o.Select(kv => Find(kv.Value, key)).FirstOrDefault(h => h is not null),
        JsonArray a => a.Select(v => Find(v, key)).FirstOrDefault(h => h is not null),
        _ => null,
    };

    [Fact]
    public void Auto_keeps_a_small_model_on_the_builtin_engine_without_measuring()
    {
        var rng = new Random(3);
        var b = new OnnxBuilder([1, 16]);
        var y = b.Dense(b.Node("Relu", [b.Dense(b.InputName, 16, 32, rng)]), 32, 4, rng);
        var choice = AutoChoice(b, y, [16], 4);
        Assert.Equal("builtin", (string?)choice["engine"]);
        Assert.Equal("a small model (676 weights < 100000) stays on the built-in engine", (string?)choice["reason"]);
        Assert.Null((double?)choice["builtinMs"]); // no timing: shards and replays record the same choice
        Assert.Null((double?)choice["torchMs"]);
    }

    /// <summary>Four 3×3 convolutions of 128 channels at 32×32: a model auto may run on torch (every operator verified,
    /// over the small-model size), so it measures both engines. Which one wins is a timing and not asserted here (speed
    /// belongs to benchmarks, docs/benchmarks/torch.md); what is asserted is that both timings are recorded and the
    /// choice and its reason follow them by the declared margin (AutoSpeedup).</summary>
    [Fact]
    public void Auto_measures_both_engines_on_a_convolution_network_and_chooses_by_the_recorded_timings()
    {
        var rng = new Random(4);
        var b = new OnnxBuilder([1, 3, 32, 32]);
        string Conv(string v, int cin, int cout) => b.Node("Relu", [b.Node("Conv", [v,
            b.Init(Enumerable.Range(0, cout * cin * 9).Select(_ => (float)((rng.NextDouble() * 2 - 1) * Math.Sqrt(2.0 / (cin * 9)))).ToArray(), cout, cin, 3, 3),
            b.Init(new float[cout], cout)], ("kernel_shape", new long[] { 3, 3 }), ("pads", new long[] { 1, 1, 1, 1 }))]);
        var h = Conv(Conv(Conv(Conv(b.InputName, 3, 128), 128, 128), 128, 128), 128, 128);
        var y = b.Dense(b.Node("Flatten", [b.Node("GlobalAveragePool", [h])], ("axis", 1)), 128, 10, rng);
        var choice = AutoChoice(b, y, [3, 32, 32], 10);
        Assert.True(choice["builtinMs"] is not null && choice["torchMs"] is not null, choice.ToJsonString());
        double builtinMs = (double)choice["builtinMs"]!, torchMs = (double)choice["torchMs"]!;
        Assert.True(builtinMs > 0 && torchMs > 0, choice.ToJsonString());
        bool torchWins = torchMs * WhiteBoxEngines.AutoSpeedup <= builtinMs;
        Assert.True((string?)choice["engine"] == (torchWins ? "torch" : "builtin"), choice.ToJsonString());
        Assert.Contains($"builtin {builtinMs:0.###} ms, torch {torchMs:0.###} ms", (string?)choice["reason"]);
        Assert.Contains(torchWins ? "torch is ≥" : "torch is not ≥", (string?)choice["reason"]);
    }
}
