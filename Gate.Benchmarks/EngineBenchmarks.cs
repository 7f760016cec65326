using BenchmarkDotNet.Attributes;
using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Runtime;
using Gate.Core.Tensors;

namespace Gate.Benchmarks;

/// <summary>Locates the shared fixtures (../shared beside the repository, or GATE_SHARED).</summary>
public static class Fixtures
{
    public static string Root
    {
        get
        {
            if (Environment.GetEnvironmentVariable("GATE_SHARED") is { Length: > 0 } s) return Path.Combine(s, "fixtures");
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Gate.sln"))) dir = dir.Parent;
            return Path.GetFullPath(Path.Combine(dir?.FullName ?? throw new InvalidOperationException("Gate.sln not found above " + AppContext.BaseDirectory), "..", "shared", "fixtures"));
        }
    }

    public static OnnxModel Model(string name) => OnnxModelLoader.Load(Path.Combine(Root, "models", name));

    /// <summary>The first <paramref name="batch"/> test images (repeated if the test set is smaller).</summary>
    public static Tensor Images(int batch)
    {
        var all = Npy.Read(Path.Combine(Root, "data", "digits_test_x.npy"));
        int per = all.Length / all.Shape[0];
        var data = new float[batch * per];
        for (int i = 0; i < batch; i++) Array.Copy(all.Floats!, i % all.Shape[0] * per, data, i * per, per);
        return Tensor.FromFloats([batch, .. all.Shape[1..]], data);
    }
}

/// <summary>The built-in engine on the digits fixtures: forward, and forward + backward to the input.</summary>
/// <remarks>Min and median beside the mean: on a shared VM, bursts of host load inflate the mean of short runs.</remarks>
[MemoryDiagnoser, MinColumn, MedianColumn]
public class EngineBenchmarks
{
    [Params("digits-mlp.onnx", "digits-cnn.onnx")] public string Model = "";
    [Params(1, 256)] public int Batch;
    /// <summary>The engine's subnormal mode (<see cref="CompiledModel.FlushDenormals"/>): the digits CNN has 227
    /// subnormal weights, so false shows what flushing saves.</summary>
    [Params(true, false)] public bool Flush = true;

    private CompiledModel _engine = null!;
    private Dictionary<string, Tensor> _inputs = null!;
    private Dictionary<string, Tensor> _seed = null!;

    [GlobalSetup]
    public void Setup()
    {
        _engine = CompiledModel.Compile(Fixtures.Model(Model), Flush);
        _inputs = new() { [_engine.InputNames[0]] = Fixtures.Images(Batch) };
        // d(sum of logit 0)/d(input): the shape of gradient an attack or a trojan scan asks for.
        var seed = new float[Batch * 10];
        for (int i = 0; i < Batch; i++) seed[i * 10] = 1;
        _seed = new() { [_engine.OutputNames[0]] = Tensor.FromFloats([Batch, 10], seed) };
    }

    [Benchmark(Baseline = true)]
    public Tensor Forward() => _engine.Run(_inputs)[_engine.OutputNames[0]];

    [Benchmark]
    public Tensor ForwardBackward()
    {
        using var pass = _engine.Forward(_inputs, recordForBackward: true);
        return _engine.Backward(pass, _seed, [_engine.InputNames[0]])[_engine.InputNames[0]];
    }
}

/// <summary>ONNX Runtime CPU on the same models and inputs; included only when the ORT binding is compiled in and loads.</summary>
[MemoryDiagnoser, MinColumn, MedianColumn]
public class OnnxRuntimeBenchmarks
{
    [Params("digits-mlp.onnx", "digits-cnn.onnx")] public string Model = "";
    [Params(1, 256)] public int Batch;

    private IInferenceSession _session = null!;
    private Dictionary<string, Tensor> _inputs = null!;

    [GlobalSetup]
    public void Setup()
    {
        var factory = ProductionRuntime.OnnxRuntimeFactory ?? throw new InvalidOperationException("ONNX Runtime binding is not compiled in");
        _session = factory().Load(Fixtures.Model(Model), new RuntimeOptions());
        _inputs = new() { [_session.InputNames[0]] = Fixtures.Images(Batch) };
    }

    [GlobalCleanup]
    public void Cleanup() => _session.Dispose();

    [Benchmark]
    public Tensor OrtForward() => _session.Run(_inputs)[_session.OutputNames[0]];

    /// <summary>Why ORT cannot be measured here, or null when it can.</summary>
    public static string? Unavailable()
    {
        if (ProductionRuntime.OnnxRuntimeFactory is not { } factory) return "ProductionRuntime.OnnxRuntimeFactory is null (no ONNX Runtime binding in this build)";
        try { using var s = factory().Load(Fixtures.Model("digits-mlp.onnx"), new RuntimeOptions()); return null; }
        catch (Exception e) { return $"ONNX Runtime does not load: {e.Message}"; }
    }
}
