using Gate.Core;
using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Runtime;
using Gate.Core.Runtime.OnnxRuntime;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Runtime;

/// <summary>
/// The built-in engine and ONNX Runtime must compute the same function. Tolerances (see <see cref="OrtCompare"/>):
/// float32 |Δ| ≤ 1e-5 + 1e-4·|builtin|, float64 1e-12 + 1e-10·|x|, float16/bfloat16 1e-3 + 1e-2·|x|, integers and bool exact.
/// </summary>
public class OrtDifferentialTests
{
    public static TheoryData<string, string?, int> FixtureModels() => new()
    {
        { "digits-mlp.onnx", "digits_test_x.npy", 0 },
        { "digits-cnn.onnx", "digits_test_x.npy", 0 },
        { "digits-cnn-trojan.onnx", "digits_test_x.npy", 0 },
        { "absent-supervisor-honest.onnx", "absent-supervisor-concept_x.npy", 0 },
        { "absent-supervisor-deceptive.onnx", "absent-supervisor-concept_x.npy", 0 },
        // No observation file ships for these agents: 64 seeded random observations in [0,1) of the model's width.
        { "safe-interruptibility-compliant.onnx", null, 336 },
        { "safe-interruptibility-tampering.onnx", null, 336 },
    };

    [Theory]
    [MemberData(nameof(FixtureModels))]
    public void Fixture_model_outputs_agree(string modelFile, string? dataFile, int width)
    {
        OrtTestSupport.RequireOrt();
        var model = OnnxModelLoader.Load(TestPaths.FixtureModel(modelFile));
        Tensor x;
        if (dataFile is not null) x = Npy.Read(TestPaths.FixtureData(dataFile));
        else
        {
            var rng = new Random(20261121);
            x = Tensor.FromFloats([64, width], Enumerable.Range(0, 64 * width).Select(_ => rng.NextSingle()).ToArray());
        }
        var inputs = new Dictionary<string, Tensor> { [model.Graph.Inputs[0].Name] = x };
        var builtin = CompiledModel.Compile(model).Forward(inputs).Values;
        using var ort = new OnnxRuntimeInference().Load(model, new RuntimeOptions(IntraOpThreads: 1));
        var actual = ort.Run(inputs);
        foreach (var output in ort.OutputNames)
            OrtCompare.AssertClose(modelFile, output, builtin[output], actual[output], OrtCompare.For(builtin[output].Type));
    }

    /// <summary>One ONNX conformance case, loaded and run through whichever runtimes accept it.</summary>
    private sealed record Case(string Name, OnnxModel? Model, Dictionary<string, Tensor>? Inputs, Dictionary<string, Tensor>? Expected, string? Skip);

    private static IEnumerable<Case> ConformanceCases()
    {
        foreach (var dir in Directory.EnumerateDirectories(TestPaths.OnnxNodeTests).Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileName(dir);
            var data = Path.Combine(dir, "test_data_set_0");
            OnnxModel? model = null;
            string? loadError = null;
            try { model = OnnxModelLoader.Load(Path.Combine(dir, "model.onnx")); }
            catch (GateInputException e) { loadError = "loader: " + e.Message; }
            if (model is null) { yield return new(name, null, null, null, loadError); continue; }
            Dictionary<string, Tensor> inputs = new(), expected = new();
            string? skip = null;
            try
            {
                var graphInputs = model.Graph.Inputs.Where(i => !model.Graph.Initializers.ContainsKey(i.Name)).ToList();
                for (int k = 0; k < graphInputs.Count; k++)
                    inputs[graphInputs[k].Name] = TensorProtoCodec.ParseSerialized(File.ReadAllBytes(Path.Combine(data, $"input_{k}.pb")), $"{name}/input_{k}.pb");
                for (int k = 0; k < model.Graph.Outputs.Count; k++)
                    expected[model.Graph.Outputs[k].Name] = TensorProtoCodec.ParseSerialized(File.ReadAllBytes(Path.Combine(data, $"output_{k}.pb")), $"{name}/output_{k}.pb");
            }
            catch (Exception e) when (e is GateInputException or NotSupportedException or FileNotFoundException)
            {
                skip = "data: " + e.Message; // sequences/optionals or exotic types that Tensor cannot hold
            }
            yield return new(name, model, inputs, expected, skip);
        }
    }

    private static (IReadOnlyDictionary<string, Tensor>? Values, string? Why) RunOrt(Case c)
    {
        try
        {
            using var s = new OnnxRuntimeInference().Load(c.Model!, new RuntimeOptions(IntraOpThreads: 1));
            return (s.Run(c.Inputs!), null);
        }
        catch (Exception e) when (e is GateInputException or Microsoft.ML.OnnxRuntime.OnnxRuntimeException) { return (null, e.Message); }
    }

    /// <summary>
    /// Disagreements already traced to the built-in engine (not to ORT or the binding). One is tolerated only while
    /// ORT still reproduces the ONNX project's expected output for it, so this list cannot hide an ORT-side error.
    /// Remove an entry when the engine is fixed (an entry that agrees is simply counted as compared).
    /// </summary>
    private static readonly Dictionary<string, string> KnownBuiltinDefects = new()
    {
    };

    /// <summary>
    /// Cases both runtimes ran when this floor was set (509 of 575: ORT rejects 62, 2 hold data a tensor cannot);
    /// a drop below it means one runtime started rejecting cases, which must not pass as "fewer comparisons".
    /// </summary>
    private const int MinCompared = 500;

    /// <summary>The graph's operators the built-in engine has no class for (the one legitimate reason to skip).</summary>
    private static List<string> UnimplementedOperators(OnnxModel model) =>
        model.Graph.Nodes.Where(n => OperatorRegistry.Find(n.Domain, n.OpType) is null).Select(n => n.OpType).Distinct().ToList();

    [Fact]
    public void Conformance_cases_agree_between_builtin_and_onnxruntime()
    {
        OrtTestSupport.RequireOrt();
        int compared = 0, skippedData = 0, skippedBuiltin = 0, skippedOrt = 0;
        var failures = new List<string>();
        var known = new List<string>();
        foreach (var c in ConformanceCases())
        {
            if (c.Skip is not null) { skippedData++; continue; }
            // Only an operator the engine does not implement is a reason to skip; once it compiled, every operator
            // in the graph is one the engine claims to support, so an exception from it is a failure.
            CompiledModel compiled;
            try { compiled = CompiledModel.Compile(c.Model!); }
            catch (GateInputException) when (UnimplementedOperators(c.Model!).Count > 0) { skippedBuiltin++; continue; }
            IReadOnlyDictionary<string, Tensor> builtin;
            try { builtin = compiled.Forward(c.Inputs!).Values; }
            catch (Exception e) { failures.Add($"{c.Name}: the built-in engine threw on a supported operator: {e.GetType().Name}: {e.Message}"); continue; }
            var (ort, why) = RunOrt(c);
            if (ort is null) { skippedOrt++; continue; }
            compared++;
            foreach (var name in c.Expected!.Keys)
            {
                var d = OrtCompare.Difference(c.Name, name, builtin[name], ort[name], OrtCompare.For(builtin[name].Type), "builtin", "onnxruntime");
                if (d is null) continue;
                if (KnownBuiltinDefects.TryGetValue(c.Name, out var defect)
                    && OrtCompare.Difference(c.Name, name, c.Expected[name], ort[name], OrtCompare.OnnxReference) is null)
                    known.Add($"{d} [known builtin defect: {defect}; ORT matches the ONNX expected output]");
                else failures.Add(d);
            }
        }
        var output = TestContext.Current.TestOutputHelper;
        output?.WriteLine(
            $"conformance builtin vs onnxruntime: compared {compared}, skipped {skippedBuiltin + skippedOrt + skippedData} " +
            $"(builtin rejected {skippedBuiltin}, ORT rejected {skippedOrt}, data not representable {skippedData}); " +
            $"tolerated known builtin defects: {known.Count}");
        foreach (var k in known) output?.WriteLine(k);
        Assert.True(compared >= MinCompared, $"only {compared} conformance case(s) were compared (at least {MinCompared} expected): a runtime rejects cases it used to run");
        Assert.True(failures.Count == 0, $"{failures.Count} disagreement(s):\n" + string.Join("\n", failures));
    }

    /// <summary>
    /// Checks the binding, independently of the built-in engine, against the ONNX project's expected outputs with
    /// the ONNX runner's own tolerance (rtol 1e-3, atol 1e-7; narrow floats 1e-2/1e-3). This exercises the marshalling of
    /// every element type the conformance suite uses.
    /// </summary>
    [Fact]
    public void Onnxruntime_reproduces_the_conformance_expected_outputs()
    {
        OrtTestSupport.RequireOrt();
        int compared = 0, skippedData = 0, skippedOrt = 0;
        var failures = new List<string>();
        foreach (var c in ConformanceCases())
        {
            if (c.Skip is not null) { skippedData++; continue; }
            var (ort, why) = RunOrt(c);
            if (ort is null) { skippedOrt++; TestContext.Current.TestOutputHelper?.WriteLine($"ORT rejected {c.Name}: {why}"); continue; }
            compared++;
            foreach (var (name, expected) in c.Expected!)
            {
                var tol = expected.Type is DType.Float16 or DType.BFloat16 ? OrtCompare.Narrow : OrtCompare.OnnxReference;
                var d = OrtCompare.Difference(c.Name, name, expected, ort[name], tol, "ONNX expected", "onnxruntime");
                if (d is not null) failures.Add(d);
            }
        }
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"conformance onnxruntime vs ONNX expected outputs: compared {compared}, skipped {skippedOrt + skippedData} (ORT rejected {skippedOrt}, data not representable {skippedData})");
        Assert.True(compared >= MinCompared, $"only {compared} conformance case(s) were compared (at least {MinCompared} expected)");
        Assert.True(failures.Count == 0, $"{failures.Count} disagreement(s):\n" + string.Join("\n", failures));
    }
}
