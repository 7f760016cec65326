using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Tensors;
using Gate.Core.Verification;
using Gate.Tests.Support;

namespace Gate.Tests.Verification;

/// <summary>
/// Soundness of IBP and CROWN: for random small networks and random input boxes, the float32 outputs that the
/// engine computes at sampled points (vertices, centre, uniform) always lie inside the bounds.
/// </summary>
public class BoundSoundnessTests
{
    internal static OnnxModel RandomRelu(Random rng, int inputs, int[] hidden, int outputs, double scale = 1)
    {
        var b = new OnnxBuilder([1, inputs]);
        string x = b.InputName; int width = inputs;
        foreach (var h in hidden) { x = b.Node("Relu", [b.Dense(x, width, h, rng, scale)]); width = h; }
        return b.Build(b.Dense(x, width, outputs, rng, scale), [1, outputs]);
    }

    /// <summary>A network using every operator with bound rules: Conv, BatchNormalization, Tanh, Flatten, MatMul,
    /// Add, Sub, Sigmoid, Reshape, Identity, Relu, Gemm.</summary>
    internal static OnnxModel MixedNetwork(Random rng)
    {
        float R(double s = 1) => (float)((rng.NextDouble() * 2 - 1) * s);
        float[] Rs(int n, double s = 1) => Enumerable.Range(0, n).Select(_ => R(s)).ToArray();
        var b = new OnnxBuilder([1, 1, 4, 4], opset: 15);
        var conv = b.Node("Conv", [b.InputName, b.Init(Rs(2 * 9, 0.6), 2, 1, 3, 3), b.Init(Rs(2, 0.2), 2)], ("pads", new long[] { 1, 1, 1, 1 }));
        var bn = b.Node("BatchNormalization", [conv, b.Init(Rs(2), 2), b.Init(Rs(2, 0.3), 2), b.Init(Rs(2, 0.3), 2),
            b.Init(Enumerable.Range(0, 2).Select(_ => (float)(0.5 + rng.NextDouble())).ToArray(), 2)], ("epsilon", 1e-5f));
        var t = b.Node("Tanh", [bn]);
        var f = b.Node("Flatten", [t], ("axis", 1));
        var mm = b.Node("MatMul", [f, b.Init(Rs(32 * 6, 0.4), 32, 6)]);
        var add = b.Node("Add", [mm, b.Init(Rs(6, 0.2), 6)]);
        var relu = b.Node("Relu", [add]);
        var sub = b.Node("Sub", [relu, b.Init(Rs(6, 0.2), 1, 6)]);
        var sig = b.Node("Sigmoid", [sub]);
        var re = b.Node("Reshape", [sig, b.InitLong([1, -1], 2)]);
        var id = b.Node("Identity", [re]);
        var skip = b.Node("Add", [id, relu]); // two variable operands
        return b.Build(b.Dense(skip, 6, 3, rng), [1, 3]);
    }

    internal static (double[] lo, double[] hi) RandomBox(Random rng, int n, double maxWidth)
    {
        var lo = new double[n]; var hi = new double[n];
        for (int i = 0; i < n; i++) { double c = rng.NextDouble() * 2 - 1, w = rng.NextDouble() * maxWidth; lo[i] = c - w; hi[i] = c + w; }
        return (lo, hi);
    }

    internal static IEnumerable<float[]> Samples(Random rng, double[] lo, double[] hi, int count)
    {
        int n = lo.Length;
        yield return lo.Select(v => (float)v).ToArray();
        yield return hi.Select(v => (float)v).ToArray();
        for (int k = 0; k < count; k++)
        {
            var x = new float[n];
            for (int i = 0; i < n; i++)
            {
                double v = k % 3 == 0 ? (rng.Next(2) == 0 ? lo[i] : hi[i]) : lo[i] + rng.NextDouble() * (hi[i] - lo[i]);
                float f = (float)v;
                if (f < lo[i]) f = MathF.BitIncrement(f);
                if (f > hi[i]) f = MathF.BitDecrement(f);
                x[i] = f;
            }
            yield return x;
        }
    }

    /// <summary>C = [I; −I], d = 0: rows give lower bounds of y and of −y.</summary>
    internal static (double[] c, double[] d) PlusMinusIdentity(int m)
    {
        var c = new double[2 * m * m];
        for (int j = 0; j < m; j++) { c[j * m + j] = 1; c[(m + j) * m + j] = -1; }
        return (c, new double[2 * m]);
    }

    internal static void AssertInside(OnnxModel model, BoundNetwork net, double[] lo, double[] hi, Random rng, int alphaSteps)
    {
        var engine = CompiledModel.Compile(model);
        int m = net.OutputSize;
        var (c, d) = PlusMinusIdentity(m);
        var crown = net.SpecLower(lo, hi, c, d, null, alphaSteps).Lower;
        var ibp = net.SpecLowerIbp(lo, hi, c, d);
        foreach (var x in Samples(rng, lo, hi, 60))
        {
            var y = engine.Run(Tensor.FromFloats(net.InputShape, x)).Floats!;
            for (int j = 0; j < m; j++)
            {
                Assert.True(y[j] >= ibp[j] && y[j] <= -ibp[m + j], $"IBP: y[{j}]={y[j]} outside [{ibp[j]}, {-ibp[m + j]}]");
                Assert.True(y[j] >= crown[j] && y[j] <= -crown[m + j], $"CROWN: y[{j}]={y[j]} outside [{crown[j]}, {-crown[m + j]}]");
            }
        }
    }

    [Fact]
    public void Sampled_outputs_of_random_relu_networks_lie_within_ibp_and_crown_bounds()
    {
        var rng = new Random(11);
        for (int trial = 0; trial < 25; trial++)
        {
            var model = RandomRelu(rng, rng.Next(1, 6), [rng.Next(2, 9), rng.Next(2, 9)], rng.Next(1, 4), scale: 0.5 + 2 * rng.NextDouble());
            var net = new BoundNetwork(model);
            Assert.Null(net.Unsupported);
            var (lo, hi) = RandomBox(rng, net.InputSize, trial % 5 == 0 ? 3 : 0.5);
            AssertInside(model, net, lo, hi, rng, alphaSteps: trial % 2 == 0 ? 0 : 3);
        }
    }

    [Fact]
    public void Sampled_outputs_of_networks_with_every_supported_operator_lie_within_bounds()
    {
        var rng = new Random(5);
        for (int trial = 0; trial < 8; trial++)
        {
            var model = MixedNetwork(rng);
            var net = new BoundNetwork(model);
            Assert.Null(net.Unsupported);
            var (lo, hi) = RandomBox(rng, net.InputSize, trial % 2 == 0 ? 0.05 : 0.6);
            AssertInside(model, net, lo, hi, rng, alphaSteps: 2);
        }
    }

    [Fact]
    public void Bounds_of_a_single_point_contain_the_float32_output_despite_rounding()
    {
        // A degenerate box is where outward rounding and the float32 margin matter: the exact real value is
        // attained, and float32 evaluation differs from it by rounding. Large weights magnify the differences.
        var rng = new Random(3);
        for (int trial = 0; trial < 20; trial++)
        {
            // Weights 30× too large make cancellation (and so the worst-case float32 margin) extreme.
            bool extreme = trial % 3 == 0;
            var model = extreme ? RandomRelu(rng, 5, [20, 20, 20], 4, scale: 30) : trial % 3 == 1 ? RandomRelu(rng, 5, [20, 20, 20], 4) : MixedNetwork(rng);
            var net = new BoundNetwork(model);
            var engine = CompiledModel.Compile(model);
            var x = Enumerable.Range(0, net.InputSize).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            var xd = x.Select(v => (double)v).ToArray();
            var y = engine.Run(Tensor.FromFloats(net.InputShape, x)).Floats!;
            var (c, d) = PlusMinusIdentity(net.OutputSize);
            var crown = net.SpecLower(xd, xd, c, d).Lower;
            var ibp = net.SpecLowerIbp(xd, xd, c, d);
            for (int j = 0; j < net.OutputSize; j++)
            {
                Assert.InRange(y[j], crown[j], -crown[net.OutputSize + j]);
                Assert.InRange(y[j], ibp[j], -ibp[net.OutputSize + j]);
                // …and the margin stays small: the bound is not sound by being useless.
                double width = -crown[net.OutputSize + j] - crown[j];
                Assert.True(width < (extreme ? 5e-2 : 2e-3) * (1 + Math.Abs(y[j])), $"trial {trial}: width {width} at y={y[j]}, ibp width {-ibp[net.OutputSize + j] - ibp[j]}");
            }
        }
    }

    [Fact]
    public void Crown_is_never_looser_than_ibp_on_relu_networks_and_usually_tighter()
    {
        var rng = new Random(21);
        int tighter = 0, total = 0;
        for (int trial = 0; trial < 20; trial++)
        {
            var model = RandomRelu(rng, 4, [10, 10, 10], 3);
            var net = new BoundNetwork(model);
            var (lo, hi) = RandomBox(rng, 4, 0.4);
            var (c, d) = PlusMinusIdentity(3);
            var crown = net.SpecLower(lo, hi, c, d, null, 2).Lower;
            var ibp = net.SpecLowerIbp(lo, hi, c, d);
            for (int s = 0; s < crown.Length; s++)
            {
                Assert.True(crown[s] >= ibp[s], $"row {s}: CROWN {crown[s]} looser than IBP {ibp[s]}");
                total++;
                if (crown[s] > ibp[s] + 1e-9) tighter++;
            }
        }
        Assert.True(tighter > total / 2, $"CROWN was strictly tighter on only {tighter}/{total} rows");
    }

    [Fact]
    public void Relu_splits_cover_the_domain_and_each_side_is_sound()
    {
        var rng = new Random(8);
        var model = RandomRelu(rng, 3, [8, 8], 2);
        var net = new BoundNetwork(model);
        var engine = CompiledModel.Compile(model);
        var (lo, hi) = RandomBox(rng, 3, 0.8);
        var (c, d) = PlusMinusIdentity(2);
        var root = net.SpecLower(lo, hi, c, d);
        var (tensor, b) = root.ReluInputs.First(kv => kv.Value.Lower.Zip(kv.Value.Upper).Any(p => p.First < 0 && p.Second > 0));
        int idx = Enumerable.Range(0, b.Length).First(i => b.Lower[i] < 0 && b.Upper[i] > 0);
        var pre = engine.Model.Graph.Nodes.First(n => n.OpType == "Relu" && n.Inputs[0] == tensor).Inputs[0];
        var sides = new[] { true, false }.ToDictionary(a => a, a => net.SpecLower(lo, hi, c, d, [new NeuronSplit(tensor, idx, a)]));
        foreach (var x in Samples(rng, lo, hi, 80))
        {
            var pass = engine.Forward(new Dictionary<string, Tensor> { ["x"] = Tensor.FromFloats([1, 3], x) }, capture: [pre]);
            var y = pass[engine.OutputNames[0]].Floats!;
            bool active = pass[pre].Floats![idx] >= 0;
            var sb = sides[active];
            for (int j = 0; j < 2; j++) Assert.InRange(y[j], sb.Lower[j], -sb.Lower[2 + j]);
        }
    }
}
