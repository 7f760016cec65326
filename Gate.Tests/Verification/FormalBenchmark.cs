using System.Diagnostics;
using System.Globalization;
using System.Text;
using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Runtime;
using Gate.Core.Tensors;
using Gate.Core.Verification;
using Gate.Tests.Support;

namespace Gate.Tests.Verification;

/// <summary>
/// The benchmark behind docs/benchmarks/formal.md. Not a unit test: it runs only with GATE_BENCH=1 (minutes of
/// CPU), writes the generated networks and properties and a markdown table to GATE_BENCH_OUT (default a temp dir).
/// </summary>
[Trait("Category", "Benchmark")]
public class FormalBenchmark
{
    [Fact]
    public void Run_formal_benchmark()
    {
        if (Environment.GetEnvironmentVariable("GATE_BENCH") != "1") Assert.Skip("benchmark: set GATE_BENCH=1 to run");
        var outDir = Environment.GetEnvironmentVariable("GATE_BENCH_OUT") ?? TestPaths.TempDir("formal-bench");
        Directory.CreateDirectory(outDir);
        double acasTimeout = double.Parse(Environment.GetEnvironmentVariable("GATE_BENCH_ACAS_TIMEOUT") ?? "60", CultureInfo.InvariantCulture);
        double digitsTimeout = double.Parse(Environment.GetEnvironmentVariable("GATE_BENCH_DIGITS_TIMEOUT") ?? "30", CultureInfo.InvariantCulture);
        int digitsSamples = int.Parse(Environment.GetEnvironmentVariable("GATE_BENCH_DIGITS_SAMPLES") ?? "10", CultureInfo.InvariantCulture);
        var report = new StringBuilder();
        report.AppendLine($"machine: {Environment.ProcessorCount} logical CPUs, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}");
        report.AppendLine();
        report.AppendLine("| suite | property | answer | seconds | sub-domains |");
        report.AppendLine("|---|---|---|---|---|");

        // ACAS-Xu-shaped: 5 inputs, 6 hidden layers of 50 ReLUs, 5 outputs; random Glorot weights.
        for (int net = 1; net <= 3; net++)
        {
            var rng = new Random(1000 + net);
            var model = BoundSoundnessTests.RandomRelu(rng, 5, [50, 50, 50, 50, 50, 50], 5);
            File.WriteAllBytes(Path.Combine(outDir, $"acas-like-{net}.onnx"), model.Bytes);
            var engine = CompiledModel.Compile(model);
            var lo = Enumerable.Range(0, 5).Select(_ => rng.NextDouble() - 0.5).ToArray();
            var hi = lo.Select(v => v + 0.1 + 0.3 * rng.NextDouble()).ToArray();
            var y0 = BoundSoundnessTests.Samples(rng, lo, hi, 2000).Select(x => (double)engine.Run(Tensor.FromFloats([1, 5], x)).Floats![0]).ToArray();
            double min = y0.Min(), max = y0.Max(), range = max - min;
            OutputConstraint Y0AtLeast(double t) => new([-1, 0, 0, 0, 0], -t, 0, 0); // −Y_0 ≤ −t
            var props = new (string name, OutputConstraint[][] cases)[]
            {
                ("Y0 >= max+10%", [[Y0AtLeast(max + 0.1 * range)]]),
                ("Y0 >= max+1%", [[Y0AtLeast(max + 0.01 * range)]]),
                ("Y0 >= max-10%", [[Y0AtLeast(max - 0.1 * range)]]),
                ("Y0 minimal", [[.. Enumerable.Range(1, 4).Select(j => { var c = new double[5]; c[0] = 1; c[j] = -1; return new OutputConstraint(c, 0, 0, 0); })]]),
            };
            for (int q = 0; q < props.Length; q++)
            {
                var (name, cases) = props[q];
                var text = VnnLib.Write(lo, hi, 5, cases);
                var file = Path.Combine(outDir, $"acas-like-{net}-prop{q + 1}.vnnlib");
                File.WriteAllText(file, text);
                Bench(report, $"acas-like-{net}", name, model, VnnLib.Parse(text, file), acasTimeout);
            }
        }

        // Local robustness on the digits MLP fixture.
        var mlp = OnnxModelLoader.Load(TestPaths.FixtureModel("digits-mlp.onnx"));
        var xs = Npy.Read(TestPaths.FixtureData("digits_test_x.npy")); var ys = Npy.Read(TestPaths.FixtureData("digits_test_y.npy")).ToLongArray();
        foreach (var eps in new[] { 0.01, 0.02, 0.05 })
            for (int i = 0; i < digitsSamples; i++)
            {
                var x = xs.SliceBatch(i, 1).Floats!;
                var lo = x.Select(v => Math.Max(0, v - eps)).ToArray(); var hi = x.Select(v => Math.Min(1, v + eps)).ToArray();
                var cases = Enumerable.Range(0, 10).Where(k => k != ys[i]).Select(k => { var c = new double[10]; c[ys[i]] = 1; c[k] = -1; return new[] { new OutputConstraint(c, 0, 0, 0) }; });
                var text = VnnLib.Write(lo, hi, 10, cases);
                Bench(report, $"digits-mlp ε={eps}", $"sample {i}", mlp, VnnLib.Parse(text, $"digits-{eps}-{i}"), digitsTimeout);
            }
        File.WriteAllText(Path.Combine(outDir, "results.md"), report.ToString());
        TestContext.Current.TestOutputHelper?.WriteLine(report.ToString());
    }

    private static void Bench(StringBuilder report, string suite, string name, OnnxModel model, VnnProperty p, double timeout)
    {
        using var confirm = new BuiltinRuntime().Load(model, new RuntimeOptions());
        var prover = new Prover(model, confirm, new ProverOptions { Timeout = TimeSpan.FromSeconds(timeout) });
        var sw = Stopwatch.StartNew();
        var r = prover.Prove(p, TestContext.Current.CancellationToken);
        report.AppendLine($"| {suite} | {name} | {r.Status.ToString().ToLowerInvariant()} | {sw.Elapsed.TotalSeconds:F2} | {r.Domains} |");
        Console.Error.WriteLine($"{suite} {name}: {r.Status} {sw.Elapsed.TotalSeconds:F2}s {r.Domains} domains");
    }

    /// <summary>
    /// A/B of the input-split choice on real instances: GATE_BENCH_SPLIT="ONNX VNNLIB;ONNX VNNLIB…" runs each with
    /// <see cref="ProverOptions.InputSplitLookahead"/> 1 and GATE_BENCH_SPLIT_K (default 3), GATE_BENCH_SPLIT_TIMEOUT
    /// seconds each (default 30), and prints answer, seconds and sub-domains. Not a unit test.
    /// </summary>
    [Fact]
    [Trait("Category", "Benchmark")]
    public void Compare_input_split_choices()
    {
        var spec = Environment.GetEnvironmentVariable("GATE_BENCH_SPLIT");
        if (string.IsNullOrEmpty(spec)) Assert.Skip("benchmark: set GATE_BENCH_SPLIT to run");
        int k = int.Parse(Environment.GetEnvironmentVariable("GATE_BENCH_SPLIT_K") ?? "3", CultureInfo.InvariantCulture);
        double timeout = double.Parse(Environment.GetEnvironmentVariable("GATE_BENCH_SPLIT_TIMEOUT") ?? "30", CultureInfo.InvariantCulture);
        foreach (var pair in spec.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = pair.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var model = OnnxModelLoader.Load(parts[0]);
            var p = VnnLib.Load(parts[1]);
            using var confirm = Prover.OpenConfirmingRuntime(model);
            foreach (int look in new[] { 1, k })
            {
                var prover = new Prover(model, confirm, new ProverOptions { Timeout = TimeSpan.FromSeconds(timeout), InputSplitLookahead = look });
                var r = prover.Prove(p, TestContext.Current.CancellationToken);
                Console.Error.WriteLine($"SPLIT {Path.GetFileName(parts[0])} {Path.GetFileName(parts[1])} lookahead={look}: {r.Status} {r.Seconds:F2}s {r.Domains} domains");
            }
        }
    }
}
