using FsCheck;
using FsCheck.Fluent;
using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Tensors;
using static Gate.Tests.Engine.SingleNodeModel;

namespace Gate.Tests.Engine;

/// <summary>
/// For every differentiable operator: the engine's vector-Jacobian product equals central finite differences of
/// L = Σ r·y (r random) in float64, on random shapes and values drawn by FsCheck from a seed. Inputs avoid the
/// measure-zero kinks of piecewise ops only by being continuous random values (the chance of landing within the
/// step h of a kink is about 1e-6 per element).
/// </summary>
public class GradientTests
{
    private const double H = 1e-6, Rtol = 1e-4, Atol = 1e-6;

    private sealed record Input(string Name, Tensor Value, bool Wrt);
    private sealed record Case(string Op, NodeAttribute[] Attrs, Input[] Inputs, int Outputs = 1, long Opset = 18);

    private static int[] Shape(Random r, int minRank = 1, int maxRank = 4, int maxDim = 4) =>
        Enumerable.Range(0, r.Next(minRank, maxRank + 1)).Select(_ => r.Next(1, maxDim + 1)).ToArray();
    private static Tensor Rand(Random r, int[] s, double lo = -2, double hi = 2) =>
        Tensor.FromDoubles(s, Enumerable.Range(0, Tensor.ElementCount(s)).Select(_ => lo + (hi - lo) * r.NextDouble()).ToArray());
    private static Input X(Random r, int[] s, double lo = -2, double hi = 2) => new("x", Rand(r, s, lo, hi), true);
    private static Input Const(string name, params long[] v) => new(name, Tensor.FromLongs([v.Length], v), false);
    /// <summary>A shape that broadcasts to <paramref name="s"/>: a suffix with some axes set to 1.</summary>
    private static int[] BroadcastableTo(Random r, int[] s) => s.Skip(r.Next(0, s.Length + 1)).Select(d => r.Next(2) == 0 ? 1 : d).ToArray();

    private static Case Unary(string op, Random r, double lo = -2, double hi = 2, params NodeAttribute[] attrs) => new(op, attrs, [X(r, Shape(r), lo, hi)]);
    private static Case Binary(string op, Random r, double lo = -2, double hi = 2)
    {
        var s = Shape(r);
        bool swap = r.Next(2) == 0;
        var a = new Input("a", Rand(r, s, lo, hi), true); var b = new Input("b", Rand(r, BroadcastableTo(r, s), lo, hi), true);
        return new(op, [], swap ? [b with { Name = "a" }, a with { Name = "b" }] : [a, b]);
    }
    private static Case Pool(string op, Random r)
    {
        int rank = r.Next(1, 4);
        var spatial = Enumerable.Range(0, rank).Select(_ => r.Next(3, 6)).ToArray();
        var kernel = spatial.Select(d => (long)r.Next(1, 4)).ToArray();
        var attrs = new List<NodeAttribute> { Ints("kernel_shape", kernel), Ints("strides", kernel.Select(_ => (long)r.Next(1, 3)).ToArray()) };
        if (r.Next(2) == 0) attrs.Add(Ints("pads", Enumerable.Range(0, 2 * rank).Select(i => (long)Math.Min(r.Next(0, 2), kernel[i % rank] - 1)).ToArray()));
        if (op == "AveragePool") attrs.Add(Int("count_include_pad", r.Next(2)));
        return new(op, attrs.ToArray(), [X(r, [r.Next(1, 3), r.Next(1, 3), .. spatial])]);
    }

    private static readonly Dictionary<string, Func<Random, Case>> Cases = new()
    {
        ["Abs"] = r => Unary("Abs", r), ["Neg"] = r => Unary("Neg", r), ["Exp"] = r => Unary("Exp", r),
        ["Log"] = r => Unary("Log", r, 0.5, 3), ["Sqrt"] = r => Unary("Sqrt", r, 0.5, 3), ["Reciprocal"] = r => Unary("Reciprocal", r, 0.5, 3),
        ["Erf"] = r => Unary("Erf", r), ["Relu"] = r => Unary("Relu", r), ["Softplus"] = r => Unary("Softplus", r),
        ["Elu"] = r => Unary("Elu", r, -2, 2, Float("alpha", 0.7f)), ["Selu"] = r => Unary("Selu", r),
        ["LeakyRelu"] = r => Unary("LeakyRelu", r, -2, 2, Float("alpha", 0.1f)), ["HardSigmoid"] = r => Unary("HardSigmoid", r, -4, 4),
        ["Gelu"] = r => Unary("Gelu", r, -3, 3, Str("approximate", r.Next(2) == 0 ? "none" : "tanh")),
        ["Identity"] = r => Unary("Identity", r), ["Dropout"] = r => Unary("Dropout", r),
        ["Cast"] = r => Unary("Cast", r, -2, 2, Int("to", (long)DType.Float64)),
        ["CastLike"] = r => new("CastLike", [], [X(r, Shape(r)), new("like", Tensor.FromDoubles([1], [0]), false)]),
        ["Add"] = r => Binary("Add", r), ["Sub"] = r => Binary("Sub", r), ["Mul"] = r => Binary("Mul", r),
        ["Div"] = r => Binary("Div", r, 0.5, 2), ["Pow"] = r => Binary("Pow", r, 0.5, 2), ["PRelu"] = r =>
        {
            var s = Shape(r);
            return new("PRelu", [], [X(r, s), new("slope", Rand(r, BroadcastableTo(r, s)), true)]);
        },
        ["Max"] = r => Variadic("Max", r), ["Min"] = r => Variadic("Min", r), ["Sum"] = r => Variadic("Sum", r),
        ["Where"] = r =>
        {
            var s = Shape(r);
            var c = Tensor.FromLongs(BroadcastableTo(r, s) is var cs ? cs : s, Enumerable.Range(0, Tensor.ElementCount(cs)).Select(_ => (long)r.Next(2)).ToArray(), DType.Bool);
            return new("Where", [], [new("c", c, false), new("a", Rand(r, s), true), new("b", Rand(r, BroadcastableTo(r, s)), true)]);
        },
        ["Clip"] = r => new("Clip", [], [X(r, Shape(r)), new("lo", Tensor.FromDoubles([], [-0.8]), false), new("hi", Tensor.FromDoubles([], [0.9]), false)]),
        ["MatMul"] = r =>
        {
            int m = r.Next(1, 4), k = r.Next(1, 4), n = r.Next(1, 4);
            var batch = Shape(r, 0, 2, 3);
            return new("MatMul", [], [new("a", Rand(r, [.. batch, m, k]), true), new("b", Rand(r, [.. BroadcastableTo(r, batch), k, n]), true)]);
        },
        ["Gemm"] = r =>
        {
            int m = r.Next(1, 4), k = r.Next(1, 4), n = r.Next(1, 4); bool ta = r.Next(2) == 0, tb = r.Next(2) == 0;
            return new("Gemm", [Int("transA", ta ? 1 : 0), Int("transB", tb ? 1 : 0), Float("alpha", 0.7f), Float("beta", 1.3f)],
                [new("a", Rand(r, ta ? [k, m] : [m, k]), true), new("b", Rand(r, tb ? [n, k] : [k, n]), true), new("c", Rand(r, BroadcastableTo(r, [m, n])), true)]);
        },
        ["Conv"] = r =>
        {
            int rank = r.Next(1, 4), g = r.Next(1, 3), cg = r.Next(1, 3), mg = r.Next(1, 3);
            var kernel = Enumerable.Range(0, rank).Select(_ => r.Next(1, 4)).ToArray();
            var dil = kernel.Select(_ => r.Next(1, 3)).ToArray();
            var spatial = kernel.Select((k, i) => (k - 1) * dil[i] + r.Next(1, 4)).ToArray();
            var attrs = new[] { Int("group", g), Ints("strides", kernel.Select(_ => (long)r.Next(1, 3)).ToArray()),
                Ints("pads", Enumerable.Range(0, 2 * rank).Select(_ => (long)r.Next(0, 2)).ToArray()), Ints("dilations", dil.Select(d => (long)d).ToArray()) };
            return new("Conv", attrs, [X(r, [r.Next(1, 3), g * cg, .. spatial]), new("w", Rand(r, [g * mg, cg, .. kernel]), true), new("bias", Rand(r, [g * mg]), true)]);
        },
        ["ConvTranspose"] = r =>
        {
            int rank = r.Next(1, 4), g = r.Next(1, 3), cg = r.Next(1, 3), mg = r.Next(1, 3);
            var kernel = Enumerable.Range(0, rank).Select(_ => r.Next(1, 4)).ToArray();
            var dil = kernel.Select(_ => r.Next(1, 3)).ToArray();
            var strides = kernel.Select(_ => r.Next(1, 4)).ToArray();
            var spatial = kernel.Select(_ => r.Next(1, 4)).ToArray();
            // output_padding below the stride (ONNX's rule); pads only where the output keeps at least one element.
            var outPad = strides.Select(s => r.Next(0, s)).ToArray();
            var natural = Enumerable.Range(0, rank).Select(i => strides[i] * (spatial[i] - 1) + outPad[i] + (kernel[i] - 1) * dil[i] + 1).ToArray();
            var pads = Enumerable.Range(0, 2 * rank).Select(i => natural[i % rank] > 2 ? (long)r.Next(0, 2) : 0).ToArray();
            var attrs = new[] { Int("group", g), Ints("strides", strides.Select(v => (long)v).ToArray()), Ints("pads", pads),
                Ints("dilations", dil.Select(d => (long)d).ToArray()), Ints("output_padding", outPad.Select(v => (long)v).ToArray()) };
            return new("ConvTranspose", attrs, [X(r, [r.Next(1, 3), g * cg, .. spatial]), new("w", Rand(r, [g * cg, mg, .. kernel]), true), new("bias", Rand(r, [g * mg]), true)]);
        },
        ["Conv2DFloat64ViaAutoPad"] = r => new("Conv", [Str("auto_pad", "SAME_UPPER"), Ints("strides", 2, 1)],
            [X(r, [2, 2, 5, 4]), new("w", Rand(r, [3, 2, 3, 2]), true)]),
        ["MaxPool"] = r => Pool("MaxPool", r), ["AveragePool"] = r => Pool("AveragePool", r),
        ["GlobalAveragePool"] = r => new("GlobalAveragePool", [], [X(r, Shape(r, 3, 4))]),
        ["GlobalMaxPool"] = r => new("GlobalMaxPool", [], [X(r, Shape(r, 3, 4))]),
        ["Softmax"] = r => { var s = Shape(r); return new("Softmax", [Int("axis", r.Next(-s.Length, s.Length))], [X(r, s)]); },
        ["LogSoftmax"] = r => { var s = Shape(r); return new("LogSoftmax", [Int("axis", r.Next(-s.Length, s.Length))], [X(r, s)]); },
        ["LayerNormalization"] = r =>
        {
            var s = Shape(r, 1, 4); int axis = r.Next(0, s.Length); var norm = s.Skip(axis).ToArray();
            if (Tensor.ElementCount(norm) < 2) { s = [.. s, 3]; norm = [.. norm, 3]; }
            return new("LayerNormalization", [Int("axis", axis), Float("epsilon", 1e-3f)], [X(r, s), new("scale", Rand(r, norm), true), new("bias", Rand(r, norm), true)]);
        },
        ["InstanceNormalization"] = r =>
        {
            int c = r.Next(1, 4);
            return new("InstanceNormalization", [Float("epsilon", 1e-3f)], [X(r, [r.Next(1, 3), c, r.Next(2, 5), r.Next(1, 4)]), new("scale", Rand(r, [c]), true), new("bias", Rand(r, [c]), true)]);
        },
        ["ReduceSum"] = r => Reduce("ReduceSum", r), ["ReduceMean"] = r => Reduce("ReduceMean", r), ["ReduceMax"] = r => Reduce("ReduceMax", r), ["ReduceProd"] = r => Reduce("ReduceProd", r),
        ["Transpose"] = r => { var s = Shape(r); return new("Transpose", [Ints("perm", s.Select((_, i) => (long)i).OrderBy(_ => r.Next()).ToArray())], [X(r, s)]); },
        ["Reshape"] = r => { var s = Shape(r); return new("Reshape", [], [X(r, s), Const("shape", -1)]); },
        ["Flatten"] = r => { var s = Shape(r); return new("Flatten", [Int("axis", r.Next(0, s.Length + 1))], [X(r, s)]); },
        ["Squeeze"] = r => { var s = Shape(r, 1, 3); return new("Squeeze", [], [X(r, [.. s, 1]), Const("axes", s.Length)]); },
        ["Unsqueeze"] = r => { var s = Shape(r); return new("Unsqueeze", [], [X(r, s), Const("axes", r.Next(-s.Length - 1, s.Length + 1))]); },
        ["Slice"] = r =>
        {
            var s = Shape(r, 1, 3, 6); int ax = r.Next(s.Length); bool neg = r.Next(2) == 0;
            return new("Slice", [], [X(r, s), Const("starts", neg ? -1 : 0), Const("ends", neg ? -s[ax] - 1 : s[ax]), Const("axes", ax), Const("steps", neg ? -1 : r.Next(1, 3))]);
        },
        ["Gather"] = r =>
        {
            var s = Shape(r); int ax = r.Next(s.Length);
            return new("Gather", [Int("axis", ax)], [X(r, s), new("i", Tensor.FromLongs([3], [.. Enumerable.Range(0, 3).Select(_ => (long)r.Next(-s[ax], s[ax]))]), false)]);
        },
        ["Tile"] = r => { var s = Shape(r, 1, 3); return new("Tile", [], [X(r, s), Const("reps", s.Select(_ => (long)r.Next(1, 3)).ToArray())]); },
        ["Expand"] = r => { var s = Shape(r, 1, 3); return new("Expand", [], [X(r, BroadcastableTo(r, s)), Const("shape", s.Select(d => (long)d).ToArray())]); },
        ["Pad"] = r =>
        {
            var s = Shape(r, 1, 3, 5); var mode = new[] { "constant", "edge", "reflect", "wrap" }[r.Next(4)];
            var pads = Enumerable.Range(0, 2 * s.Length).Select(i => (long)r.Next(0, Math.Min(3, s[i % s.Length]))).ToArray();
            return new("Pad", [Str("mode", mode)], [X(r, s), Const("pads", pads)]);
        },
        ["Concat"] = r =>
        {
            var s = Shape(r); int ax = r.Next(s.Length); var s2 = (int[])s.Clone(); s2[ax] = r.Next(1, 4);
            return new("Concat", [Int("axis", ax)], [new("a", Rand(r, s), true), new("b", Rand(r, s2), true)]);
        },
        // Owned by the formal-verification work; tested here as soon as they are registered.
        ["Sigmoid"] = r => Unary("Sigmoid", r, -4, 4), ["Tanh"] = r => Unary("Tanh", r, -3, 3),
        ["BatchNormalization"] = r =>
        {
            int c = r.Next(1, 4);
            return new("BatchNormalization", [Float("epsilon", 1e-3f)], [X(r, [r.Next(1, 3), c, r.Next(1, 4), r.Next(1, 4)]),
                new("scale", Rand(r, [c]), true), new("bias", Rand(r, [c]), true), new("mean", Rand(r, [c]), false), new("var", Rand(r, [c], 0.5, 2), false)]);
        },
        ["Split"] = r =>
        {
            var s = Shape(r); int ax = r.Next(s.Length); s[ax] += 2;
            return new("Split", [Int("axis", ax)], [X(r, s), Const("split", 1, s[ax] - 1)], Outputs: 2);
        },
    };

    private static Case Variadic(string op, Random r)
    {
        var s = Shape(r);
        return new(op, [], Enumerable.Range(0, r.Next(1, 4)).Select(i => new Input($"v{i}", Rand(r, i == 0 ? s : BroadcastableTo(r, s)), true)).ToArray());
    }

    private static Case Reduce(string op, Random r)
    {
        var s = Shape(r);
        var axes = Enumerable.Range(0, s.Length).Where(_ => r.Next(2) == 0).Select(a => (long)a).ToArray();
        var inputs = axes.Length > 0 ? new[] { X(r, s), Const("axes", axes) } : [X(r, s)];
        return new(op, [Int("keepdims", r.Next(2))], inputs);
    }

    /// <summary>Every case whose operator is registered (the Conv variant is named after the case, not the op).</summary>
    public static TheoryData<string> Ops => new(Cases.Keys.Where(k => OperatorRegistry.Find("", k) is not null || k.StartsWith("Conv", StringComparison.Ordinal)).OrderBy(k => k));

    [Fact]
    public void Every_registered_differentiable_operator_has_a_gradient_case()
    {
        // QuantizeLinear/DequantizeLinear: their gradient is a straight-through estimator by design, not the derivative
        // of a step function, so finite differences cannot check it; QuantizationTests checks it against its definition.
        string[] straightThrough = ["QuantizeLinear", "DequantizeLinear"];
        // com.microsoft FusedGemm lives outside the default domain these single-node cases build; FusedGemmTests checks
        // its gradient against central finite differences for every activation it fuses.
        string[] ownFiniteDifferences = ["FusedGemm"];
        var missing = OperatorRegistry.Operators.Where(o => o.IsDifferentiable && !Cases.ContainsKey(o.OpType) && !straightThrough.Contains(o.OpType)
            && !ownFiniteDifferences.Contains(o.OpType)).Select(o => o.OpType).OrderBy(n => n).ToList();
        Assert.True(missing.Count == 0, "no finite-difference case for: " + string.Join(", ", missing));
    }

    [Theory]
    [MemberData(nameof(Ops))]
    public void Vjp_matches_central_finite_differences(string name)
    {
        var property = Prop.ForAll(Gen.Choose(0, 1 << 30).ToArbitrary(), seed => CheckCase(Cases[name](new Random(seed)), seed));
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(12), property);
    }

    private static bool CheckCase(Case c, int seed)
    {
        var model = SingleNodeModel.Create(c.Op, c.Attrs, c.Inputs.Select(i => (i.Name, i.Value.Type)).ToList(), c.Outputs, c.Opset);
        var engine = CompiledModel.Compile(model);
        var inputs = c.Inputs.ToDictionary(i => i.Name, i => i.Value);
        var rng = new Random(seed ^ 0x5eed);
        var pass = engine.Forward(inputs, recordForBackward: true);
        var seeds = engine.OutputNames.ToDictionary(n => n, n => Rand(rng, pass[n].Shape, -1, 1));
        double Loss(Dictionary<string, Tensor> x)
        {
            var y = engine.Run(x);
            return seeds.Sum(kv => kv.Value.Doubles!.Zip(y[kv.Key].ToDoubleArray(), (a, b) => a * b).Sum());
        }
        var wrt = c.Inputs.Where(i => i.Wrt).Select(i => i.Name).ToList();
        var grads = engine.Backward(pass, seeds, wrt);
        foreach (var name in wrt)
        {
            var x = inputs[name].Doubles!;
            var g = grads[name];
            Assert.True(g.Shape.SequenceEqual(inputs[name].Shape), $"{c.Op} seed {seed}: gradient of '{name}' has shape {g.ShapeString}, input {inputs[name].ShapeString}");
            for (int i = 0; i < x.Length; i++)
            {
                var plus = (double[])x.Clone(); plus[i] += H;
                var minus = (double[])x.Clone(); minus[i] -= H;
                double numeric = (Loss(new(inputs) { [name] = Tensor.FromDoubles(inputs[name].Shape, plus) }) -
                                  Loss(new(inputs) { [name] = Tensor.FromDoubles(inputs[name].Shape, minus) })) / (2 * H);
                double analytic = g.GetDouble(i);
                Assert.True(Math.Abs(analytic - numeric) <= Atol + Rtol * Math.Abs(numeric),
                    $"{c.Op} seed {seed}: d/d{name}[{i}] analytic {analytic:R}, numeric {numeric:R} (input shapes {string.Join(" ", c.Inputs.Select(v => v.Value.ShapeString))})");
            }
        }
        return true;
    }
}
