using System.Diagnostics;
using Gate.Core.Runtime;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Adversarial;

/// <summary>Counterexamples replay outside the check: with the gate CLI as a separate process, and in ONNX Runtime.</summary>
public class ReplayTests
{
    private static (int Code, string Out) RunGate(params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "gate.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(60_000), "gate run did not finish in 60 s");
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    [Fact]
    public void Gate_run_replays_every_saved_counterexample()
    {
        var run = AdversarialKit.Execute("digits-cnn.onnx", """
            samples: 6
            threat: { norm: linf, epsilon: 0.3 }
            search: [ { method: pgd, steps: 20 } ]
            require: { robustAccuracy: { min: 0 } }
            """);
        var labels = Npy.Read(TestPaths.FixtureData("digits_test_y.npy")).ToLongArray();
        Assert.NotEmpty(run.Counterexamples);
        foreach (var rec in run.Counterexamples.Take(3))
        {
            var outDir = TestPaths.TempDir("gate-replay");
            var file = Path.Combine(run.EvidenceDir, (string)rec!["file"]!);
            var (code, text) = RunGate("run", "--model", TestPaths.FixtureModel("digits-cnn.onnx"), "--input", $"input={file}", "--output-dir", outDir);
            Assert.True(code == 0, text);
            var logits = Npy.Read(Path.Combine(outDir, "logits.npy")).Floats!;
            int predicted = AdversarialKit.ArgMax(logits.AsSpan(0, 10));
            Assert.Equal((int)rec["builtinPrediction"]!, predicted);
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
