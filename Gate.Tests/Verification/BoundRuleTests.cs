using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Model.Proto;
using Gate.Core.Tensors;
using Gate.Core.Verification;
using Gate.Tests.Support;
using Google.Protobuf;

namespace Gate.Tests.Verification;

/// <summary>
/// The bound rules of the layers pooling CNNs and small transformers have (MaxPool, AveragePool, GlobalAveragePool,
/// GlobalMaxPool, ReduceMean/Sum/Max, Mul and Div by constants, Mul of two variables, Concat, Transpose, Slice,
/// Pad, Squeeze/Unsqueeze, Softmax, Where with a constant mask, LayerNormalization and its pieces, Erf, Gelu): the float32 outputs the engine
/// computes at sampled points always lie inside the IBP and CROWN bounds (which include the float32 error bound),
/// for wide boxes and for single points, and the bounds stay narrow on single points (sound, not useless).
/// </summary>
public class BoundRuleTests
{
    private static float[] Rs(Random rng, int n, double s = 1) => Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() * 2 - 1) * s)).ToArray();

    /// <summary>Conv → MaxPool(2×2/2) → Relu → AveragePool(2×2/1, padded, with and without the pad count) →
    /// Flatten → Gemm; or Conv → GlobalAveragePool / GlobalMaxPool → Flatten → Gemm.</summary>
    internal static OnnxModel PoolingCnn(Random rng, int variant)
    {
        var b = new OnnxBuilder([1, 1, 6, 6], opset: 13);
        var conv = b.Node("Conv", [b.InputName, b.Init(Rs(rng, 3 * 9, 0.7), 3, 1, 3, 3), b.Init(Rs(rng, 3, 0.2), 3)], ("pads", new long[] { 1, 1, 1, 1 }));
        string feat; int width;
        if (variant < 2)
        {
            var mp = b.Node("MaxPool", [conv], ("kernel_shape", new long[] { 2, 2 }), ("strides", new long[] { 2, 2 }));
            var relu = b.Node("Relu", [mp]);
            var ap = b.Node("AveragePool", [relu], ("kernel_shape", new long[] { 2, 2 }), ("strides", new long[] { 1, 1 }),
                ("pads", new long[] { 1, 1, 0, 0 }), ("count_include_pad", variant));
            feat = b.Node("Flatten", [ap], ("axis", 1)); width = 3 * 3 * 3;
        }
        else
        {
            var gp = b.Node(variant == 2 ? "GlobalAveragePool" : "GlobalMaxPool", [conv]);
            feat = b.Node("Flatten", [gp], ("axis", 1)); width = 3;
        }
        return b.Build(b.Dense(feat, width, 3, rng), [1, 3]);
    }

    /// <summary>
    /// A transformer-like block on 4 tokens of width 3 (input [1, 12]): projections (MatMul), Transpose, a causal mask (Where), Softmax
    /// attention weights, Mul/Div by constants, Concat, Slice, Pad, Unsqueeze/Squeeze, LayerNormalization (the
    /// operator, or its pieces: ReduceMean, Sub, Mul of two variables, ReduceSum), Gelu or Erf, and a Gemm head.
    /// </summary>
    internal static OnnxModel TinyTransformer(Random rng, int variant)
    {
        var b = new OnnxBuilder([1, 12], opset: 20);
        var tok = b.Node("Reshape", [b.InputName, b.InitLong([1, 4, 3], 3)]);
        var q = b.Node("MatMul", [tok, b.Init(Rs(rng, 9, 0.8), 3, 3)]);
        var k = b.Node("MatMul", [tok, b.Init(Rs(rng, 9, 0.8), 3, 3)]);
        var kt = b.Node("Transpose", [k], ("perm", new long[] { 0, 2, 1 }));
        var scores = b.Node("Div", [b.Node("MatMul", [q, kt]), b.Init([1.7320508f], 1)]);
        // A causal attention mask as exporters emit it: Where(constant bool mask, scores, large negative).
        var causal = b.Node("Cast", [b.InitLong([1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1], 4, 4)], ("to", 9));
        var masked = b.Node("Where", [causal, scores, b.Init([-30f], 1)]);
        var att = b.Node("Softmax", [masked], ("axis", -1));                       // [1,4,4]
        var v = b.Node("Mul", [tok, b.Init(Rs(rng, 3, 1.2), 3)]);                   // by a constant
        var mixed = b.Node("MatMul", [att, v]);                                     // att·v: two variables (McCormick)
        var cat = b.Node("Concat", [mixed, b.Node("Slice", [tok, b.InitLong([0], 1), b.InitLong([2], 1), b.InitLong([2], 1)])], ("axis", 2)); // [1,4,5]
        string normed;
        if (variant % 2 == 0)
            normed = b.Node("LayerNormalization", [cat, b.Init(Rs(rng, 5, 1.5), 5), b.Init(Rs(rng, 5, 0.3), 5)], ("axis", -1), ("epsilon", 1e-3f));
        else
        {
            var mean = b.Node("ReduceMean", [cat, b.InitLong([-1], 1)]);
            var c = b.Node("Sub", [cat, mean]);
            var sq = b.Node("ReduceSum", [b.Node("Mul", [c, c]), b.InitLong([-1], 1)]); // Σ c², a product of two variables
            normed = b.Node("Add", [b.Node("Mul", [c, b.Init([0.5f], 1)]), b.Node("Mul", [sq, b.Init([0.1f], 1)])]);
        }
        string act = variant switch
        {
            0 => b.Node("Gelu", [normed]),
            1 => b.Node("Erf", [normed]),
            _ => GeluTanh(b, normed),
        };
        var padded = b.Node("Pad", [act, b.InitLong([0, 0, 0, 0, 0, 1], 6), b.Init([0.25f])]);       // [1,4,6]
        var un = b.Node("Unsqueeze", [padded, b.InitLong([1], 1)]);
        var sq2 = b.Node("Squeeze", [un, b.InitLong([1], 1)]);
        var flat = b.Node("Reshape", [sq2, b.InitLong([1, 24], 2)]);
        return b.Build(b.Dense(flat, 24, 3, rng), [1, 3]);
    }

    private static string GeluTanh(OnnxBuilder b, string x)
    {
        var output = "gelu_tanh";
        b.Node("Gelu", [x], [output], "gelu_tanh", new AttributeProto { Name = "approximate", Type = 3, S = ByteString.CopyFromUtf8("tanh") });
        return output;
    }

    public static TheoryData<int> Variants => new() { 0, 1, 2, 3 };

    [Theory, MemberData(nameof(Variants))]
    public void Sampled_outputs_of_pooling_cnns_lie_within_ibp_and_crown_bounds(int variant)
    {
        var rng = new Random(100 + variant);
        for (int trial = 0; trial < 6; trial++)
        {
            var model = PoolingCnn(rng, variant);
            var net = new BoundNetwork(model);
            Assert.Null(net.Unsupported);
            var (lo, hi) = BoundSoundnessTests.RandomBox(rng, net.InputSize, trial % 2 == 0 ? 0.05 : 0.7);
            BoundSoundnessTests.AssertInside(model, net, lo, hi, rng, alphaSteps: trial % 3);
        }
    }

    [Theory, MemberData(nameof(Variants))]
    public void Sampled_outputs_of_tiny_transformers_lie_within_ibp_and_crown_bounds(int variant)
    {
        var rng = new Random(200 + variant);
        for (int trial = 0; trial < 6; trial++)
        {
            var model = TinyTransformer(rng, variant % 3);
            var net = new BoundNetwork(model);
            Assert.Null(net.Unsupported);
            var (lo, hi) = BoundSoundnessTests.RandomBox(rng, net.InputSize, trial % 2 == 0 ? 0.05 : 1.2);
            BoundSoundnessTests.AssertInside(model, net, lo, hi, rng, alphaSteps: trial % 3);
        }
    }

    [Fact]
    public void Bounds_of_single_points_contain_the_float32_output_and_stay_narrow()
    {
        var rng = new Random(31);
        for (int trial = 0; trial < 16; trial++)
        {
            var model = trial % 2 == 0 ? PoolingCnn(rng, trial / 2 % 4) : TinyTransformer(rng, trial / 2 % 3);
            var net = new BoundNetwork(model);
            var engine = CompiledModel.Compile(model);
            var x = Enumerable.Range(0, net.InputSize).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            var xd = x.Select(v => (double)v).ToArray();
            var y = engine.Run(Tensor.FromFloats(net.InputShape, x)).Floats!;
            var (c, d) = BoundSoundnessTests.PlusMinusIdentity(net.OutputSize);
            var crown = net.SpecLower(xd, xd, c, d).Lower;
            var ibp = net.SpecLowerIbp(xd, xd, c, d);
            for (int j = 0; j < net.OutputSize; j++)
            {
                Assert.InRange(y[j], crown[j], -crown[net.OutputSize + j]);
                Assert.InRange(y[j], ibp[j], -ibp[net.OutputSize + j]);
                double width = -crown[net.OutputSize + j] - crown[j];
                Assert.True(width < 1e-2 * (1 + Math.Abs(y[j])), $"trial {trial}: width {width} at y={y[j]}");
            }
        }
    }

    [Fact]
    public void Element_wise_rules_hold_on_dense_grids_including_gelus_minimum()
    {
        // Gelu is not monotone (minimum near −0.752); Erf's reference implementation is an approximation: a dense
        // grid of float32 points in boxes placed around those spots must stay inside the interval and CROWN bounds.
        foreach (var (op, tanh) in new[] { ("Gelu", false), ("Gelu", true), ("Erf", false), ("Softmax", false) })
        {
            var b = new OnnxBuilder([1, 3], opset: 20);
            string y;
            if (tanh) y = GeluTanh(b, b.InputName);
            else y = op == "Softmax" ? b.Node(op, [b.InputName], ("axis", -1)) : b.Node(op, [b.InputName]);
            var model = b.Build(y, [1, 3]);
            var net = new BoundNetwork(model);
            Assert.Null(net.Unsupported);
            foreach (var (l0, u0) in new[] { (-0.9, -0.6), (-0.76, -0.74), (-3.0, 2.0), (0.1, 0.4), (-0.3, 0.3), (-8.0, -5.0), (4.0, 9.0) })
            {
                double[] lo = [l0, l0 - 0.1, l0 + 0.05], hi = [u0, u0 - 0.05, u0 + 0.1];
                BoundSoundnessTests.AssertInside(model, net, lo, hi, new Random(1), alphaSteps: 0);
            }
        }
    }

    [Fact]
    public void Max_pool_crown_rule_is_exact_where_one_element_dominates_its_window()
    {
        // x = [a, b] pooled by a 1×2 window with a ≥ 5 > b: the output is a, and both bounds must say so.
        var b = new OnnxBuilder([1, 1, 1, 2], opset: 13);
        var mp = b.Node("MaxPool", [b.InputName], ("kernel_shape", new long[] { 1, 2 }));
        var model = b.Build(b.Node("Flatten", [mp], ("axis", 1)), [1, 1]);
        var net = new BoundNetwork(model);
        var (c, d) = BoundSoundnessTests.PlusMinusIdentity(1);
        var s = net.SpecLower([5, -1], [6, 4], c, d).Lower;
        Assert.InRange(s[0], 5 - 1e-5, 5);
        Assert.InRange(-s[1], 6, 6 + 1e-5);
    }
}
