using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Engine;

/// <summary>
/// The engine recycles intermediate buffers between forward passes: what a pass hands out (outputs, captured
/// tensors) must stay owned by the caller, and recycled (dirty) buffers must not leak into later results.
/// </summary>
public class BufferReuseTests
{
    private static readonly OnnxModel Cnn = OnnxModelLoader.Load(TestPaths.FixtureModel("digits-cnn.onnx"));

    private static Tensor Images(int start, int n) => Npy.Read(TestPaths.FixtureData("digits_test_x.npy")).SliceBatch(start, n);

    [Fact]
    public void Outputs_and_captures_survive_later_passes_and_match_a_fresh_engine()
    {
        var engine = CompiledModel.Compile(Cnn);
        // Every Relu output is a large intermediate that would otherwise go back to the pool.
        var captured = Cnn.Graph.Nodes.Where(n => n.OpType == "Relu").Select(n => n.Outputs[0]).ToArray();
        var first = engine.Forward(new Dictionary<string, Tensor> { ["input"] = Images(0, 64) }, capture: captured);
        var snapshot = first.Values.ToDictionary(kv => kv.Key, kv => kv.Value.Floats!.ToArray());

        // Later passes on other images (same shapes, so the same recycled buffer sizes) and without capture.
        for (int start = 64; start < 256; start += 64)
        {
            var inputs = new Dictionary<string, Tensor> { ["input"] = Images(start, 64) };
            var reused = engine.Run(inputs)["logits"];
            var fresh = CompiledModel.Compile(Cnn).Run(inputs)["logits"];
            Assert.Equal(fresh.Floats!, reused.Floats!);
        }

        foreach (var (name, values) in snapshot) Assert.Equal(values, first[name].Floats!);
        var independent = CompiledModel.Compile(Cnn).Forward(new Dictionary<string, Tensor> { ["input"] = Images(0, 64) }, capture: captured);
        foreach (var name in snapshot.Keys) Assert.Equal(independent[name].Floats!, first[name].Floats!);
    }

    private static IReadOnlyDictionary<string, Tensor> Seed(int n)
    {
        var seed = new float[n * 10];
        for (int i = 0; i < n; i++) seed[i * 10 + i % 10] = 1;
        return new Dictionary<string, Tensor> { ["logits"] = Tensor.FromFloats([n, 10], seed) };
    }

    [Fact]
    public void Gradients_survive_disposed_passes_and_match_a_fresh_engine()
    {
        var engine = CompiledModel.Compile(Cnn);
        Tensor grad, logits;
        using (var pass = engine.Forward(new Dictionary<string, Tensor> { ["input"] = Images(0, 64) }, recordForBackward: true))
        {
            grad = engine.Backward(pass, Seed(64), ["input"])["input"];
            logits = pass["logits"];
        }
        var gradSnapshot = grad.Floats!.ToArray();
        var logitSnapshot = logits.Floats!.ToArray();

        // The disposed tape's buffers and the backward scratch are reused by these passes.
        for (int start = 64; start < 256; start += 64)
        {
            var inputs = new Dictionary<string, Tensor> { ["input"] = Images(start, 64) };
            using var pass = engine.Forward(inputs, recordForBackward: true);
            var reused = engine.Backward(pass, Seed(64), ["input"])["input"];
            var freshEngine = CompiledModel.Compile(Cnn);
            var freshPass = freshEngine.Forward(inputs, recordForBackward: true);
            Assert.Equal(freshEngine.Backward(freshPass, Seed(64), ["input"])["input"].Floats!, reused.Floats!);
        }

        Assert.Equal(gradSnapshot, grad.Floats!);
        Assert.Equal(logitSnapshot, logits.Floats!);
    }

    [Fact]
    public void Backward_on_a_disposed_pass_is_refused()
    {
        var engine = CompiledModel.Compile(Cnn);
        var pass = engine.Forward(new Dictionary<string, Tensor> { ["input"] = Images(0, 4) }, recordForBackward: true);
        pass.Dispose();
        Assert.Throws<ObjectDisposedException>(() => engine.Backward(pass, Seed(4), ["input"]));
    }
}
