using System.Text;
using Gate.Core.Model;
using Gate.Core.Sandbox;
using Gate.Core.Tensors;
using Gate.Tests.Runtime;
using Gate.Tests.Support;

namespace Gate.Tests.Engine;

/// <summary>
/// The ONNX node tests (../shared/onnx-node-tests) as <c>gate run</c> sees them: every input is written to .npy (a
/// sequence to .npz, arrays arr_0, arr_1, …; an optional that holds none to no file) and read back with
/// <see cref="ModelValue"/>, the model runs through <see cref="ModelRunExecutor.RunValues"/> (the code the sandbox
/// runner calls for a <c>gate run</c> job) on each runtime, and every output goes through the same files again before
/// it is compared with the ONNX project's expected output. So a value the file I/O cannot carry fails here exactly as
/// it fails for a user. The sandbox process itself is left out (575 sandboxes would take minutes); <see cref="RunCommandTests"/>
/// covers `gate run` as a process, including the dtypes added for this measurement, sequences and optionals.
/// Nothing is skipped: a case that cannot be read, run or written counts as a failure and is listed with its reason.
/// Built-in engine: every case (measured 573/573 on 2026-11-27; test_identity_sequence and test_identity_opt pass a
/// sequence and an optional sequence through Identity, which the engine resolves without computing on them).
/// ONNX Runtime: the issue's target is 99%; ONNX Runtime 1.31.1 itself makes it unreachable. Measured 563/573
/// (98.3%), this guards that. The managed API (Microsoft.ML.OnnxRuntime.Managed) cannot even open a model with a
/// float8/float4/int4/int2 input or output ("Unregistered TensorElementType"), so Gate opens those through ORT's C
/// API (OrtNativeSession), as it does models with sequence or optional inputs and outputs. The 10 failures are the
/// cases ORT 1.31.1 has no CPU kernel for (Cast to/from float4e2m1 ×4, int16/uint16 Max/Min ×4, Pow with a
/// uint32/uint64 exponent ×2: "Could not find an implementation"); 563/573 = 98.3% is the ceiling on this release.
/// The exact messages of ONNX Runtime 1.31.1 (measured 2026-11-26, this test's report file), each reproduced on a
/// one-node model by <see cref="Runtime.OrtMissingKernelTests"/> (managed API; the float4 case through the C API):
/// <list type="bullet">
/// <item>test_cast_FLOAT16_to_FLOAT4E2M1: "[ErrorCode:NotImplemented] Failed to find kernel for Cast(25) (node:'' ep:'CPUExecutionProvider') ...
/// Kernel found kernel in the supported version range (node_version: 25). However the types are incompatible. This op has been
/// implemented only for the following types (tensor(bool), ..., tensor(float8e8m0),), but the node in the model has the following type (tensor(float4e2m1))"</item>
/// <item>test_cast_FLOAT4E2M1_to_FLOAT, test_cast_FLOAT4E2M1_to_FLOAT16, test_cast_FLOAT_to_FLOAT4E2M1:
/// "[ErrorCode:NotImplemented] Could not find an implementation for Cast(25) node with name ''"</item>
/// <item>test_max_int16, test_max_uint16: "[ErrorCode:NotImplemented] Could not find an implementation for Max(13) node with name ''"</item>
/// <item>test_min_int16, test_min_uint16: "[ErrorCode:NotImplemented] Could not find an implementation for Min(13) node with name ''"</item>
/// <item>test_pow_types_float32_uint32, test_pow_types_float32_uint64: "[ErrorCode:NotImplemented] Could not find an implementation for Pow(15) node with name ''"</item>
/// </list>
/// </summary>
public class GateRunConformanceTests(ITestOutputHelper output)
{
    [Fact]
    public void Builtin_engine_through_npy_and_npz_passes_every_case() => Measure("builtin", 1.0);

    [Fact]
    public void Onnxruntime_through_npy_and_npz_passes_at_least_98_2_percent()
    {
        OrtTestSupport.RequireOrt();
        Measure("onnxruntime", 0.982);
    }

    private void Measure(string runtime, double target)
    {
        var root = TestPaths.OnnxNodeTests;
        Assert.True(Directory.Exists(root), $"conformance cases not found at {root}");
        var cases = Directory.GetDirectories(root, "test_*").OrderBy(d => d, StringComparer.Ordinal).ToList();
        Assert.True(cases.Count >= 500, $"expected the full set of node tests, found {cases.Count}");
        var scratch = TestPaths.TempDir();
        var failures = new List<string>();
        foreach (var dir in cases)
        {
            string? why;
            try { why = RunCase(dir, runtime, scratch); }
            catch (Exception e) { why = $"{e.GetType().Name}: {e.Message}"; }
            if (why is not null) failures.Add($"{Path.GetFileName(dir)}: {why.ReplaceLineEndings(" ")}");
        }
        int passed = cases.Count - failures.Count;
        var report = new StringBuilder();
        report.AppendLine($"gate run ({runtime}) ONNX node conformance through .npy/.npz: {passed}/{cases.Count} passed ({100.0 * passed / cases.Count:F1}%)");
        foreach (var f in failures) report.AppendLine("FAIL " + f);
        File.WriteAllText(Path.Combine(AppContext.BaseDirectory, $"gate-run-conformance-{runtime}.txt"), report.ToString());
        output.WriteLine(report.ToString());
        Assert.True(passed >= Math.Ceiling(target * cases.Count), report.ToString());
    }

    /// <summary>Through .npy/.npz in both directions, as `gate run` does; null when every output of data set 0 matches.</summary>
    private static string? RunCase(string dir, string runtime, string scratch)
    {
        var model = OnnxModelLoader.Load(Path.Combine(dir, "model.onnx"));
        var set = Path.Combine(dir, "test_data_set_0");
        var inputs = new Dictionary<string, ModelValue>();
        for (int i = 0; i < model.Graph.Inputs.Count; i++)
        {
            var file = Path.Combine(set, $"input_{i}.pb");
            if (!File.Exists(file)) continue; // an omitted optional input
            var value = ThroughFiles(TensorProtoCodec.ParseSerializedValue(File.ReadAllBytes(file), file, model.Graph.Inputs[i].Type), scratch);
            if (!value.IsNone) inputs[model.Graph.Inputs[i].Name] = value; // none: no file, as gate run is given none
        }
        var values = ModelRunExecutor.RunValues(model, inputs, [], runtime);
        for (int o = 0; o < model.Graph.Outputs.Count; o++)
        {
            var file = Path.Combine(set, $"output_{o}.pb");
            var expected = TensorProtoCodec.ParseSerializedValue(File.ReadAllBytes(file), file, model.Graph.Outputs[o].Type);
            var name = model.Graph.Outputs[o].Name;
            var actual = values.TryGetValue(name, out var v) ? ThroughFiles(v, scratch) : ModelValue.None;
            var why = (expected, actual) switch
            {
                ({ IsNone: true }, { IsNone: true }) => null,
                ({ Tensor: { } e }, { Tensor: { } a }) => CompareTensor(dir, name, runtime, e, a),
                ({ Sequence: { } e }, { Sequence: { } a }) when e.Count == a.Count =>
                    e.Zip(a).Select((p, k) => CompareTensor(dir, $"{name}[{k}]", runtime, p.First, p.Second) is { } w ? $"element {k}: {w}" : null).FirstOrDefault(w => w is not null),
                _ => $"expected {expected}, got {actual}",
            };
            if (why is not null) return $"output '{name}': {why}";
        }
        return null;
    }

    private static string? CompareTensor(string dir, string name, string runtime, Tensor expected, Tensor actual) =>
        runtime == "builtin" || expected.Type == DType.String
            ? OnnxConformanceTests.Compare(actual, expected)
            : OrtCompare.Difference(Path.GetFileName(dir), name, expected, actual,
                expected.Type is DType.Float16 or DType.BFloat16 ? OrtCompare.Narrow : OrtCompare.OnnxReference, "ONNX expected", runtime);

    /// <summary>The value written as gate run writes it and read back as gate run reads it; none has no file.</summary>
    private static ModelValue ThroughFiles(ModelValue v, string scratch)
    {
        if (v.Extension is not { } ext) return ModelValue.None;
        var path = Path.Combine(scratch, "value" + ext);
        v.Write(path);
        return ModelValue.Read(path);
    }
}
