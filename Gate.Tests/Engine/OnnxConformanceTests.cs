using System.Text;
using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Engine;

/// <summary>
/// Runs every ONNX backend node test case under ../shared/onnx-node-tests through the built-in engine.
/// Tolerance: |actual - expected| &lt;= atol + rtol·|expected| with rtol 1e-3 (ONNX's own runner) and atol 1e-5
/// (ONNX uses 1e-7; 1e-5 absorbs float32 summation-order differences near zero, e.g. in LayerNorm/Softmax
/// outputs of magnitude 1e-6, without hiding real errors, which are orders of magnitude larger). Integers, bool
/// and strings compare exactly; NaN matches NaN. Every failure is reported with its reason; nothing is skipped.
/// </summary>
public class OnnxConformanceTests(ITestOutputHelper output)
{
    private const double Rtol = 1e-3, Atol = 1e-5;

    [Fact]
    public void Every_node_test_case_runs_and_at_least_97_percent_match()
    {
        var root = TestPaths.OnnxNodeTests;
        Assert.True(Directory.Exists(root), $"conformance cases not found at {root}");
        var cases = Directory.GetDirectories(root, "test_*").OrderBy(d => d, StringComparer.Ordinal).ToList();
        Assert.True(cases.Count >= 500, $"expected the full set of node tests, found {cases.Count}");
        var failures = new List<string>();
        foreach (var dir in cases)
        {
            string? why;
            try { why = RunCase(dir); }
            catch (Exception e) { why = $"{e.GetType().Name}: {e.Message}"; }
            if (why is not null) failures.Add($"{Path.GetFileName(dir)}: {why.ReplaceLineEndings(" ")}");
        }
        int passed = cases.Count - failures.Count;
        var report = new StringBuilder();
        report.AppendLine($"ONNX node conformance: {passed}/{cases.Count} passed ({100.0 * passed / cases.Count:F1}%), rtol {Rtol}, atol {Atol}");
        foreach (var f in failures) report.AppendLine("FAIL " + f);
        var reportPath = Path.Combine(AppContext.BaseDirectory, "onnx-conformance-report.txt");
        File.WriteAllText(reportPath, report.ToString());
        output.WriteLine(report.ToString());
        output.WriteLine($"report written to {reportPath}");
        Assert.True(passed >= Math.Ceiling(0.97 * cases.Count), report.ToString());
    }

    /// <summary>Runs one case; null when every data set matches, otherwise the first mismatch.</summary>
    internal static string? RunCase(string dir)
    {
        var model = OnnxModelLoader.Load(Path.Combine(dir, "model.onnx"));
        foreach (var vi in model.Graph.Inputs.Concat(model.Graph.Outputs))
            if (vi.Kind != "tensor") return $"graph value '{vi.Name}' is a {vi.Kind}, not a tensor: the engine computes on tensors only";
        var compiled = CompiledModel.Compile(model);
        var sets = Directory.GetDirectories(dir, "test_data_set_*").OrderBy(d => d, StringComparer.Ordinal).ToList();
        if (sets.Count == 0) return "no test_data_set_* folder";
        foreach (var set in sets)
        {
            var inputs = new Dictionary<string, Tensor>();
            for (int i = 0; i < model.Graph.Inputs.Count; i++)
            {
                var file = Path.Combine(set, $"input_{i}.pb");
                if (!File.Exists(file)) continue; // an omitted optional input
                inputs[model.Graph.Inputs[i].Name] = TensorProtoCodec.ParseSerialized(File.ReadAllBytes(file), file);
            }
            var values = compiled.Run(inputs);
            if (set == sets[0] && ShapeRuleMismatch(model, inputs, values) is { } bad) return bad;
            for (int o = 0; o < model.Graph.Outputs.Count; o++)
            {
                var file = Path.Combine(set, $"output_{o}.pb");
                var expected = TensorProtoCodec.ParseSerialized(File.ReadAllBytes(file), file);
                var name = model.Graph.Outputs[o].Name;
                var why = Compare(values[name], expected);
                if (why is not null) return $"{Path.GetFileName(set)} output '{name}': {why}";
            }
        }
        return null;
    }

    /// <summary>For one-node cases: every output shape the operator's shape rule claims must be the shape it produced.</summary>
    private static string? ShapeRuleMismatch(OnnxModel model, Dictionary<string, Tensor> inputs, IReadOnlyDictionary<string, Tensor> values)
    {
        if (model.Graph.Nodes.Count != 1) return null;
        var node = model.Graph.Nodes[0];
        var op = OperatorRegistry.Find(node.Domain, node.OpType)!;
        var shapes = node.Inputs.Select(n => n.Length > 0 && inputs.TryGetValue(n, out var t) ? t.Shape : model.Graph.Initializers.TryGetValue(n, out var i) ? i.Shape : null).ToArray();
        var inferred = op.InferShapes(new OpContext(node, model.DefaultOpset), shapes);
        for (int o = 0; o < inferred.Length && o < node.Outputs.Length; o++)
            if (inferred[o] is { } s && values.TryGetValue(node.Outputs[o], out var actual) && !s.SequenceEqual(actual.Shape))
                return $"shape rule of {node.OpType} says output {o} is [{string.Join(",", s)}], kernel produced {actual.ShapeString}";
        return null;
    }

    internal static string? Compare(Tensor actual, Tensor expected)
    {
        if (!actual.Shape.SequenceEqual(expected.Shape)) return $"shape {actual.ShapeString}, expected {expected.ShapeString}";
        if (actual.Type != expected.Type) return $"type {actual.Type.OnnxName()}, expected {expected.Type.OnnxName()}";
        for (int i = 0; i < expected.Length; i++)
        {
            if (expected.Type == DType.String)
            {
                if (actual.Strings![i] != expected.Strings![i]) return $"element {i}: '{actual.Strings[i]}', expected '{expected.Strings[i]}'";
                continue;
            }
            if (expected.Type.Storage() == StorageKind.Long)
            {
                if (actual.Longs![i] != expected.Longs![i]) return $"element {i}: {actual.Longs[i]}, expected {expected.Longs[i]}";
                continue;
            }
            double a = actual.GetDouble(i), e = expected.GetDouble(i);
            if (double.IsNaN(e) && double.IsNaN(a)) continue;
            if (a == e) continue; // also equal infinities
            if (!(Math.Abs(a - e) <= Atol + Rtol * Math.Abs(e))) return $"element {i}: {a:R}, expected {e:R}";
        }
        return null;
    }
}
