using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Runtime;
using Gate.Core.Tensors;
using Gate.Core.Verification;

namespace Gate.Tests.Verification;

/// <summary>β-CROWN ReLU-split bounds on <see cref="ReluChain"/> (<see cref="ReluChain.BoundSplit"/>) are sound for
/// every multiplier, never looser than CROWN when started cold, and the prover built on them never answers unsat
/// where sampling finds a violation.</summary>
public class ReluSplitTests
{
    private static (double[] c, double[] d) Diff(int m, double t)
    {
        var c = new double[m]; c[0] = 1; c[1] = -1;
        return (c, [t]); // Y_0 − Y_1 − t ≥ 0
    }

    private static OnnxModel Net(Random rng, int trial, int inputs) => trial % 2 == 0
        ? BoundSoundnessTests.RandomRelu(rng, inputs, [10, 10], 3, scale: 0.8 + rng.NextDouble())
        : ReluChainTests.AcasShaped(rng, inputs, [10, 8, 6], 3, scale: 0.8 + rng.NextDouble());

    /// <summary>
    /// Random sub-domains (random sign constraints, half of them taken from a sampled point so that the sub-domain
    /// is not empty), random warm-start α ∈ [0, 1] and β ≥ 0, with and without optimisation steps: every sampled
    /// input that satisfies the sub-domain's constraints has a float32 output whose Y_0 − Y_1 − t is ≥ the bound.
    /// A bound above some such point's value would let branch and bound close a sub-domain holding a counterexample.
    /// </summary>
    [Fact]
    public void Split_bounds_with_any_multipliers_never_exceed_a_point_of_the_sub_domain()
    {
        var rng = new Random(71);
        int checkedPoints = 0;
        for (int trial = 0; trial < 10; trial++)
        {
            int inputs = rng.Next(2, 14);
            var model = Net(rng, trial, inputs);
            var chain = ReluChain.TryBuild(model)!;
            var engine = CompiledModel.Compile(model);
            var shape = new BoundNetwork(model).InputShape;
            var lo = Enumerable.Range(0, inputs).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
            var hi = lo.Select(v => v + 0.05 + rng.NextDouble() * (trial % 3 == 0 ? 1.5 : 0.4)).ToArray();
            var samples = BoundSoundnessTests.Samples(rng, lo, hi, 600).ToArray();
            var values = samples.Select(x => { var y = engine.Run(Tensor.FromFloats(shape, x)).Floats!; return (double)y[0] - y[1]; }).ToArray();
            double t = values.Min() + 0.3 * (values.Max() - values.Min());
            var (c, d) = Diff(chain.OutputSize, t);
            var root = chain.PrepareSplits(lo, hi, c, d);
            var signsOf = samples.Select(x => chain.Signs(x.Select(v => (double)v).ToArray())).ToArray();
            for (int dom = 0; dom < 12; dom++)
            {
                var sign = new sbyte[root.Neurons];
                var from = signsOf[rng.Next(samples.Length)];
                int splits = rng.Next(1, Math.Min(8, root.Neurons) + 1);
                for (int s = 0; s < splits; s++)
                {
                    int p = rng.Next(root.Neurons);
                    sign[p] = dom % 2 == 0 ? (from[p] >= 0 ? (sbyte)1 : (sbyte)-1) : (rng.Next(2) == 0 ? (sbyte)1 : (sbyte)-1);
                }
                var alpha = Enumerable.Range(0, root.Neurons).Select(_ => (float)rng.NextDouble()).ToArray();
                var beta = Enumerable.Range(0, root.Neurons).Select(_ => (float)(rng.NextDouble() * 3)).ToArray();
                foreach (var (a, b, steps) in new[] { ((float[]?)null, (float[]?)null, 0), (alpha, beta, 0), (alpha, beta, 6), (null, null, 8) })
                {
                    var sb = chain.BoundSplit(root, new ReluChain.SplitDomain(sign, a, b, 1), steps);
                    for (int i = 0; i < samples.Length; i++)
                    {
                        bool inside = true;
                        for (int p = 0; p < sign.Length && inside; p++) inside = sign[p] == 0 || signsOf[i][p] == 0 || signsOf[i][p] == sign[p];
                        if (!inside) continue;
                        Assert.False(sb.Infeasible, $"trial {trial}: a sub-domain holding sample {i} was called empty");
                        Assert.True(values[i] - t >= sb.Lower, $"trial {trial} domain {dom} steps {steps}: bound {sb.Lower} above the value {values[i] - t} of sample {i}");
                        checkedPoints++;
                    }
                }
            }
        }
        Assert.True(checkedPoints > 5000, $"only {checkedPoints} sample/sub-domain pairs were checked");
    }

    /// <summary>Started cold, the optimised bound is never below CROWN's (steps = 0) on the same sub-domain, and
    /// β/α make it strictly tighter on a fair share of split sub-domains.</summary>
    [Fact]
    public void Optimised_split_bounds_are_never_looser_than_crown_and_often_tighter()
    {
        var rng = new Random(72);
        int tighter = 0, total = 0;
        for (int trial = 0; trial < 8; trial++)
        {
            int inputs = rng.Next(3, 14);
            var model = Net(rng, trial, inputs);
            var chain = ReluChain.TryBuild(model)!;
            var lo = Enumerable.Range(0, inputs).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
            var hi = lo.Select(v => v + 0.3 + rng.NextDouble()).ToArray();
            var (c, d) = Diff(chain.OutputSize, -0.5);
            var root = chain.PrepareSplits(lo, hi, c, d);
            // Walk down a branch-and-bound path: each level splits the neuron the bound chose.
            var dom = chain.RootDomain(root);
            for (int level = 0; level < 6; level++)
            {
                var plain = chain.BoundSplit(root, dom with { Alpha = null, Beta = null }, 0);
                var opt = chain.BoundSplit(root, dom with { Alpha = null, Beta = null }, 10);
                if (plain.Infeasible) break;
                Assert.True(opt.Lower >= plain.Lower, $"trial {trial} level {level}: optimised {opt.Lower} looser than CROWN {plain.Lower}");
                total++;
                if (opt.Lower > plain.Lower + 1e-9) tighter++;
                if (opt.Branch < 0) break;
                var (active, inactive) = ReluChain.Children(dom, opt, opt.Branch);
                dom = rng.Next(2) == 0 ? active : inactive;
            }
        }
        Assert.True(tighter > total / 4, $"optimised bounds were strictly tighter on only {tighter}/{total} sub-domains");
    }

    /// <summary>
    /// The prover on ReLU splitting (forced for small inputs, where sampling is dense): a threshold inside the sampled
    /// range is never unsat and its sat comes with a real counterexample; a threshold below every sample is
    /// proved (unsat survives 4000 further samples) on most networks.
    /// </summary>
    [Fact]
    public void Relu_split_prover_never_proves_a_violated_property_and_proves_true_ones()
    {
        var rng = new Random(73);
        int proved = 0, refuted = 0, holding = 0;
        for (int trial = 0; trial < 8; trial++)
        {
            int inputs = rng.Next(2, 6);
            var model = Net(rng, trial, inputs);
            var engine = CompiledModel.Compile(model);
            var shape = new BoundNetwork(model).InputShape;
            var lo = Enumerable.Range(0, inputs).Select(_ => rng.NextDouble() - 0.5).ToArray();
            var hi = lo.Select(v => v + 0.1 + 0.4 * rng.NextDouble()).ToArray();
            double Min(int count) => BoundSoundnessTests.Samples(rng, lo, hi, count).Select(x => { var y = engine.Run(Tensor.FromFloats(shape, x)).Floats!; return (double)y[0] - y[1]; }).Min();
            var diffs = BoundSoundnessTests.Samples(rng, lo, hi, 1000).Select(x => { var y = engine.Run(Tensor.FromFloats(shape, x)).Floats!; return (double)y[0] - y[1]; }).ToArray();
            double min = diffs.Min(), max = diffs.Max();
            using var confirm = new BuiltinRuntime().Load(model, new RuntimeOptions());
            // Attacks off, so that branch and bound itself must decide.
            var prover = new Prover(model, confirm, new ProverOptions
            {
                Timeout = TimeSpan.FromSeconds(4), InputSplitMaxDims = 0, AttackRestarts = 0, ReluSplitAttackRestarts = 0, Seed = (ulong)trial + 1,
            });
            var c = new double[3]; c[0] = 1; c[1] = -1;
            VnnProperty Prop(double t) => new("test", inputs, 3, [new VnnCase(lo, hi, [new OutputConstraint(c, t, 1, 1)])]); // Y_0 − Y_1 ≤ t
            double tv = min + 0.1 * (max - min);
            var r1 = prover.Prove(Prop(tv), TestContext.Current.CancellationToken);
            Assert.NotEqual(ProofStatus.Unsat, r1.Status);
            void AssertReal(ProofResult r, double t)
            {
                var x = r.CounterexampleX!;
                for (int i = 0; i < inputs; i++) Assert.InRange(x[i], lo[i], hi[i]);
                var y = engine.Run(Tensor.FromFloats(shape, x)).Floats!;
                Assert.True((double)y[0] - y[1] <= t, $"counterexample gives {y[0] - y[1]} > {t}");
            }
            if (r1.Status == ProofStatus.Sat) { refuted++; AssertReal(r1, tv); }
            double th = min - 0.1 * (max - min) - 1e-3;
            var r2 = prover.Prove(Prop(th), TestContext.Current.CancellationToken);
            if (r2.Status == ProofStatus.Sat) AssertReal(r2, th);
            if (r2.Status == ProofStatus.Unsat) { proved++; Assert.True(Min(4000) > th); }
            if (r2.Status != ProofStatus.Sat) holding++;
            TestContext.Current.TestOutputHelper?.WriteLine($"trial {trial}: {r1.Status} / {r2.Status} {r2.Detail}" +
                (r2.Status == ProofStatus.Unknown ? $" (threshold {th:G6}, min of 20000 more samples {Min(20000):G6})" : ""));
        }
        Assert.True(refuted >= 6, $"only {refuted}/8 violated properties were refuted");
        // A threshold below every sample can still be violated (then sat, with a real counterexample, is right);
        // 6 of 8 are proved at this commit, two end in a fully split sub-domain that stays open (unknown).
        Assert.True(proved >= 5, $"only {proved}/{holding} properties without a counterexample were proved");
    }
}
