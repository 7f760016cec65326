using Gate.Core.Runtime;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Checks.Adversarial;

/// <summary>Counterexamples replay outside the check: through `gate run`, and in a fresh ONNX Runtime session.</summary>
public class ReplayTests
{
    [Fact]
    public void Gate_run_replays_every_saved_counterexample_on_the_production_runtime()
    {
        // Found by the engine, confirmed on ONNX Runtime by the check, replayed by `gate run --runtime onnxruntime`.
        var run = AdversarialKit.Execute("digits-cnn.onnx", """
            samples: 6
            threat: { norm: linf, epsilon: 0.3 }
            search: [ { method: pgd, steps: 20 } ]
            require: { robustAccuracy: { min: 0 } }
            """, runtime: "onnxruntime");
        Assert.NotEqual("builtin", run.Result.Runtime);
        var labels = Npy.Read(TestPaths.FixtureData("digits_test_y.npy")).ToLongArray();
        Assert.NotEmpty(run.Counterexamples);
        foreach (var rec in run.Counterexamples.Take(3))
        {
            var outDir = TestPaths.TempDir("gate-replay");
            var file = Path.Combine(run.EvidenceDir, (string)rec!["file"]!);
            var r = GateCli.Run("run", "--model", TestPaths.FixtureModel("digits-cnn.onnx"), "--input", $"input={file}", "--output-dir", outDir, "--runtime", "onnxruntime");
            Assert.True(r.ExitCode == 0, r.All);
            var logits = Npy.Read(Path.Combine(outDir, "logits.npy")).Floats!;
            int predicted = AdversarialKit.ArgMax(logits.AsSpan(0, 10));
            Assert.Equal((int)rec["productionPrediction"]!, predicted);
            Assert.NotEqual(labels[(int)rec["sampleIndex"]!], predicted);
        }
    }

    [Fact]
    public void Counterexamples_confirmed_on_onnx_runtime_replay_in_a_fresh_onnx_runtime_session()
    {
        var factory = ProductionRuntime.OnnxRuntimeFactory;
        Need.Component("GATE_REQUIRE_ORT", factory is not null, "the ONNX Runtime binding is not available in this build (ProductionRuntime.OnnxRuntimeFactory is null)");
        var run = AdversarialKit.Execute("digits-mlp.onnx", """
            samples: 16
            threat: { norm: linf, epsilon: 0.3 }
            search: [ { method: pgd, steps: 20 }, { method: square, queries: 200 } ]
            require: { robustAccuracy: { min: 0 } }
            """, runtime: "onnxruntime");
        Assert.NotEqual("builtin", run.Result.Runtime);
        Assert.True(run.Result.Metrics["counterexamples"] > 0, run.Result.Summary);
        var labels = Npy.Read(TestPaths.FixtureData("digits_test_y.npy")).ToLongArray();
        using var session = factory!().Load(run.Model, new RuntimeOptions());
        foreach (var rec in run.Counterexamples)
        {
            var z = session.RunSingle(AdversarialKit.ReadCounterexample(run, rec!), "logits").ToFloatArray();
            int predicted = AdversarialKit.ArgMax(z);
            Assert.Equal((int)rec!["productionPrediction"]!, predicted);
            Assert.NotEqual(labels[(int)rec["sampleIndex"]!], predicted);
        }
    }
}
