using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Checks.Adversarial;

/// <summary>Small versions of the strength comparisons in docs/benchmarks/adversarial.md (full numbers: AdversarialBenchmark).</summary>
public class AttackStrengthTests
{
    // 40 steps × 5 restarts as in the issue: with only 2 restarts, which random starts happen to land well decides
    // a sample or two either way, and the comparison measures luck rather than strength. ε = 0.1 on the full 200
    // samples is the cell that used to fail by one sample (docs/benchmarks/adversarial.md); a few samples there are
    // broken by only 3–20% of single runs of any method, so these cases pin the seeds' outcome, not a certainty.
    [Theory]
    [InlineData("digits-mlp.onnx", 0.05, 64)]
    [InlineData("digits-cnn.onnx", 0.05, 16)]
    [InlineData("digits-mlp.onnx", 0.1, 200)]
    [InlineData("digits-cnn.onnx", 0.1, 200)]
    public void Gate_pgd_is_at_least_as_strong_as_textbook_pgd_and_apgd_at_least_as_strong_as_pgd(string modelFile, double eps, int n)
    {
        const int steps = 40, restarts = 5;
        var model = CompiledModel.Compile(OnnxModelLoader.Load(TestPaths.FixtureModel(modelFile)));
        var images = Npy.Read(TestPaths.FixtureData("digits_test_x.npy")).ToFloatArray();
        var labels = Npy.Read(TestPaths.FixtureData("digits_test_y.npy")).ToLongArray();
        double textbook = TextbookPgd.Robust(model, images, labels, n, eps, steps, restarts, seed: 1).Count(b => b) / (double)n;

        double RobustAccuracy(string method) => AdversarialKit.Execute(modelFile, $$"""
            samples: {{n}}
            threat: { norm: linf, epsilon: {{eps}} }
            search: [ { method: {{method}}, steps: {{steps}}, restarts: {{restarts}} } ]
            require: { robustAccuracy: { min: 0 } }
            """).Result.Metrics["robustAccuracy"];
        double pgd = RobustAccuracy("pgd"), apgd = RobustAccuracy("apgd");
        Assert.True(textbook < 1.0 - 1e-9 || pgd < 1.0, "the comparison needs an ε where attacks succeed");
        Assert.True(pgd <= textbook, $"Gate PGD robust accuracy {pgd} > textbook {textbook}");
        Assert.True(apgd <= pgd, $"APGD robust accuracy {apgd} > PGD {pgd}");
    }
}
