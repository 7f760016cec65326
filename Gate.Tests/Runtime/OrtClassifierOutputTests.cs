using System.Text.Json.Nodes;
using Gate.Core.Model.Proto;
using Gate.Core.Tensors;
using Gate.Tests.Support;
using Google.Protobuf;

namespace Gate.Tests.Runtime;

/// <summary>
/// A scikit-learn classifier as skl2onnx exports it: ai.onnx.ml LinearClassifier, then ZipMap, so the outputs are
/// `label` (int64 tensor) and `probabilities` (sequence of int64→float maps). Accuracy reads either output through
/// ONNX Runtime; a check that needs the built-in engine is refused at plan time naming the output.
/// </summary>
public class OrtClassifierOutputTests
{
    /// <summary>Scores x·w_k with w_0 = (1, 0), w_1 = (0, 1), w_2 = (-1, -1), no intercepts, softmax probabilities.</summary>
    private static string Model(string dir, bool stringLabels = false)
    {
        var b = new OnnxBuilder(opset: 13).Input("x", -1, 2);
        b.Model.OpsetImport.Add(new OperatorSetIdProto { Domain = "ai.onnx.ml", Version = 1 });
        var floats = (string name, float[] v) => { var a = new AttributeProto { Name = name, Type = 6 }; a.Floats.AddRange(v); return a; };
        var text = (string name, string v) => new AttributeProto { Name = name, Type = 3, S = ByteString.CopyFromUtf8(v) };
        var strings = (string name, string[] v) => { var a = new AttributeProto { Name = name, Type = 8 }; a.Strings.AddRange(v.Select(ByteString.CopyFromUtf8)); return a; };
        b.Node("LinearClassifier", ["x"], ["label", "scores"], "linear",
            floats("coefficients", [1, 0, 0, 1, -1, -1]), floats("intercepts", [0, 0, 0]),
            stringLabels ? strings("classlabels_strings", ["a", "b", "c"]) : OnnxBuilder.Ints("classlabels_ints", 0, 1, 2), text("post_transform", "SOFTMAX"));
        b.Node("ZipMap", ["scores"], ["probabilities"], "zipmap",
            stringLabels ? strings("classlabels_strings", ["a", "b", "c"]) : OnnxBuilder.Ints("classlabels_int64s", 0, 1, 2));
        b.Graph.Node[0].Domain = "ai.onnx.ml";
        b.Graph.Node[1].Domain = "ai.onnx.ml";
        b.Output("label", stringLabels ? DType.String : DType.Int64, -1);
        var map = new TypeProto { MapType = new TypeProto.Types.Map { KeyType = (int)(stringLabels ? DType.String : DType.Int64), ValueType = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)DType.Float32 } } } };
        b.Graph.Output.Add(new ValueInfoProto { Name = "probabilities", Type = new TypeProto { SequenceType = new TypeProto.Types.Sequence { ElemType = map } } });
        return b.Save(Path.Combine(dir, stringLabels ? "sklearn-strings.onnx" : "sklearn-linear.onnx"));
    }

    /// <summary>Predictions 0, 1, 2, 1, 0, 2 (argmax of the scores) against labels 0, 1, 2, 0, 0, 1: 4 of 6 correct.</summary>
    private static void Data(string dir)
    {
        Npy.Write(Path.Combine(dir, "x.npy"), Tensor.FromFloats([6, 2], [1, 0, 0, 1, -1, -1, 0.2f, 0.9f, 2, 1, -0.5f, -0.4f]));
        Npy.Write(Path.Combine(dir, "labels.npy"), Tensor.FromLongs([6], [0, 1, 2, 0, 0, 1]));
    }

    private static string Policy(string dir, string output, string check)
    {
        var path = Path.Combine(dir, $"policy-{output}.yaml");
        File.WriteAllText(path, $$"""
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata: { name: sklearn }
            spec:
              model:
                format: onnx
                inputs:
                  x: { shape: [-1, 2], range: [-2, 2] }
                {{(output == "" ? "" : $"output: {output}")}}
              runtime: onnxruntime
              sandbox: { isolation: process }
              seed: 1
              datasets:
                d: { inputs: x.npy, labels: labels.npy }
              checks:
                {{check}}
            """);
        return path;
    }

    private const string Accuracy = "- { id: accuracy, type: accuracy, dataset: d, require: { min: 0.5 } }";

    [Theory]
    [InlineData("")]              // the first output: the int64 label, compared directly
    [InlineData("probabilities")] // the ZipMap sequence, read as [samples, classes] and argmaxed
    public void Accuracy_reads_the_label_or_the_probability_maps_through_onnx_runtime(string output)
    {
        OrtTestSupport.RequireOrt();
        var dir = TestPaths.TempDir();
        Data(dir);
        var outDir = Path.Combine(dir, "out");
        var r = GateCli.Run("check", "--model", Model(dir), "--policy", Policy(dir, output, Accuracy), "--out", outDir);
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}\n{r.All}");
        var check = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "decision.json")))!["checks"]![0]!;
        Assert.Equal(4, check["metrics"]!["correct"]!.GetValue<double>());
        Assert.Equal(4.0 / 6, check["metrics"]!["accuracy"]!.GetValue<double>(), 12);
    }

    [Fact]
    public void A_white_box_check_on_the_model_is_refused_at_plan_time_naming_the_output()
    {
        var dir = TestPaths.TempDir();
        Data(dir);
        var probe = "- { id: probe, type: representation, dataset: d, layers: [scores] }";
        var r = GateCli.Run("check", "--model", Model(dir), "--policy", Policy(dir, "", probe), "--out", Path.Combine(dir, "out"));
        Assert.True(r.ExitCode == 3, $"exit {r.ExitCode}\n{r.All}");
        Assert.True(r.All.Contains("output 'probabilities' is a sequence"), r.All);
        Assert.True(r.All.Contains("needs the built-in engine"), r.All);
        Assert.False(File.Exists(Path.Combine(dir, "out", "decision.json")));
    }

    [Fact]
    public void String_class_labels_are_refused_at_plan_time_naming_the_output()
    {
        var dir = TestPaths.TempDir();
        Data(dir);
        var r = GateCli.Run("check", "--model", Model(dir, stringLabels: true), "--policy", Policy(dir, "", Accuracy), "--out", Path.Combine(dir, "out"));
        Assert.True(r.ExitCode == 3, $"exit {r.ExitCode}\n{r.All}");
        Assert.True(r.All.Contains("output 'label' holds string class labels"), r.All);
    }

    /// <summary>ZipMap's probabilities under string class labels (skl2onnx with string classes): refused when the
    /// policy names that output, before anything runs (the runner would only find out sample by sample).</summary>
    [Fact]
    public void A_string_keyed_zipmap_output_is_refused_at_plan_time_naming_the_output()
    {
        var dir = TestPaths.TempDir();
        Data(dir);
        var outDir = Path.Combine(dir, "out");
        var r = GateCli.Run("check", "--model", Model(dir, stringLabels: true), "--policy", Policy(dir, "probabilities", Accuracy), "--out", outDir);
        Assert.True(r.ExitCode == 3, $"exit {r.ExitCode}\n{r.All}");
        Assert.True(r.All.Contains("output 'probabilities' holds string class labels (sequence(map(string,tensor(float32)))"), r.All);
        Assert.False(File.Exists(Path.Combine(outDir, "decision.json")));
    }
}
