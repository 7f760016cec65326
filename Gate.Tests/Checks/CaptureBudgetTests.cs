using Gate.Core.Checks;
using Gate.Core.Evidence;
using Gate.Core.Model;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Checks;

/// <summary>
/// <c>layers: auto</c> captures within a byte budget that scales with the sandbox's memory (a quarter of it):
/// too many layers for it are thinned to an evenly spaced subset that says so; named layers that do not fit are
/// refused with what they need, before anything is captured.
/// </summary>
public class CaptureBudgetTests
{
    private const int Width = 16384, Samples = 120; // one layer: 120 × 16384 doubles = 15 MiB

    /// <summary>Three wide element-wise hidden layers (h: Relu, Sigmoid, Tanh) and a 3-class head, with a 120-sample dataset.</summary>
    private static (OnnxModel Model, string Datasets, string[] Hidden) WideModel()
    {
        var b = new OnnxBuilder([1, Width]);
        var h1 = b.Node("Relu", [b.InputName]);
        var h2 = b.Node("Sigmoid", [h1]);
        var h3 = b.Node("Tanh", [h2]);
        var y = b.Dense(h3, Width, 3, new Random(1));
        var model = b.Build(y, [1, 3]);
        var dir = TestPaths.TempDir("gate-capture");
        var rng = new Random(2);
        var x = Path.Combine(dir, "x.npy");
        var labels = Path.Combine(dir, "y.npy");
        Npy.Write(x, Tensor.FromFloats([Samples, Width], Enumerable.Range(0, Samples * Width).Select(_ => (float)rng.NextDouble()).ToArray()));
        Npy.Write(labels, Tensor.FromLongs([Samples], Enumerable.Range(0, Samples).Select(i => (long)(i % 3)).ToArray(), DType.Int64));
        return (model, $"    test: {{ inputs: {x}, labels: {labels} }}", [h1, h2, h3]);
    }

    private static string PolicyWithMemory(string datasets, string check, string memory) =>
        MechanisticHarness.Policy("x", $"[-1, {Width}]", "[0.0, 1.0]", datasets, check)
            .Replace("  runtime: builtin", $"  runtime: builtin\n  sandbox: {{ isolation: process, gpu: none, limits: {{ memory: {memory}, cpus: 1, timeout: 5m }} }}");

    [Fact]
    public void Auto_keeps_within_a_quarter_of_the_sandbox_memory_and_says_what_it_left_out()
    {
        var (model, datasets, hidden) = WideModel();
        const string check = """
                - id: repr
                  type: representation
                  dataset: test
            """;
        // 64 MiB of memory: a 16 MiB budget holds one of the three 15 MiB layers, the deepest.
        var (small, _) = MechanisticHarness.Run(model, PolicyWithMemory(datasets, check, "64Mi"));
        Assert.Equal(Verdict.Pass, small.Verdict);
        Assert.Equal([hidden[2]], small.Details["layers"]!.AsArray().Select(l => (string)l!["name"]!));
        Assert.Contains("layers: auto captured 1 of 3 hidden activations", small.Coverage);
        Assert.Contains("capture budget of 16 MiB", small.Coverage);

        // The budget scales: with 256 MiB all three fit, and nothing is said.
        var (large, _) = MechanisticHarness.Run(model, PolicyWithMemory(datasets, check, "256Mi"));
        Assert.Equal(hidden, large.Details["layers"]!.AsArray().Select(l => (string)l!["name"]!));
        Assert.DoesNotContain("capture budget", large.Coverage);
    }

    [Fact]
    public void Named_layers_over_the_budget_are_refused_with_what_they_need()
    {
        var (model, datasets, hidden) = WideModel();
        var check = $"""
                - id: repr
                  type: representation
                  dataset: test
                  layers: [{hidden[0]}, {hidden[1]}]
            """;
        var e = Assert.Throws<InsufficientMemoryException>(() => MechanisticHarness.Run(model, PolicyWithMemory(datasets, check, "64Mi")));
        Assert.Contains("the 2 named layer(s) need 30 MiB of activations for 120 samples, over the capture budget of 16 MiB", e.Message);
        Assert.Contains("raise sandbox.limits.memory", e.Message);
    }

    [Fact]
    public void The_subset_is_evenly_spaced_ends_at_the_deepest_layer_and_shrinks_the_batch()
    {
        var layers = Enumerable.Range(0, 10).Select(i => ($"l{i}", 100L)).ToList();
        // 10 samples × 100 bytes = 1000 per layer; a 4000-byte budget holds 4 of 10.
        var c = MechanisticData.ChooseWithin(layers, 10, 4000, chosenByUser: false, batch: 256, "m.onnx");
        Assert.Equal(["l0", "l3", "l6", "l9"], c.Layers);
        Assert.Contains("4 of 10", c.Note);
        Assert.Equal(1, c.Batch); // a sixteenth of the budget (250 bytes) is under one 400-byte sample: one at a time
        // All ten fit 64000 bytes; a batch's captures get a sixteenth (4000 bytes) = 4 samples of 1000 bytes.
        var roomy = MechanisticData.ChooseWithin(layers, 10, 64000, chosenByUser: false, batch: 256, "m.onnx");
        Assert.Equal(10, roomy.Layers.Count);
        Assert.Equal(4, roomy.Batch);
        // Everything fits: unchanged, no note, the batch asked for.
        var all = MechanisticData.ChooseWithin(layers, 10, 1 << 24, chosenByUser: false, batch: 256, "m.onnx");
        Assert.Equal(10, all.Layers.Count);
        Assert.Null(all.Note);
        Assert.Equal(256, all.Batch);
        // Only the smallest layer fits on its own.
        var uneven = new List<(string, long)> { ("big0", 1000), ("small", 10), ("big2", 1000) };
        Assert.Equal(["small"], MechanisticData.ChooseWithin(uneven, 10, 200, false, 256, "m.onnx").Layers);
        // Nothing fits: refused, naming the smallest's need.
        Assert.Throws<InsufficientMemoryException>(() => MechanisticData.ChooseWithin(uneven, 10, 50, false, 256, "m.onnx"));
    }

    [Fact]
    public void A_capture_in_uneven_batches_fills_every_row_as_one_batch_would()
    {
        // 120 samples in batches of 7 (the last one short): each layer's matrix is filled in place, batch by batch.
        var (model, datasets, hidden) = WideModel();
        var dir = TestPaths.TempDir("gate-capture-rows");
        var policyPath = Path.Combine(dir, "policy.yaml");
        File.WriteAllText(policyPath, PolicyWithMemory(datasets, "    - { id: repr, type: representation, dataset: test }", "256Mi"));
        var policy = Gate.Core.Policy.PolicyLoader.Load(policyPath);
        var ctx = new CheckContext(model, policy, null, "no production runtime needed", new EvidenceWriter(Path.Combine(dir, "evidence")));
        var inputs = ctx.LoadDataset("test").Inputs;
        var batched = MechanisticData.CaptureActivations(ctx, inputs, hidden, CancellationToken.None, batch: 7);
        var whole = MechanisticData.CaptureActivations(ctx, inputs, hidden, CancellationToken.None, batch: 256);
        var x = inputs.ToDoubleArray();
        foreach (var l in hidden)
        {
            Assert.Equal((Samples, Width), (batched[l].Rows, batched[l].Columns));
            Assert.Equal(whole[l].Data, batched[l].Data);
        }
        // The first layer is Relu of the (non-negative) input itself: every row in its place.
        Assert.Equal(x, batched[hidden[0]].Data);
    }
}
