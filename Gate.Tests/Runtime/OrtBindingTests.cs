using Gate.Core;
using Gate.Core.Model;
using Gate.Core.Runtime;
using Gate.Core.Runtime.OnnxRuntime;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Runtime;

/// <summary>Gate over the official ONNX Runtime API: library choice, metadata, tensor marshalling, errors.</summary>
public class OrtBindingTests
{
    [Fact]
    public void Custom_library_variable_wins_and_a_missing_file_names_the_variable_and_the_remedy()
    {
        var dir = TestPaths.TempDir("ort-custom");
        Assert.Null(OrtLibrary.CustomLibrary(null));
        Assert.Null(OrtLibrary.CustomLibrary(""));
        var mine = Path.Combine(dir, "my-libonnxruntime.so");
        File.WriteAllBytes(mine, [0]);
        Assert.Equal(mine, OrtLibrary.CustomLibrary(mine));
        var e = Assert.Throws<GateComponentMissingException>(() => OrtLibrary.CustomLibrary(Path.Combine(dir, "nope.so")));
        Assert.Contains("nope.so", e.Message);
        Assert.Contains("GATE_ORT_LIB", e.Message);
        Assert.Contains("unset it", e.Message);
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
        if (Environment.GetEnvironmentVariable(OrtLibrary.PathVariable) is null)
        {
            // The library beside the tests is the NuGet package's, at the version Directory.Packages.props pins.
            Assert.StartsWith(OrtLibrary.PackageVersion + ".", OrtLibrary.Version);
            Assert.Equal(Path.Combine(AppContext.BaseDirectory, "libonnxruntime.so"), OrtLibrary.LibraryPath);
        }
        Assert.Contains(OrtSession.CpuProvider, OrtLibrary.AvailableProviders());
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
        Assert.Equal(OrtLibrary.Version, s.Info.Version);
        Assert.Equal(OrtSession.CpuProvider, s.Info.Provider);
        Assert.Equal("cpu", s.Info.Device);
        Assert.Null(s.Info.FallbackReason);
    }

    public static TheoryData<DType> MarshalledTypes() => new()
    {
        DType.Float32, DType.Float64, DType.Float16, DType.BFloat16, DType.Int64, DType.Int32, DType.Int16, DType.Int8,
        DType.UInt8, DType.UInt16, DType.UInt32, DType.UInt64, DType.Bool, DType.String,
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
            StorageKind.Float => Tensor.FromFloats([2, 3], Enumerable.Range(0, 6).Select(_ => rng.NextSingle() * 8 - 4).Select(v => type switch
            {
                DType.Float16 => (float)(Half)v,
                DType.BFloat16 => BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(v) & 0xFFFF0000u), // exactly representable
                _ => v,
            }).ToArray(), type),
            StorageKind.String => Tensor.FromStrings([2, 3], ["", "a", "ünïcödé", "x y", "7", new string('z', 300)]),
            StorageKind.Double => Tensor.FromDoubles([2, 3], Enumerable.Range(0, 6).Select(_ => rng.NextDouble() * 1e6 - 5e5).ToArray()),
            _ => Tensor.FromLongs([2, 3], Enumerable.Range(0, 6).Select(i => type switch
            {
                DType.Bool => (long)(i % 2),
                DType.UInt8 => 250L + i,
                DType.Int8 => -128L + i * 50,
                DType.UInt16 => 65530L + i,
                DType.Int16 => -32768L + i * 1000,
                DType.UInt32 => 4294967290L + i,
                DType.UInt64 => unchecked((long)(ulong.MaxValue - (ulong)i)), // held as its bit pattern
                DType.Int32 => int.MinValue + (long)i * 1000,
                _ => long.MinValue + i,
            }).ToArray(), type),
        };
        var y = ort.Run(new Dictionary<string, Tensor> { ["x"] = x })["y"];
        Assert.Equal(type, y.Type);
        Assert.Equal(x.Shape, y.Shape);
        if (type == DType.String) { Assert.Equal(x.Strings, y.Strings); return; }
        if (type == DType.UInt64) { Assert.Equal(x.Longs, y.Longs); return; } // bit patterns, not doubles
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
        // The process maps exactly one ONNX Runtime library file.
        var mapped = File.ReadAllLines("/proc/self/maps").Where(l => l.Contains("libonnxruntime"))
            .Select(l => l[(l.IndexOf('/'))..]).Distinct().ToList();
        Assert.Single(mapped);
    }
}
