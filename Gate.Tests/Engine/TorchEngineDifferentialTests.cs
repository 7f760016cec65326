using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Runtime.OnnxRuntime;
using Gate.Core.Sandbox;
using Gate.Core.Tensors;
using Gate.Sandbox.Bubblewrap;
using Gate.Tests.Support;

namespace Gate.Tests.Engine;

/// <summary>
/// The torch engine against the built-in engine (outputs and input gradients) and ONNX Runtime (outputs). libtorch
/// loads only in the runner's Debian 13 rootfs, so the torch side runs as <c>gate run --runtime torch
/// --input-gradients --sandbox bubblewrap</c>: the sandbox path users take. A missing bubblewrap or rootfs skips
/// locally and fails in CI (GATE_REQUIRE_BWRAP=1); a torch engine that does not load in the rootfs always fails.
/// Tolerances (float32 both sides, different summation orders): outputs within 1e-4 × (1 + max |y|), gradients
/// within 1e-3 × (1 + max |g|) elementwise. Inputs are random (seeded), not the digits images, whose flat regions
/// make MaxPool windows tie and ReLUs sit on their kink, where either engine's choice of subgradient is right.
/// </summary>
public class TorchEngineDifferentialTests
{
    private const double OutputTolerance = 1e-4, GradientTolerance = 1e-3;

    internal static void NeedSandbox()
    {
        var why = BubblewrapBackend.WhyNotAvailable();
        if (why is null)
        {
            try { Gate.Sandbox.Rootfs.RunnerRootfs.Locate(); }
            catch (Gate.Core.GateComponentMissingException e) { why = e.Message; }
        }
        Need.Component("GATE_REQUIRE_BWRAP", why is null, $"the torch engine runs in the bubblewrap sandbox: {why}");
    }

    /// <summary>The torch engine's outputs and gradients for these inputs, computed in the sandbox.</summary>
    private static Dictionary<string, Tensor> RunTorch(string modelPath, IReadOnlyDictionary<string, Tensor> inputs, IEnumerable<string> names, params string[] extra)
    {
        var dir = TestPaths.TempDir();
        var args = new List<string> { "run", "--model", modelPath, "--runtime", "torch", "--input-gradients", "--sandbox", "bubblewrap", "--output-dir", Path.Combine(dir, "out") };
        foreach (var (name, t) in inputs)
        {
            var p = Path.Combine(dir, ModelRunExecutor.SafeName(name) + ".in.npy");
            Npy.Write(p, t);
            args.AddRange(["--input", $"{name}={p}"]);
        }
        args.AddRange(extra);
        var r = GateCli.Run(args, TimeSpan.FromMinutes(3));
        Assert.True(r.ExitCode == 0, $"gate run --runtime torch exited {r.ExitCode}\n{r.All}");
        // Read from this run's own folder by name (stdout lists the same files).
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var name in names)
        {
            var file = Path.Combine(dir, "out", ModelRunExecutor.SafeName(name) + ".npy");
            if (File.Exists(file)) result[name] = Npy.Read(file);
        }
        return result;
    }

    private static void AssertClose(Tensor expected, Tensor actual, double tolerance, string what)
    {
        Assert.True(expected.Shape.SequenceEqual(actual.Shape), $"{what}: shape {actual.ShapeString}, expected {expected.ShapeString}");
        var e = expected.ToDoubleArray();
        var a = actual.ToDoubleArray();
        double scale = 1 + e.Select(Math.Abs).DefaultIfEmpty(0).Max();
        int worst = -1;
        double worstDiff = 0;
        for (int i = 0; i < e.Length; i++)
        {
            double d = Math.Abs(e[i] - a[i]);
            if (double.IsNaN(d) || d > worstDiff) { worstDiff = double.IsNaN(d) ? double.PositiveInfinity : d; worst = i; }
        }
        var off = Enumerable.Range(0, e.Length).Where(i => !(Math.Abs(e[i] - a[i]) <= tolerance * scale)).ToList();
        Assert.True(worstDiff <= tolerance * scale,
            $"{what}: element {worst} is {(worst < 0 ? 0 : a[worst])}, expected {(worst < 0 ? 0 : e[worst])} (|diff| {worstDiff:g3} > {tolerance:g1} × {scale:g3}); " +
            $"{off.Count} of {e.Length} elements off, first at {string.Join(", ", off.Take(8))}");
    }

    /// <summary>Compares torch with the built-in engine (outputs, input gradients of the float inputs, the intermediate
    /// tensors named in <paramref name="captures"/>) and, where ORT loads, ONNX Runtime (outputs).</summary>
    internal static void Differential(string modelPath, IReadOnlyDictionary<string, Tensor> inputs, params string[] captures)
    {
        NeedSandbox();
        var model = OnnxModelLoader.Load(modelPath);
        var builtin = ModelRunExecutor.Run(model, inputs, captures, "builtin", inputGradients: true);
        Assert.True(captures.All(builtin.ContainsKey), $"{model.FileName}: the built-in engine returned no capture of {string.Join(", ", captures.Where(c => !builtin.ContainsKey(c)))}");
        var torch = RunTorch(modelPath, inputs, builtin.Keys, captures.SelectMany(c => new[] { "--capture", c }).ToArray());
        foreach (var (name, expected) in builtin)
        {
            Assert.True(torch.ContainsKey(name), $"{model.FileName}: the torch run returned no '{name}' (got {string.Join(", ", torch.Keys)})");
            AssertClose(expected, torch[name], name.StartsWith("grad:", StringComparison.Ordinal) ? GradientTolerance : OutputTolerance, $"{model.FileName}: {name}, torch vs builtin");
        }
        if (OrtLibrary.TryLoad(out _))
            foreach (var (name, expected) in ModelRunExecutor.Run(model, inputs, [], "onnxruntime"))
                AssertClose(expected, torch[name], OutputTolerance, $"{model.FileName}: {name}, torch vs onnxruntime");
    }

    /// <summary>Seeded uniform inputs in [lo, hi) for each graph input, symbolic dimensions as <paramref name="batch"/>.</summary>
    private static Dictionary<string, Tensor> RandomInputs(OnnxModel model, int batch, int seed, float lo = -1, float hi = 1)
    {
        var rng = new Random(seed);
        var inputs = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var vi in model.Graph.Inputs.Where(i => !model.Graph.Initializers.ContainsKey(i.Name)))
        {
            var shape = vi.Shape!.Select(d => (int)(d.Value ?? batch)).ToArray();
            inputs[vi.Name] = Tensor.FromFloats(shape, Enumerable.Range(0, Tensor.ElementCount(shape)).Select(_ => lo + (float)rng.NextDouble() * (hi - lo)).ToArray());
        }
        return inputs;
    }

    /// <summary>The differential on a model file with seeded random inputs (symbolic dimensions as <paramref name="batch"/>).</summary>
    internal static void Check(string modelPath, int batch, int seed = 7) =>
        Differential(modelPath, RandomInputs(OnnxModelLoader.Load(modelPath), batch, seed));

    /// <summary>
    /// Every fixture model, the CNNs included: their input gradients are what caught libtorch's oneDNN convolution
    /// defect (batch ≥ 2, output channels not a multiple of the SIMD block: wrong gradients), which the torch engine
    /// avoids by switching oneDNN off (docs/torch-onednn-defect.md).
    /// </summary>
    public static TheoryData<string> Fixtures() => new(Directory.GetFiles(Path.Combine(TestPaths.Fixtures, "models"), "*.onnx")
        .Select(Path.GetFileName).Order(StringComparer.Ordinal)!);

    /// <summary>libtorch flushes subnormals in the sandbox: inputs read as zero (DAZ), results that would be subnormal are
    /// zero (FTZ); a normal value is untouched.</summary>
    [Fact]
    public void Torch_flushes_subnormal_inputs_and_results_to_zero()
    {
        NeedSandbox();
        var b = new OnnxBuilder([1, 4]);
        var y = b.Node("Mul", [b.InputName, b.Init([0.5f], 1)]);
        b.Build(y, [1, 4]);
        var path = b.Save(Path.Combine(TestPaths.TempDir(), "half.onnx"));
        // Inputs and results by bits, never by float arithmetic or comparison in this process: a compare treats a
        // subnormal as zero on a thread that flushes, and the JIT folds float constants on the thread that compiles.
        // 1e-39 and -3e-39 (subnormal), 1, and 2e-38 (normal; its half is not).
        float[] x = new[] { 0x000AE398, unchecked((int)0x8020AB48), 0x3F800000, 0x00D9C61B }.Select(BitConverter.Int32BitsToSingle).ToArray();
        var r = RunTorch(path, new Dictionary<string, Tensor> { [b.InputName] = Tensor.FromFloats([1, 4], x) }, [y]);
        Assert.Equal([0, unchecked((int)0x80000000), 0x3F000000, 0], r[y].ToFloatArray().Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void The_fixture_list_is_not_empty() => Assert.True(Fixtures().Count >= 3 && Fixtures().Any(f => OnnxModelLoader.Load(TestPaths.FixtureModel(f)).Graph.Nodes.Any(n => n.OpType == "Conv")), "fewer than three fixtures, or none with a Conv: the differential would prove little");

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Torch_matches_the_builtin_engine_and_onnxruntime_on_every_fixture(string fixture)
    {
        var path = TestPaths.FixtureModel(fixture);
        Differential(path, RandomInputs(OnnxModelLoader.Load(path), batch: 5, seed: fixture.Length, lo: 0, hi: 16));
    }
}

/// <summary>Generated graphs for <see cref="TorchEngineDifferentialTests"/>: pooling, a ResNet-like and a ViT-like network.</summary>
public class TorchEngineGeneratedGraphTests
{
    private static void Check(string modelPath, int batch) => TorchEngineDifferentialTests.Check(modelPath, batch);

    private static float[] Rand(Random rng, int n, double scale) => Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() * 2 - 1) * scale)).ToArray();

    private static string Save(OnnxBuilder b, string output, int[] outputShape)
    {
        b.Build(output, outputShape);
        return b.Save(Path.Combine(TestPaths.TempDir(), "generated.onnx"));
    }

    /// <summary>engine: auto considers torch only for models made of WhiteBoxEngines.TorchVerifiedOperators; that list
    /// must be what these differential tests (fixtures and generated graphs) actually run, no more.</summary>
    [Fact]
    public void The_verified_operators_are_exactly_those_the_differential_tests_run()
    {
        var models = Directory.GetFiles(Path.Combine(TestPaths.Fixtures, "models"), "*.onnx")
            .Concat([MaxPoolAlone(), PoolsWithPads(), ResNetLike(), ResNetLikeFullBlocks(), ViTLike()])
            .Concat(TorchEngineTransformerTests.Models);
        var tested = models.SelectMany(p => OnnxModelLoader.Load(p).Graph.Nodes.Select(n => n.OpType)).ToHashSet(StringComparer.Ordinal);
        Assert.Equal(tested.Order(StringComparer.Ordinal), WhiteBoxEngines.TorchVerifiedOperators.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void MaxPool_alone() => Check(MaxPoolAlone(), 3);

    internal static string MaxPoolAlone()
    {
        var b = new OnnxBuilder([1, 2, 6, 6]);
        var y = b.Node("MaxPool", [b.InputName], ("kernel_shape", new long[] { 2, 2 }), ("strides", new long[] { 2, 2 }));
        return Save(b, y, [1, 2, 3, 3]);
    }

    [Fact]
    public void Pools_with_pads() => Check(PoolsWithPads(), 3);

    internal static string PoolsWithPads()
    {
        var b = new OnnxBuilder([1, 2, 6, 6]);
        var avg = b.Node("AveragePool", [b.InputName], ("kernel_shape", new long[] { 2, 2 }), ("strides", new long[] { 1, 1 }), ("pads", new long[] { 0, 0, 1, 1 }), ("count_include_pad", 1));
        var max = b.Node("MaxPool", [avg], ("kernel_shape", new long[] { 3, 3 }), ("strides", new long[] { 2, 2 }), ("pads", new long[] { 1, 1, 1, 1 }));
        return Save(b, max, [1, 2, 3, 3]);
    }

    /// <summary>
    /// A small ResNet: stem Conv+BatchNormalization+Relu, a basic residual block, a strided block with a 1×1 projection
    /// shortcut, GlobalAveragePool and a Gemm head. Channels 6, 8 and 12 and batch 4: the shapes whose input gradients
    /// libtorch's oneDNN got wrong (output channels not a multiple of 16, batch ≥ 2).
    /// </summary>
    [Fact]
    public void ResNet_like_graph() => Check(ResNetLike(), 4);

    internal static string ResNetLike()
    {
        var rng = new Random(18);
        var b = new OnnxBuilder([1, 3, 8, 8]);
        string Bn(string v, int c) => b.Node("BatchNormalization", [v,
            b.Init(Enumerable.Range(0, c).Select(_ => 0.7f + 0.6f * (float)rng.NextDouble()).ToArray(), c), b.Init(Rand(rng, c, 0.1), c),
            b.Init(Rand(rng, c, 0.1), c), b.Init(Enumerable.Range(0, c).Select(_ => 0.5f + (float)rng.NextDouble()).ToArray(), c)], ("epsilon", 1e-5f));
        string Conv(string v, int cin, int cout, int k, int stride) => b.Node("Conv", [v, b.Init(Rand(rng, cout * cin * k * k, Math.Sqrt(2.0 / (cin * k * k))), cout, cin, k, k), b.Init(Rand(rng, cout, 0.05), cout)],
            ("kernel_shape", new long[] { k, k }), ("strides", new long[] { stride, stride }), ("pads", Enumerable.Repeat((long)(k / 2), 4).ToArray()));
        string Relu(string v) => b.Node("Relu", [v]);
        var stem = Relu(Bn(Conv(b.InputName, 3, 8, 3, 1), 8));
        var block = Relu(b.Node("Add", [Bn(Conv(Relu(Bn(Conv(stem, 8, 8, 3, 1), 8)), 8, 8, 3, 1), 8), stem]));
        var down = Bn(Conv(Relu(Bn(Conv(block, 8, 12, 3, 2), 12)), 12, 12, 3, 1), 12);
        var shortcut = Bn(Conv(block, 8, 12, 1, 2), 12);
        var merged = Relu(b.Node("Add", [down, shortcut]));
        var head = b.Node("Gemm", [b.Node("Flatten", [b.Node("GlobalAveragePool", [merged])], ("axis", 1)), b.Init(Rand(rng, 6 * 12, 0.3), 6, 12), b.Init(Rand(rng, 6, 0.1), 6)], ("transB", 1));
        return Save(b, head, [1, 6]);
    }

    /// <summary>
    /// The same network with 16 and 32 channels, batch 4: every convolution's output channels fill oneDNN's 16-wide
    /// block, so the torch engine keeps oneDNN on for it (OneDnn.UnverifiedConvolution); its input gradients must still
    /// match the built-in engine's.
    /// </summary>
    [Fact]
    public void ResNet_like_graph_with_full_channel_blocks() => Check(ResNetLikeFullBlocks(), 4);

    internal static string ResNetLikeFullBlocks()
    {
        var rng = new Random(19);
        var b = new OnnxBuilder([1, 3, 8, 8]);
        // Biases through Identity, as PyTorch's exporter writes the folded BatchNorm biases it deduplicates.
        string Conv(string v, int cin, int cout, int k, int stride) => b.Node("Conv", [v, b.Init(Rand(rng, cout * cin * k * k, Math.Sqrt(2.0 / (cin * k * k))), cout, cin, k, k), b.Node("Identity", [b.Init(Rand(rng, cout, 0.05), cout)])],
            ("kernel_shape", new long[] { k, k }), ("strides", new long[] { stride, stride }), ("pads", Enumerable.Repeat((long)(k / 2), 4).ToArray()));
        string Relu(string v) => b.Node("Relu", [v]);
        var stem = Relu(Conv(b.InputName, 3, 16, 3, 1));
        var block = Relu(b.Node("Add", [Conv(Relu(Conv(stem, 16, 16, 3, 1)), 16, 16, 3, 1), stem]));
        var down = Conv(Relu(Conv(block, 16, 32, 3, 2)), 32, 32, 3, 1);
        var merged = Relu(b.Node("Add", [down, Conv(block, 16, 32, 1, 2)]));
        var head = b.Node("Gemm", [b.Node("Flatten", [b.Node("GlobalAveragePool", [merged])], ("axis", 1)), b.Init(Rand(rng, 6 * 32, 0.3), 6, 32), b.Init(Rand(rng, 6, 0.1), 6)], ("transB", 1));
        return Save(b, head, [1, 6]);
    }

    /// <summary>Patch embedding (MatMul over reshaped patches), a class token (Shape/Gather/Concat/Expand), position embeddings, one pre-norm
    /// encoder layer (LayerNormalization, two-head attention with MatMul/Transpose/Reshape/Softmax, Gelu MLP) and a
    /// head on the class token (Gather): the operators of a small ViT.</summary>
    [Fact]
    public void ViT_like_graph() => Check(ViTLike(), 3);

    internal static string ViTLike()
    {
        const int d = 8, heads = 2, tokens = 5; // 2×2 patches of a 8×8 image, plus the class token
        var rng = new Random(12);
        var b = new OnnxBuilder([1, 3, 8, 8], opset: 20);
        // Patches by Reshape/Transpose and a MatMul embedding ([N,3,2,4,2,4] → [N,4,48] → [N,4,d]).
        var split = b.Node("Transpose", [b.Node("Reshape", [b.InputName, b.InitLong([0, 3, 2, 4, 2, 4], 6)])], ("perm", new long[] { 0, 2, 4, 1, 3, 5 }));
        var flat = b.Node("Reshape", [split, b.InitLong([0, 4, 48], 3)]);
        var seq = b.Node("Add", [b.Node("MatMul", [flat, b.Init(Rand(rng, 48 * d, 0.2), 48, d)]), b.Init(Rand(rng, d, 0.1), d)]); // [N,4,d]
        var batch = b.Node("Gather", [b.Node("Shape", [b.InputName]), b.InitLong([0], 1)], ("axis", 0)); // [1]
        var clsShape = b.Node("Concat", [batch, b.InitLong([1, d], 2)], ("axis", 0));
        var cls = b.Node("Expand", [b.Init(Rand(rng, d, 0.5), 1, 1, d), clsShape]);
        var x = b.Node("Add", [b.Node("Concat", [cls, seq], ("axis", 1)), b.Init(Rand(rng, tokens * d, 0.1), 1, tokens, d)]);
        string Ln(string v) => b.Node("LayerNormalization", [v, b.Init(Enumerable.Range(0, d).Select(_ => 0.8f + 0.4f * (float)rng.NextDouble()).ToArray(), d), b.Init(Rand(rng, d, 0.1), d)], ("axis", -1), ("epsilon", 1e-5f));
        string Proj(string v, int k, int n) => b.Node("Add", [b.Node("MatMul", [v, b.Init(Rand(rng, k * n, Math.Sqrt(1.0 / k)), k, n)]), b.Init(Rand(rng, n, 0.05), n)]);
        string Heads(string v) => b.Node("Transpose", [b.Node("Reshape", [v, b.InitLong([0, tokens, heads, d / heads], 4)])], ("perm", new long[] { 0, 2, 1, 3 }));
        var h = Ln(x);
        var q = Heads(Proj(h, d, d));
        var kT = b.Node("Transpose", [Heads(Proj(h, d, d))], ("perm", new long[] { 0, 1, 3, 2 }));
        var v = Heads(Proj(h, d, d));
        var scores = b.Node("Div", [b.Node("MatMul", [q, kT]), b.Init([MathF.Sqrt(d / heads)], 1)]);
        var attn = b.Node("MatMul", [b.Node("Softmax", [scores], ("axis", -1)), v]);
        var merged = b.Node("Reshape", [b.Node("Transpose", [attn], ("perm", new long[] { 0, 2, 1, 3 })), b.InitLong([0, tokens, d], 3)]);
        x = b.Node("Add", [x, Proj(merged, d, d)]);
        var mlp = Proj(b.Node("Gelu", [Proj(Ln(x), d, 2 * d)]), 2 * d, d);
        x = b.Node("Add", [x, mlp]);
        // Where/Sigmoid/Tanh/Erf on the residual stream, so the table's other elementwise operators are covered too.
        var gated = b.Node("Where", [b.Node("Greater", [x, b.Init([0f], 1)]), b.Node("Tanh", [x]), b.Node("Mul", [b.Node("Sigmoid", [x]), b.Node("Erf", [x])])]);
        var clsOut = b.Node("Gather", [Ln(gated), b.InitLong([0], 1)], ("axis", 1)); // [N,1,d]
        var logits = b.Node("Sub", [Proj(b.Node("Flatten", [clsOut], ("axis", 1)), d, 4), b.Init([0.25f], 1)]);
        return Save(b, logits, [1, 4]);
    }
}

/// <summary>
/// Transformers as PyTorch's exporter writes them, for <see cref="TorchEngineDifferentialTests"/>: the benchmark's ViT
/// (scripts/bench-torch/models.py) shrunk and exported at opset 13 and 17 by scripts/fixtures/make_vit_test_graphs.py
/// (Gate.Tests/TestData/transformer), and the trained 2-layer nn.TransformerEncoder text classifier of examples/real-arch.
/// Unlike <see cref="TorchEngineGeneratedGraphTests.ViTLike"/> these carry the exporter's own idioms: LayerNorm
/// decomposed into ReduceMean/Pow/Sqrt (opset 13), the shape arithmetic (Shape/Gather/Unsqueeze/Concat/Cast/Div on
/// int64, ConstantOfShape/Equal/Where for expand(-1)), the fused QKV split by Split/Squeeze or by Slice with computed
/// bounds, the class token picked by a scalar Gather, and (text model) an embedding Gather on int64 token ids.
/// Tolerances are the differential's: outputs 1e-4 × (1 + max |y|), gradients 1e-3 × (1 + max |g|).
/// </summary>
public class TorchEngineTransformerTests
{
    private static string Graph(string file) => Path.Combine(TestPaths.RepoRoot, "Gate.Tests", "TestData", "transformer", file);
    private static string TokenModel => Path.Combine(TestPaths.RepoRoot, "examples", "real-arch", "transformer-tokens.onnx");

    /// <summary>The models these tests run (their operators count as verified for engine: auto).</summary>
    internal static IEnumerable<string> Models => [Graph("vit-tiny-opset13.onnx"), Graph("vit-tiny-opset17.onnx"), TokenModel, ChunkByIntegerDivision()];

    /// <summary>
    /// torch.chunk as PyTorch 1.13 exports it (nn.MultiheadAttention's fused QKV in the text transformer): chunk =
    /// (width + 2) / 3 in int64, the chunks sliced at chunk × 1, × 2, × 3. Width 9 makes the division inexact (11 / 3 = 3:
    /// bounds 3, 6, 9; a float quotient gives 3, 7, 11). The chunks are concatenated in reverse order, so wrong bounds
    /// move values (and their gradients) to other positions.
    /// </summary>
    [Fact]
    public void Chunk_bounds_by_integer_division() => TorchEngineDifferentialTests.Check(ChunkByIntegerDivision(), batch: 3);

    internal static string ChunkByIntegerDivision()
    {
        var b = new OnnxBuilder([1, 9]);
        var width = b.Node("Gather", [b.Node("Shape", [b.InputName]), b.InitLong([-1], 1)], ("axis", 0)); // [9]
        var chunk = b.Node("Div", [b.Node("Add", [width, b.InitLong([2], 1)]), b.InitLong([3], 1)]);    // [3]
        string Bound(long k) => b.Node("Mul", [chunk, b.InitLong([k], 1)]);
        string Part(string start, string end) => b.Node("Slice", [b.InputName, start, end, b.InitLong([-1], 1)]);
        var (one, two, three) = (Bound(1), Bound(2), Bound(3));
        var parts = b.Node("Concat", [Part(two, three), Part(one, two), Part(b.InitLong([0], 1), one)], ("axis", 1));
        var y = b.Node("Mul", [parts, b.Init(Enumerable.Range(1, 9).Select(i => (float)i).ToArray(), 9)]);
        b.Build(y, [1, 9]);
        return b.Save(Path.Combine(TestPaths.TempDir(), "chunk.onnx"));
    }

    /// <summary>Outputs and input gradients at batch 3, inputs uniform in [-1, 1) (the seed differs per opset).</summary>
    [Theory]
    [InlineData("vit-tiny-opset13.onnx", 13)]
    [InlineData("vit-tiny-opset17.onnx", 17)]
    public void Exported_ViT(string file, int seed) => TorchEngineDifferentialTests.Check(Graph(file), batch: 3, seed);

    /// <summary>
    /// The text transformer takes int64 token ids: no input gradient exists, so besides the logits the differential
    /// compares the embedding Gather's output and the first encoder layer's output (the residual stream a probe
    /// captures), both taken by activation capture on each engine. Batch 4 of seeded ids over the whole vocabulary
    /// (0..15; id 0 is the CLS token at position 0).
    /// </summary>
    [Fact]
    public void Exported_text_transformer_on_token_ids()
    {
        var model = OnnxModelLoader.Load(TokenModel);
        var input = model.Graph.Inputs.Single();
        Assert.Equal(DType.Int64, input.ElementType);
        int seq = (int)input.Shape![1].Value!.Value;
        var rng = new Random(5);
        var ids = Enumerable.Range(0, 4 * seq).Select(i => i % seq == 0 ? 0L : rng.Next(0, 16)).ToArray();
        TorchEngineDifferentialTests.Differential(TokenModel, new Dictionary<string, Tensor> { [input.Name] = Tensor.FromLongs([4, seq], ids) },
            "/emb/Gather_output_0", "/encoder/layers.0/norm2/Add_1_output_0");
    }
}
