using Gate.Core;
using Gate.Core.Model;
using Gate.Core.Runtime;
using Gate.Core.Runtime.OnnxRuntime;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Runtime;

/// <summary>The binding itself: library lookup, API table, metadata, tensor marshalling.</summary>
public class OrtBindingTests
{
    [Fact]
    public void Missing_library_names_both_ways_to_provide_it()
    {
        var empty = TestPaths.TempDir("ort-missing");
        Assert.Null(OrtLibrary.Locate(null, empty, out var reason));
        Assert.Contains("./scripts/setup.sh", reason);
        Assert.Contains("GATE_ORT_LIB", reason);

        Assert.Null(OrtLibrary.Locate(Path.Combine(empty, "nope.so"), empty, out reason));
        Assert.Contains("nope.so", reason);
        Assert.Contains("./scripts/setup.sh", reason);
    }

    [Fact]
    public void Override_wins_and_cache_is_found_walking_up()
    {
        var root = TestPaths.TempDir("ort-locate");
        var cached = Path.Combine(root, OrtLibrary.CacheRelativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(cached)!);
        File.WriteAllBytes(cached, [0]);
        var deep = Directory.CreateDirectory(Path.Combine(root, "a", "b", "c")).FullName;
        Assert.Equal(cached, OrtLibrary.Locate(null, deep, out _));
        var mine = Path.Combine(root, "my-ort.so");
        File.WriteAllBytes(mine, [0]);
        Assert.Equal(mine, OrtLibrary.Locate(mine, deep, out _));
    }

    [Fact]
    public void Production_factory_is_registered_when_Gate_Core_loads()
    {
        // Installed by the module initializer; creating the runtime object must not need the native library.
        Assert.NotNull(ProductionRuntime.OnnxRuntimeFactory);
        Assert.Equal("onnxruntime", ProductionRuntime.OnnxRuntimeFactory!().Name);
    }

    [Fact]
    public void Api_reports_the_pinned_version_and_the_cpu_provider()
    {
        OrtTestSupport.RequireOrt();
        var api = OrtLibrary.Api;
        if (Environment.GetEnvironmentVariable(OrtLibrary.PathVariable) is null)
            Assert.Equal(OrtLibrary.PinnedVersion, api.Version);
        Assert.Contains(OrtSession.CpuProvider, api.AvailableProviders());
    }

    [Fact]
    public void Session_reports_names_types_shapes_and_runtime_info()
    {
        OrtTestSupport.RequireOrt();
        var model = OnnxModelLoader.Load(TestPaths.FixtureModel("digits-cnn.onnx"));
        using var ort = OrtSession.Create(model.Bytes, model.FileName, new OrtSessionSettings(IntraOpThreads: 1));
        var input = Assert.Single(ort.Inputs);
        Assert.Equal("input", input.Name);
        Assert.Equal(DType.Float32, input.ElementType);
        Assert.Equal([-1, 1, 8, 8], input.Shape!);
        var output = Assert.Single(ort.Outputs);
        Assert.Equal("logits", output.Name);
        Assert.Equal([-1, 10], output.Shape!);

        using var s = new OnnxRuntimeInference().Load(model, new RuntimeOptions());
        Assert.Equal("onnxruntime", s.Info.Name);
        Assert.Equal(OrtLibrary.Api.Version, s.Info.Version);
        Assert.Equal(OrtSession.CpuProvider, s.Info.Provider);
        Assert.Equal("cpu", s.Info.Device);
        Assert.Null(s.Info.FallbackReason);
    }

    public static TheoryData<DType> MarshalledTypes() => new()
    {
        DType.Float32, DType.Float64, DType.Float16, DType.Int64, DType.Int32, DType.Int16, DType.Int8,
        DType.UInt8, DType.UInt16, DType.UInt32, DType.Bool,
    };

    /// <summary>An Identity model per element type: values must come back bit-exact through ORT.</summary>
    [Theory]
    [MemberData(nameof(MarshalledTypes))]
    public void Tensors_round_trip_through_identity(DType type)
    {
        OrtTestSupport.RequireOrt();
        var bytes = OrtTestModels.Identity(type, [2, 3]);
        using var ort = OrtSession.Create(bytes, $"identity-{type}", new OrtSessionSettings(IntraOpThreads: 1));
        var rng = new Random(7);
        Tensor x = type.Storage() switch
        {
            StorageKind.Float => Tensor.FromFloats([2, 3], Enumerable.Range(0, 6).Select(_ => type == DType.Float16
                ? (float)(Half)(rng.NextSingle() * 8 - 4) : rng.NextSingle() * 8 - 4).ToArray(), type),
            StorageKind.Double => Tensor.FromDoubles([2, 3], Enumerable.Range(0, 6).Select(_ => rng.NextDouble() * 1e6 - 5e5).ToArray()),
            _ => Tensor.FromLongs([2, 3], Enumerable.Range(0, 6).Select(i => type switch
            {
                DType.Bool => (long)(i % 2),
                DType.UInt8 => 250L + i,
                DType.Int8 => -128L + i * 50,
                DType.UInt16 => 65530L + i,
                DType.Int16 => -32768L + i * 1000,
                DType.UInt32 => 4294967290L + i,
                DType.Int32 => int.MinValue + (long)i * 1000,
                _ => long.MinValue + i,
            }).ToArray(), type),
        };
        var y = ort.Run(new Dictionary<string, Tensor> { ["x"] = x })["y"];
        Assert.Equal(type, y.Type);
        Assert.Equal(x.Shape, y.Shape);
        for (int i = 0; i < x.Length; i++) Assert.Equal(x.GetDouble(i), y.GetDouble(i));
    }

    [Fact]
    public void Empty_batch_runs()
    {
        OrtTestSupport.RequireOrt();
        var model = OnnxModelLoader.Load(TestPaths.FixtureModel("digits-mlp.onnx"));
        using var s = new OnnxRuntimeInference().Load(model, new RuntimeOptions(IntraOpThreads: 1));
        var y = s.RunSingle(Tensor.Zeros(DType.Float32, [0, 1, 8, 8]));
        Assert.Equal([0, 10], y.Shape);
    }

    [Fact]
    public void Wrong_input_shape_is_an_input_error_with_ORTs_message()
    {
        OrtTestSupport.RequireOrt();
        var model = OnnxModelLoader.Load(TestPaths.FixtureModel("digits-mlp.onnx"));
        using var s = new OnnxRuntimeInference().Load(model, new RuntimeOptions(IntraOpThreads: 1));
        var e = Assert.Throws<GateInputException>(() => s.RunSingle(Tensor.Zeros(DType.Float32, [2, 1, 7, 8])));
        Assert.Contains("ONNX Runtime refused the inputs", e.Message);
        Assert.Contains("input", e.Message);
        var e2 = Assert.Throws<GateInputException>(() => s.Run(new Dictionary<string, Tensor> { ["nope"] = Tensor.Zeros(DType.Float32, [1, 1, 8, 8]) }));
        Assert.Contains("'nope'", e2.Message);
    }

    [Fact]
    public void Model_rejected_by_ORT_is_an_input_error_with_ORTs_message()
    {
        OrtTestSupport.RequireOrt();
        var e = Assert.Throws<GateInputException>(() => OrtSession.Create(OrtTestModels.UnknownOp(), "bad.onnx", new OrtSessionSettings()));
        Assert.Contains("bad.onnx", e.Message);
        Assert.Contains("rejected the model", e.Message);
        Assert.Contains("NoSuchOp", e.Message); // ORT's own words name the offending operator
    }

    [Fact]
    public void Captured_intermediates_match_the_builtin_engine()
    {
        OrtTestSupport.RequireOrt();
        var model = OnnxModelLoader.Load(TestPaths.FixtureModel("digits-cnn.onnx"));
        var hidden = model.Graph.Nodes.First(n => n.OpType == "Relu").Outputs[0];
        var x = Npy.Read(TestPaths.FixtureData("digits_test_x.npy")).SliceBatch(0, 4);
        using var s = new OnnxRuntimeInference().Load(model, new RuntimeOptions(IntraOpThreads: 1));
        var ort = s.Run(new Dictionary<string, Tensor> { ["input"] = x }, ["logits", hidden]);
        var builtin = Gate.Core.Engine.CompiledModel.Compile(model).Forward(new Dictionary<string, Tensor> { ["input"] = x }, null, [hidden]).Values;
        OrtCompare.AssertClose("digits-cnn", hidden, builtin[hidden], ort[hidden], OrtCompare.Float32);
        OrtCompare.AssertClose("digits-cnn", "logits", builtin["logits"], ort["logits"], OrtCompare.Float32);
        var e = Assert.Throws<GateInputException>(() => s.Run(new Dictionary<string, Tensor> { ["input"] = x }, ["no/such/tensor"]));
        Assert.Contains("no/such/tensor", e.Message);
    }

    [Fact]
    public void Model_with_external_weights_loads_them_relative_to_the_model()
    {
        OrtTestSupport.RequireOrt();
        var dir = TestPaths.TempDir("ort-external");
        var model = OnnxModelLoader.Load(OrtTestModels.AddWithExternalWeights(dir, [1f, -2f, 0.5f, 100f]));
        Assert.NotEmpty(model.Graph.ExternalData);
        using var s = new OnnxRuntimeInference().Load(model, new RuntimeOptions(IntraOpThreads: 1));
        var y = s.Run(new Dictionary<string, Tensor> { ["x"] = Tensor.FromFloats([4], [1f, 2f, 3f, 4f]) })["y"];
        Assert.Equal([2f, 0f, 3.5f, 104f], y.Floats!);
    }

    [Fact]
    public void Library_is_loaded_once_per_process()
    {
        OrtTestSupport.RequireOrt();
        var model = OnnxModelLoader.Load(TestPaths.FixtureModel("digits-mlp.onnx"));
        for (int i = 0; i < 3; i++)
            using (var s = new OnnxRuntimeInference().Load(model, new RuntimeOptions(IntraOpThreads: 1))) s.RunSingle(Tensor.Zeros(DType.Float32, [1, 1, 8, 8]));
        Assert.Equal(1, OrtLibrary.LoadCount);
        // Independently of our counter: the process maps exactly one ONNX Runtime library file.
        var mapped = File.ReadAllLines("/proc/self/maps").Where(l => l.Contains("libonnxruntime"))
            .Select(l => l[(l.IndexOf('/'))..]).Distinct().ToList();
        Assert.Single(mapped);
    }
}
