using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Tensors;
using Gate.Core.Verification;
using Gate.Tests.Support;

namespace Gate.Tests.Verification;

/// <summary>The batched bounds of <see cref="ReluChain"/> (input-split branch and bound) are sound.</summary>
public class ReluChainTests
{
    /// <summary>ACAS Xu's graph shape: Sub (input normalisation), Flatten, then MatMul + Add + Relu layers.</summary>
    internal static OnnxModel AcasShaped(Random rng, int inputs, int[] hidden, int outputs, double scale = 1)
    {
        float R(double s) => (float)((rng.NextDouble() * 2 - 1) * s);
        var b = new OnnxBuilder([1, 1, 1, inputs], opset: 8);
        var x = b.Node("Sub", [b.InputName, b.Init(Enumerable.Range(0, inputs).Select(_ => R(0.3)).ToArray(), 1, 1, 1, inputs)]);
        x = b.Node("Flatten", [x], ("axis", (object)1));
        int width = inputs;
        var sizes = hidden.Append(outputs).ToArray();
        for (int li = 0; li < sizes.Length; li++)
        {
            int h = sizes[li];
            var w = Enumerable.Range(0, width * h).Select(_ => R(scale * Math.Sqrt(6.0 / (width + h)))).ToArray();
            x = b.Node("Add", [b.Node("MatMul", [x, b.Init(w, width, h)]), b.Init(Enumerable.Range(0, h).Select(_ => R(0.3)).ToArray(), h)]);
            if (li < sizes.Length - 1) x = b.Node("Relu", [x]);
            width = h;
        }
        return b.Build(x, [1, outputs]);
    }

    private static void AssertSound(OnnxModel model, Random rng, int boxes, double maxWidth)
    {
        var chain = ReluChain.TryBuild(model);
        Assert.NotNull(chain);
        var engine = CompiledModel.Compile(model);
        var net = new BoundNetwork(model);
        int n = chain.InputSize, m = chain.OutputSize;
        var (c, d) = BoundSoundnessTests.PlusMinusIdentity(m);
        int rows = d.Length;
        var lo = new double[boxes * n]; var hi = new double[boxes * n];
        for (int i = 0; i < lo.Length; i++) { double ctr = rng.NextDouble() * 2 - 1, w = rng.NextDouble() * maxWidth; lo[i] = ctr - w; hi[i] = ctr + w; }
        var bounds = chain.Bound(boxes, lo, hi, c, d);
        for (int b = 0; b < boxes; b++)
        {
            var bl = lo.AsSpan(b * n, n).ToArray(); var bh = hi.AsSpan(b * n, n).ToArray();
            foreach (var x in BoundSoundnessTests.Samples(rng, bl, bh, 80))
            {
                var y = engine.Run(Tensor.FromFloats(net.InputShape, x)).Floats!;
                for (int j = 0; j < m; j++)
                {
                    double lower = bounds.Lower[b * rows + j], upper = -bounds.Lower[b * rows + m + j];
                    Assert.True(y[j] >= lower && y[j] <= upper, $"box {b}: y[{j}]={y[j]} outside [{lower}, {upper}]");
                }
            }
        }
    }

    [Fact]
    public void Batched_bounds_of_random_relu_chains_contain_sampled_float32_outputs()
    {
        var rng = new Random(11);
        for (int trial = 0; trial < 12; trial++)
        {
            int inputs = rng.Next(1, 6);
            var hidden = Enumerable.Range(0, rng.Next(1, 4)).Select(_ => rng.Next(2, 12)).ToArray();
            var model = trial % 2 == 0
                ? BoundSoundnessTests.RandomRelu(rng, inputs, hidden, rng.Next(1, 4), scale: 0.5 + 2 * rng.NextDouble())
                : AcasShaped(rng, inputs, hidden, rng.Next(1, 4), scale: 0.5 + 2 * rng.NextDouble());
            AssertSound(model, rng, boxes: rng.Next(1, 9), maxWidth: trial % 3 == 0 ? 2 : 0.3);
        }
    }

    [Fact]
    public void Bounds_of_degenerate_boxes_contain_the_float32_output_despite_rounding()
    {
        var rng = new Random(12);
        var model = AcasShaped(rng, 5, [50, 50, 50, 50, 50, 50], 5);
        AssertSound(model, rng, boxes: 4, maxWidth: 0);
    }

    [Fact]
    public void Only_plain_dense_relu_chains_are_recognised()
    {
        var rng = new Random(13);
        Assert.NotNull(ReluChain.TryBuild(AcasShaped(rng, 5, [8, 8], 3)));
        var sig = new OnnxBuilder([1, 3]);
        Assert.Null(ReluChain.TryBuild(sig.Build(sig.Dense(sig.Node("Sigmoid", [sig.Dense(sig.InputName, 3, 4, rng)]), 4, 2, rng), [1, 2])));
        Assert.Null(ReluChain.TryBuild(BoundSoundnessTests.MixedNetwork(rng)));
    }

    [Fact]
    public void A_bias_that_broadcasts_into_a_matrix_is_not_taken_for_an_elementwise_one()
    {
        // [1,3] + [3,1] broadcasts to [3,3]: nine outputs, not three biased ones. Read as a chain it would be a
        // different network (and the bounds wrong for the real one).
        var b = new OnnxBuilder([1, 3]);
        var mm = b.Node("MatMul", [b.InputName, b.Init([1, 0, 0, 0, 1, 0, 0, 0, 1], 3, 3)]);
        var add = b.Node("Add", [mm, b.Init([0.5f, -1f, 2f], 3, 1)]);
        var model = b.Build(b.Node("Flatten", [add], ("axis", (object)0)), [1, 9]);
        Assert.Null(ReluChain.TryBuild(model));
        // The same bias shaped [3] (or [1,3]) is element-wise and accepted.
        var ok = new OnnxBuilder([1, 3]);
        var mm2 = ok.Node("MatMul", [ok.InputName, ok.Init([1, 0, 0, 0, 1, 0, 0, 0, 1], 3, 3)]);
        Assert.NotNull(ReluChain.TryBuild(ok.Build(ok.Node("Add", [mm2, ok.Init([0.5f, -1f, 2f], 1, 3)]), [1, 3])));
    }

    [Fact]
    public void Alpha_crown_bounds_are_sound_never_looser_than_crown_and_usually_tighter()
    {
        // The same boxes with and without the optimised lower slopes: every α bound contains the sampled float32
        // outputs (AssertSound runs with the default steps) and is ≥ the plain CROWN bound row by row.
        var rng = new Random(41);
        int tighter = 0, total = 0;
        for (int trial = 0; trial < 6; trial++)
        {
            var model = AcasShaped(rng, 5, [20, 20, 20], 5);
            AssertSound(model, new Random(trial), 4, 0.6);
            var chain = ReluChain.TryBuild(model)!;
            var (c, d) = BoundSoundnessTests.PlusMinusIdentity(chain.OutputSize);
            var lo = new double[4 * 5]; var hi = new double[4 * 5];
            for (int i = 0; i < lo.Length; i++) { double ctr = rng.NextDouble() * 2 - 1, w = 0.1 + rng.NextDouble() * 0.5; lo[i] = ctr - w; hi[i] = ctr + w; }
            chain.AlphaSteps = 0;
            var plain = chain.Bound(4, lo, hi, c, d).Lower;
            chain.AlphaSteps = 6;
            var alpha = chain.Bound(4, lo, hi, c, d).Lower;
            for (int i = 0; i < plain.Length; i++)
            {
                Assert.True(alpha[i] >= plain[i], $"row {i}: α-CROWN {alpha[i]} looser than CROWN {plain[i]}");
                total++;
                if (alpha[i] > plain[i] + 1e-9) tighter++;
            }
        }
        Assert.True(tighter > total / 4, $"α-CROWN was strictly tighter on only {tighter}/{total} rows");
    }
}
