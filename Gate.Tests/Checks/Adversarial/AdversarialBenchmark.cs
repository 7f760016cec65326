using System.Diagnostics;
using System.Globalization;
using System.Text;
using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Checks.Adversarial;

/// <summary>
/// The numbers in docs/benchmarks/adversarial.md. Not a unit test (minutes of CPU): runs only with
/// GATE_ADV_BENCH=1 and writes its markdown tables to GATE_ADV_BENCH_OUT (default: adversarial-bench.md in the temp folder).
/// <c>GATE_ADV_BENCH=1 dotnet test Gate.Tests -c Release --filter FullyQualifiedName~AdversarialBenchmark</c>
/// </summary>
[Trait("Category", "Benchmark")]
public class AdversarialBenchmark
{
    private static string F(double v) => v.ToString("0.000", CultureInfo.InvariantCulture);

    [Fact]
    public void Full_benchmark()
    {
        if (Environment.GetEnvironmentVariable("GATE_ADV_BENCH") != "1") Assert.Skip("benchmark: set GATE_ADV_BENCH=1 to run");
        int n = int.Parse(Environment.GetEnvironmentVariable("GATE_ADV_BENCH_SAMPLES") ?? "200", CultureInfo.InvariantCulture);
        var sb = new StringBuilder();
        var images = Npy.Read(TestPaths.FixtureData("digits_test_x.npy")).ToFloatArray();
        var labels = Npy.Read(TestPaths.FixtureData("digits_test_y.npy")).ToLongArray();
        sb.AppendLine($"Samples: first {n} test images. Machine: {Environment.ProcessorCount} logical cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}.");
        sb.AppendLine();
        sb.AppendLine("| model | ε | textbook PGD 40×5 | Gate PGD 40×5 | Gate APGD-CE 40×5 | Gate Square 1000 q |");
        sb.AppendLine("|---|---|---|---|---|---|");
        var timing = new StringBuilder();
        timing.AppendLine("| model | method | samples | wall s | ms / sample | queries | queries / sample |");
        timing.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var modelFile in new[] { "digits-mlp.onnx", "digits-cnn.onnx" })
        {
            var model = CompiledModel.Compile(OnnxModelLoader.Load(TestPaths.FixtureModel(modelFile)));
            foreach (var eps in new[] { 0.02, 0.05, 0.1, 0.2 })
            {
                var sw = Stopwatch.StartNew();
                double textbook = TextbookPgd.Robust(model, images, labels, n, eps, 40, 5, seed: 1).Count(b => b) / (double)n;
                double tTextbook = sw.Elapsed.TotalSeconds;
                var cells = new List<string> { F(textbook) };
                foreach (var method in new[] { "{ method: pgd, steps: 40, restarts: 5 }", "{ method: apgd, steps: 40, restarts: 5 }", "{ method: square, queries: 1000 }" })
                {
                    var r = AdversarialKit.Execute(modelFile, $$"""
                        samples: {{n}}
                        threat: { norm: linf, epsilon: {{eps}} }
                        search: [ {{method}} ]
                        require: { robustAccuracy: { min: 0 } }
                        """).Result;
                    cells.Add(F(r.Metrics["robustAccuracy"]));
                    if (eps == 0.05)
                    {
                        string name = method.Split(',')[0].Split(':')[1].Trim();
                        long q = r.BudgetUsed[$"{name}.queries"];
                        timing.AppendLine($"| {modelFile} | {name} (ε=0.05) | {n} | {r.DurationSeconds:0.00} | {1000 * r.DurationSeconds / n:0.0} | {q} | {q / (double)n:0.0} |");
                    }
                }
                if (eps == 0.05) timing.AppendLine($"| {modelFile} | textbook PGD 40×5 (ε=0.05, no early stop) | {n} | {tTextbook:0.00} | {1000 * tTextbook / n:0.0} | {n * 5 * 41} | {5 * 41} |");
                sb.AppendLine($"| {modelFile} | {eps} | {string.Join(" | ", cells)} |");
            }
        }
        sb.AppendLine();
        sb.Append(timing);
        var outFile = Environment.GetEnvironmentVariable("GATE_ADV_BENCH_OUT") ?? Path.Combine(Path.GetTempPath(), "adversarial-bench.md");
        File.WriteAllText(outFile, sb.ToString());
        TestContext.Current.SendDiagnosticMessage(sb.ToString());
    }
}
