using Gate.Core;
using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Engine;

/// <summary>com.microsoft FusedGemm (ORT's optimiser output): the same values and gradients as Gemm then the activation.</summary>
public class FusedGemmTests
{
    private static readonly float[] W = Enumerable.Range(0, 15).Select(i => (float)Math.Sin(i * 1.3)).ToArray();
    private static readonly float[] B = [0.1f, -0.2f, 0.05f];

    private static CompiledModel Model(string? activation, bool fused)
    {
        var b = new OnnxBuilder([1, 5], input: "x");
        string w = b.Init(W, 3, 5), bias = b.Init(B, 3);
        string y;
        if (fused)
        {
            y = b.Node("Gemm", ["x", w, bias], ("transB", 1));
            var node = b.Graph.Node[^1];
            node.OpType = "FusedGemm";
            node.Domain = "com.microsoft";
            if (activation is not null)
                node.Attribute.Add(new Gate.Core.Model.Proto.AttributeProto { Name = "activation", Type = 3, S = Google.Protobuf.ByteString.CopyFromUtf8(activation) });
            b.Model.OpsetImport.Add(new Gate.Core.Model.Proto.OperatorSetIdProto { Domain = "com.microsoft", Version = 1 });
        }
        else
        {
            y = b.Node("Gemm", ["x", w, bias], ("transB", 1));
            if (activation is not null) y = b.Node(activation, [y]);
        }
        return CompiledModel.Compile(b.Build(y, [1, 3]));
    }

    private static (float[] Y, float[] G) ValueAndGradient(CompiledModel m, float[] x, int n)
    {
        var o = m.OutputNames[0];
        using var pass = m.Forward(new Dictionary<string, Tensor> { ["x"] = Tensor.FromFloats([n, 5], x) }, [o], recordForBackward: true);
        var seed = Tensor.FromFloats([n, 3], Enumerable.Range(0, n * 3).Select(i => (float)(i % 3 - 1) + 0.5f).ToArray());
        return (pass[o].ToFloatArray(), m.Backward(pass, new Dictionary<string, Tensor> { [o] = seed }, ["x"])["x"].ToFloatArray());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Relu")]
    [InlineData("Sigmoid")]
    [InlineData("Tanh")]
    public void Matches_gemm_then_activation_and_finite_differences(string? activation)
    {
        var x = Enumerable.Range(0, 20).Select(i => (float)Math.Cos(i * 0.7) * 2).ToArray();
        var fused = Model(activation, fused: true);
        var (yf, gf) = ValueAndGradient(fused, x, 4);
        var (yr, gr) = ValueAndGradient(Model(activation, fused: false), x, 4);
        Assert.Equal(yr, yf);
        Assert.Equal(gr, gf);
        // Central differences of Σ seed·y in float64 around each input element.
        for (int k = 0; k < x.Length; k++)
        {
            double Objective(float[] xs)
            {
                var (y, _) = ValueAndGradient(fused, xs, 4);
                return Enumerable.Range(0, y.Length).Sum(i => (double)y[i] * ((i % 3 - 1) + 0.5));
            }
            var plus = (float[])x.Clone(); plus[k] += 1e-2f;
            var minus = (float[])x.Clone(); minus[k] -= 1e-2f;
            double fd = (Objective(plus) - Objective(minus)) / 2e-2;
            Assert.True(Math.Abs(fd - gf[k]) < 2e-2, $"element {k}: finite difference {fd}, gradient {gf[k]}");
        }
    }

    [Fact]
    public void An_activation_with_parameters_is_refused_when_the_model_is_compiled_with_the_reason()
    {
        var e = Assert.ThrowsAny<GateInputException>(() => Model("LeakyRelu", fused: true));
        Assert.Contains("activation 'LeakyRelu' is not implemented", e.Message);
    }
}
