using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Runtime;
using Gate.Core.Runtime.OnnxRuntime;
using Gate.Core.Tensors;
using Gate.Tests.Runtime;
using Gate.Tests.Support;

namespace Gate.Tests.Model;

/// <summary>
/// The declared normalisation composed into the graph (<see cref="Preprocessing.Compose"/>): the composed model on
/// pixels equals the network on normalised inputs, on both runtimes, and its gradient with respect to the pixels is
/// the chain rule through it (checked against finite differences), which is what makes ε a per-pixel budget.
/// </summary>
public class PreprocessingTests
{
    private static string ResNet => Path.Combine(TestPaths.RepoRoot, "examples", "real-arch", "resnet8-shapes.onnx");
    private static readonly Preprocessing Prep = new() { Channels = "bgr", Scale = 255, Mean = [103.9, 116.8, 123.7], Std = [57.4, 57.1, 58.4] };

    private static Tensor Pixels(int n) => Npy.Read(Path.Combine(TestPaths.RepoRoot, "examples", "real-arch", "shapes_test_x.npy")).SliceBatch(0, n);

    /// <summary>What the composed graph must compute, written out: BGR order, ×scale, −mean, ÷std.</summary>
    private static Tensor ByHand(Tensor x)
    {
        var f = x.Floats!.ToArray(); var o = new float[f.Length];
        int plane = x.Shape[2] * x.Shape[3];
        for (int i = 0; i < f.Length; i++)
        {
            int c = i / plane % 3, src = i + (2 - 2 * c) * plane; // channel c of BGR is channel 2 − c of RGB
            o[i] = (float)((f[src] * (float)Prep.Scale - (float)Prep.Mean![c]) / (float)Prep.Std![c]);
        }
        return Tensor.FromFloats(x.Shape, o);
    }

    [Fact]
    public void Composed_model_on_pixels_equals_the_network_on_normalised_inputs_on_both_runtimes()
    {
        var m = OnnxModelLoader.Load(ResNet);
        var composed = Preprocessing.Compose(m, [("input", Prep)]);
        Assert.Equal(m.Sha256, composed.Sha256); // the decision names the file, not the composition
        Assert.Equal(["Gather", "Mul", "Sub", "Div"], composed.Graph.Nodes.Take(4).Select(n => n.OpType));
        var x = Pixels(6);
        var expected = CompiledModel.Compile(m).Run(new Dictionary<string, Tensor> { ["input"] = ByHand(x) })["logits"];
        var actual = CompiledModel.Compile(composed).Run(new Dictionary<string, Tensor> { ["input"] = x })["logits"];
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected.Floats![i], actual.Floats![i], 1e-3f);

        OrtTestSupport.RequireOrt();
        using var ort = new OnnxRuntimeInference().Load(composed, new RuntimeOptions(IntraOpThreads: 1));
        var viaOrt = ort.Run(new Dictionary<string, Tensor> { ["input"] = x })["logits"];
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected.Floats![i], viaOrt.Floats![i], 1e-3f);
    }

    [Fact]
    public void Pixel_gradients_through_the_preprocessing_match_finite_differences_and_the_chain_rule()
    {
        var m = OnnxModelLoader.Load(ResNet);
        var composed = CompiledModel.Compile(Preprocessing.Compose(m, [("input", Prep)]));
        var x = Pixels(2);
        var seed = Tensor.FromFloats([2, 4], [1, -1, 0.5f, 2, -1, 1, 1, 0]);
        using var pass = composed.Forward(new Dictionary<string, Tensor> { ["input"] = x }, recordForBackward: true);
        var g = composed.Backward(pass, new Dictionary<string, Tensor> { ["logits"] = seed }, ["input"])["input"];

        // Chain rule: d/dpixel[c_rgb] = d/dnormalised[c_bgr] · scale / std[c_bgr], with c_bgr = 2 − c_rgb.
        var network = CompiledModel.Compile(m);
        using var pass2 = network.Forward(new Dictionary<string, Tensor> { ["input"] = ByHand(x) }, recordForBackward: true);
        var gn = network.Backward(pass2, new Dictionary<string, Tensor> { ["logits"] = seed }, ["input"])["input"];
        int plane = 32 * 32;
        for (int i = 0; i < g.Length; i += 97)
        {
            int c = i / plane % 3, bgr = 2 - c, j = i + (bgr - c) * plane;
            double expected = gn.GetDouble(j) * Prep.Scale / Prep.Std![bgr];
            Assert.True(Math.Abs(g.GetDouble(i) - expected) <= 1e-3 * (1 + Math.Abs(expected)), $"element {i}: {g.GetDouble(i)} vs chain rule {expected}");
        }

        double Objective(int index, float delta)
        {
            var v = x.Floats!.ToArray(); v[index] += delta;
            var y = composed.Run(new Dictionary<string, Tensor> { ["input"] = Tensor.FromFloats(x.Shape, v) })["logits"];
            double s = 0;
            for (int i = 0; i < y.Length; i++) s += (double)y.Floats![i] * seed.Floats![i];
            return s;
        }
        const float h = 1e-3f;
        var rng = new Random(11);
        foreach (var index in Enumerable.Range(0, 10).Select(_ => rng.Next(x.Length)))
        {
            double fd = (Objective(index, h) - Objective(index, -h)) / (2 * h);
            double an = g.GetDouble(index);
            Assert.True(Math.Abs(fd - an) <= 5e-2 + 5e-2 * Math.Abs(fd), $"pixel {index}: backward {an}, finite difference {fd}");
        }
    }

    [Fact]
    public void Nothing_to_compose_leaves_the_model_as_it_is()
    {
        var m = OnnxModelLoader.Load(ResNet);
        Assert.Same(m, Preprocessing.Compose(m, [("input", new Preprocessing { Resize = [36], CenterCrop = [32, 32] })]));
    }
}
