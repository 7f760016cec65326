using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Runtime;
using Gate.Core.Tensors;
using Gate.Core.Verification;
using Gate.Tests.Support;

namespace Gate.Tests.Verification;

/// <summary>
/// The prover's answers against independent evidence: whenever sampling finds a violation, the answer is never
/// unsat; every sat comes with a counterexample that really violates the property; and unsat answers survive
/// dense sampling.
/// </summary>
public class ProverTests
{
    private static readonly ProverOptions Quick = new() { Timeout = TimeSpan.FromSeconds(3), AttackRestarts = 3, AttackSteps = 15, AlphaSteps = 2 };

    private static VnnProperty DiffProperty(double[] lo, double[] hi, int outputs, double t)
    {
        var c = new double[outputs]; c[0] = 1; c[1] = -1;
        return new VnnProperty("test", lo.Length, outputs, [new VnnCase(lo, hi, [new OutputConstraint(c, t, 1, 1)])]); // Y_0 − Y_1 ≤ t
    }

    private static double[] SampledDiffs(OnnxModel model, double[] lo, double[] hi, Random rng, int count)
    {
        var engine = CompiledModel.Compile(model);
        var shape = new BoundNetwork(model).InputShape;
        return BoundSoundnessTests.Samples(rng, lo, hi, count).Select(x => { var y = engine.Run(Tensor.FromFloats(shape, x)).Floats!; return (double)y[0] - y[1]; }).ToArray();
    }

    private static void CheckAnswer(OnnxModel model, VnnProperty p, ProofResult r, double sampledMin)
    {
        var k = p.Cases[0].Constraints[0];
        if (sampledMin <= k.D) Assert.NotEqual(ProofStatus.Unsat, r.Status);
        if (r.Status == ProofStatus.Sat)
        {
            var x = r.CounterexampleX!;
            for (int i = 0; i < x.Length; i++) Assert.InRange(x[i], p.Cases[0].InputLower[i], p.Cases[0].InputUpper[i]);
            var y = CompiledModel.Compile(model).Run(Tensor.FromFloats(new BoundNetwork(model).InputShape, x)).Floats!;
            Assert.Equal(y, r.CounterexampleY!);
            Assert.True((double)y[0] - y[1] <= k.D, $"counterexample gives {y[0] - y[1]} > {k.D}");
        }
    }

    [Theory]
    [InlineData(3, 1, 1)]   // input splitting
    [InlineData(3, 1, 3)]   // input splitting, the split chosen by bounding the children of every input's bisection
    [InlineData(12, 2, 1)]  // ReLU splitting (more than 10 inputs)
    public void Never_unsat_when_sampling_violates_and_sat_answers_are_real(int inputs, int seed, int lookahead)
    {
        var rng = new Random(seed);
        int unsat = 0, sat = 0;
        for (int trial = 0; trial < 6; trial++)
        {
            var model = BoundSoundnessTests.RandomRelu(rng, inputs, [8, 8], 2);
            var lo = Enumerable.Range(0, inputs).Select(_ => rng.NextDouble() - 0.5).ToArray();
            var hi = lo.Select(v => v + 0.1 + 0.3 * rng.NextDouble()).ToArray();
            var diffs = SampledDiffs(model, lo, hi, rng, 400);
            double min = diffs.Min(), max = diffs.Max();
            using var confirm = new BuiltinRuntime().Load(model, new RuntimeOptions());
            var prover = new Prover(model, confirm, Quick with { Seed = (ulong)trial + 1, InputSplitLookahead = lookahead });
            // Threshold between the sampled minimum and maximum: violated (sampling found it).
            var violated = DiffProperty(lo, hi, 2, min + 0.3 * (max - min));
            var r1 = prover.Prove(violated, TestContext.Current.CancellationToken);
            CheckAnswer(model, violated, r1, min);
            if (r1.Status == ProofStatus.Sat) sat++;
            // Threshold below everything sampled: probably holds; an unsat must survive 4000 more samples.
            var likely = DiffProperty(lo, hi, 2, min - (inputs > 10 ? 0.5 : 0.05) * (max - min) - 0.01);
            var r2 = prover.Prove(likely, TestContext.Current.CancellationToken);
            CheckAnswer(model, likely, r2, min);
            TestContext.Current.TestOutputHelper?.WriteLine($"{r1.Status} {r2.Status} {r2.Detail} {r2.Seconds:F2}s");
            if (r2.Status == ProofStatus.Unsat)
            {
                unsat++;
                Assert.True(SampledDiffs(model, lo, hi, rng, 4000).Min() > likely.Cases[0].Constraints[0].D);
            }
        }
        Assert.True(sat >= 5, $"only {sat}/6 sampled violations were found and confirmed");
        Assert.True(unsat >= 3, $"only {unsat}/6 likely-true properties were proved");
    }

    /// <summary>
    /// On small sigmoid/tanh networks the prover must decide, not just stay sound: a threshold below every sampled
    /// value is proved (and the proof survives 4000 fresh samples in the box), one in the middle of the sampled range
    /// is refuted with a real counterexample. An "unknown" or "timeout" fails the test.
    /// </summary>
    [Fact]
    public void Sigmoid_and_tanh_networks_are_decided_soundly()
    {
        var rng = new Random(4);
        var decided = Quick with { Timeout = TimeSpan.FromSeconds(60) }; // generous: a loaded CI host must not turn a decision into a timeout
        for (int trial = 0; trial < 3; trial++)
        {
            var model = BoundSoundnessTests.MixedNetwork(rng);
            var lo = Enumerable.Range(0, 16).Select(_ => rng.NextDouble() - 0.5).ToArray();
            var hi = lo.Select(v => v + 0.05).ToArray();
            var diffs = SampledDiffs(model, lo, hi, rng, 300);
            using var confirm = new BuiltinRuntime().Load(model, new RuntimeOptions());
            var prover = new Prover(model, confirm, decided);
            foreach (var (t, expected) in new[] { (diffs.Min() - 0.05, ProofStatus.Unsat), (0.5 * (diffs.Min() + diffs.Max()), ProofStatus.Sat) })
            {
                var p = DiffProperty(lo, hi, 3, t);
                var r = prover.Prove(p, TestContext.Current.CancellationToken);
                TestContext.Current.TestOutputHelper?.WriteLine($"trial {trial} threshold {t:G4}: {r.Status} ({r.Detail}, {r.Seconds:F2}s)");
                CheckAnswer(model, p, r, diffs.Min());
                Assert.True(r.Status == expected, $"trial {trial}, threshold {t:G4}: expected {expected}, got {r.Status} ({r.Detail})");
                if (r.Status == ProofStatus.Unsat)
                    Assert.True(SampledDiffs(model, lo, hi, rng, 4000).Min() > t, $"trial {trial}: a sampled point violates the property proved at {t:G4}");
            }
        }
    }

    /// <summary>A confirming runtime that disagrees with the engine: every output 0 is shifted up by 1000.</summary>
    /// <summary>Moves Y_0 by +1000 on its first <paramref name="disagreeFirst"/> runs (by default on all of them).</summary>
    private sealed class DisagreeingSession(IInferenceSession inner, int disagreeFirst = int.MaxValue) : IInferenceSession
    {
        public int Runs;
        public RuntimeInfo Info => inner.Info with { Name = "disagreeing" };
        public IReadOnlyList<string> InputNames => inner.InputNames;
        public IReadOnlyList<string> OutputNames => inner.OutputNames;
        public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<string>? outputs = null)
        {
            var y = inner.Run(inputs, outputs).ToDictionary(kv => kv.Key, kv => kv.Value);
            if (Interlocked.Increment(ref Runs) > disagreeFirst) return y;
            var name = OutputNames[0];
            var f = y[name].ToFloatArray();
            f[0] += 1000f;
            y[name] = Tensor.FromFloats(y[name].Shape, f);
            return y;
        }
        public void Dispose() => inner.Dispose();
    }

    [Theory]
    [InlineData(ProofMethod.Bab)]
    [InlineData(ProofMethod.Crown)]
    public void A_counterexample_the_confirming_runtime_does_not_reproduce_is_never_sat(ProofMethod method)
    {
        // The engine sees Y_0 − Y_1 ≤ t violated (sampling finds it); the confirming runtime never does. The answer
        // must not be sat (nothing confirmed) and cannot be unsat (the engine's bounds see the violation).
        var rng = new Random(7);
        var model = BoundSoundnessTests.RandomRelu(rng, 3, [8, 8], 2);
        double[] lo = [-0.2, -0.2, -0.2], hi = [0.2, 0.2, 0.2];
        var diffs = SampledDiffs(model, lo, hi, rng, 400);
        var p = DiffProperty(lo, hi, 2, diffs.Min() + 0.5 * (diffs.Max() - diffs.Min()));
        using var confirm = new DisagreeingSession(new BuiltinRuntime().Load(model, new RuntimeOptions()));
        var r = new Prover(model, confirm, Quick with { Method = method, Timeout = TimeSpan.FromSeconds(2) }).Prove(p, TestContext.Current.CancellationToken);
        Assert.True(confirm.Runs > 0, "the engine's counterexample was never sent to the confirming runtime");
        Assert.True(r.Status is ProofStatus.Unknown or ProofStatus.Timeout, $"{r.Status}: {r.Detail}");
        Assert.Null(r.CounterexampleX);
        Assert.Equal("disagreeing", r.ConfirmedOn);
    }

    [Fact]
    public void A_candidate_the_confirming_runtime_rejects_does_not_end_the_search()
    {
        // The first candidates fail confirmation (as one within float32 rounding of the threshold would on ONNX
        // Runtime); the search must go on and answer sat with one that is confirmed, not stop with unknown.
        var rng = new Random(7);
        var model = BoundSoundnessTests.RandomRelu(rng, 3, [8, 8], 2);
        double[] lo = [-0.2, -0.2, -0.2], hi = [0.2, 0.2, 0.2];
        var diffs = SampledDiffs(model, lo, hi, rng, 400);
        var p = DiffProperty(lo, hi, 2, diffs.Min() + 0.5 * (diffs.Max() - diffs.Min()));
        using var confirm = new DisagreeingSession(new BuiltinRuntime().Load(model, new RuntimeOptions()), disagreeFirst: 3);
        var r = new Prover(model, confirm, Quick with { Timeout = TimeSpan.FromSeconds(10) }).Prove(p, TestContext.Current.CancellationToken);
        Assert.True(r.Status == ProofStatus.Sat, $"{r.Status}: {r.Detail}");
        Assert.True(confirm.Runs > 3, $"only {confirm.Runs} confirmation run(s)");
        Assert.NotNull(r.CounterexampleX);
    }

    [Fact]
    public void Unsupported_operators_give_unknown_not_unsat()
    {
        // Exp runs in the engine but has no bound rules (yet): the answer must be unknown, whatever the property.
        var b = new OnnxBuilder([1, 2]);
        var h = b.Node("Exp", [b.Dense(b.InputName, 2, 3, new Random(1))]);
        var model = b.Build(b.Dense(h, 3, 2, new Random(2)), [1, 2]);
        Assert.NotNull(new BoundNetwork(model).Unsupported);
        using var confirm = new BuiltinRuntime().Load(model, new RuntimeOptions());
        var r = new Prover(model, confirm, Quick).Prove(DiffProperty([0, 0], [0.1, 0.1], 2, -1e6), TestContext.Current.CancellationToken);
        Assert.Equal(ProofStatus.Unknown, r.Status);
    }

    [Fact]
    public void A_missing_bound_rule_is_reported_at_once_not_after_attacking_for_the_whole_timeout()
    {
        var b = new OnnxBuilder([1, 2]);
        var h = b.Node("Exp", [b.Dense(b.InputName, 2, 3, new Random(1))]);
        var model = b.Build(b.Dense(h, 3, 2, new Random(2)), [1, 2]);
        using var confirm = new BuiltinRuntime().Load(model, new RuntimeOptions());
        // An attack budget far beyond the timeout: before, the prover attacked until the timeout and only then said why.
        var patient = Quick with { Timeout = TimeSpan.FromSeconds(60), AttackRestarts = 1_000_000, AttackSteps = 40 };
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var r = new Prover(model, confirm, patient).Prove(DiffProperty([0, 0], [0.1, 0.1], 2, -1e6), TestContext.Current.CancellationToken);
        Assert.Equal(ProofStatus.Unknown, r.Status);
        Assert.Contains("Exp", r.Detail);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"took {sw.Elapsed}");
    }

    [Fact]
    public void A_sample_the_model_already_gets_wrong_is_reported_as_such()
    {
        var model = BoundSoundnessTests.RandomRelu(new Random(3), 2, [4], 2);
        using var confirm = new BuiltinRuntime().Load(model, new RuntimeOptions());
        double[] lo = [0.2, 0.2], hi = [0.3, 0.3];
        var y = CompiledModel.Compile(model).Run(Tensor.FromFloats([1, 2], [0.25f, 0.25f])).Floats!;
        // Y_0 − Y_1 ≤ (its value at the centre) + 1e-3: the unperturbed input violates the property.
        var r = new Prover(model, confirm, Quick).Prove(DiffProperty(lo, hi, 2, (double)y[0] - y[1] + 1e-3), TestContext.Current.CancellationToken);
        Assert.Equal(ProofStatus.Sat, r.Status);
        Assert.Contains("unperturbed", r.Detail);
        Assert.Equal([0.25f, 0.25f], r.CounterexampleX!);
    }

    [Fact]
    public void Result_file_follows_the_vnn_comp_format()
    {
        var r = new ProofResult(ProofStatus.Sat, "x", [0.5f, -1f], [2f], "builtin");
        Assert.Equal("sat\n((X_0 0.5)\n (X_1 -1)\n (Y_0 2))\n", r.ToVnnComp());
        Assert.Equal("unsat\n", new ProofResult(ProofStatus.Unsat, "").ToVnnComp());
        Assert.Equal("timeout\n", new ProofResult(ProofStatus.Timeout, "").ToVnnComp());
    }

    [Fact]
    public void A_property_with_the_wrong_number_of_inputs_is_bad_input()
    {
        var model = BoundSoundnessTests.RandomRelu(new Random(1), 3, [4], 2);
        using var confirm = new BuiltinRuntime().Load(model, new RuntimeOptions());
        var e = Assert.Throws<Gate.Core.GateInputException>(() => new Prover(model, confirm, Quick).Prove(DiffProperty([0, 0], [1, 1], 2, 0), TestContext.Current.CancellationToken));
        Assert.Contains("3 elements", e.Message);
    }

    [Fact]
    public void Pooling_cnns_and_tiny_transformers_get_proofs_and_counterexamples_not_unknown()
    {
        // Before their bound rules these graphs (MaxPool, AveragePool, Softmax, LayerNormalization, Gelu...) could
        // only ever be "unknown". Now a property with a clear margin is proved, and a violated one is found.
        var rng = new Random(12);
        for (int trial = 0; trial < 4; trial++)
        {
            var model = trial % 2 == 0 ? BoundRuleTests.PoolingCnn(rng, trial % 4) : BoundRuleTests.TinyTransformer(rng, trial % 3);
            int n = new BoundNetwork(model).InputSize;
            var centre = Enumerable.Range(0, n).Select(_ => rng.NextDouble() - 0.5).ToArray();
            double[] lo = centre.Select(v => v - 0.002).ToArray(), hi = centre.Select(v => v + 0.002).ToArray();
            var diffs = SampledDiffs(model, lo, hi, rng, 200);
            // A clear margin: the interval-only rules (Softmax, LayerNormalization, Gelu) are loose, not useless.
            double span = 5 * (diffs.Max() - diffs.Min()) + 0.01;
            using var confirm = new BuiltinRuntime().Load(model, new RuntimeOptions());
            var prover = new Prover(model, confirm, Quick with { Timeout = TimeSpan.FromSeconds(10) });
            var holds = DiffProperty(lo, hi, 3, diffs.Min() - span);
            var r = prover.Prove(holds, TestContext.Current.CancellationToken);
            CheckAnswer(model, holds, r, diffs.Min());
            Assert.True(r.Status == ProofStatus.Unsat, $"trial {trial}: {r.Status} ({r.Detail})");
            Assert.True(SampledDiffs(model, lo, hi, rng, 4000).Min() > holds.Cases[0].Constraints[0].D);
            var violated = DiffProperty(lo, hi, 3, diffs.Max());
            var r2 = prover.Prove(violated, TestContext.Current.CancellationToken);
            CheckAnswer(model, violated, r2, diffs.Min());
            Assert.True(r2.Status == ProofStatus.Sat, $"trial {trial}: {r2.Status} ({r2.Detail})");
        }
    }
}
