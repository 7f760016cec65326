using Gate.Core.Model.Proto;
using Gate.Core.Tensors;
using Google.Protobuf;

namespace Gate.Tests.Runtime;

/// <summary>Tiny ONNX models built in code for binding tests (serialized with Gate's own ONNX protobuf subset).</summary>
internal static class OrtTestModels
{
    private static ValueInfoProto Value(string name, DType type, int[] shape)
    {
        var t = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = new TensorShapeProto() };
        foreach (var d in shape) t.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = t } };
    }

    private static byte[] Single(string opType, DType type, int[] shape, string domain = "")
    {
        var graph = new GraphProto { Name = "g" };
        graph.Node.Add(new NodeProto { OpType = opType, Domain = domain, Input = { "x" }, Output = { "y" }, Name = "n0" });
        graph.Input.Add(Value("x", type, shape));
        graph.Output.Add(Value("y", type, shape));
        var model = new ModelProto { IrVersion = 8, Graph = graph, ProducerName = "gate-tests" };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        return model.ToByteArray();
    }

    /// <summary>y = Identity(x) for one element type.</summary>
    public static byte[] Identity(DType type, int[] shape) => Single("Identity", type, shape);

    /// <summary>
    /// y = x + w with w (float32[4]) stored in an external file "weights.bin" beside the model, as large exporters do.
    /// Writes both files into <paramref name="dir"/> and returns the model path.
    /// </summary>
    public static string AddWithExternalWeights(string dir, float[] w)
    {
        var bin = new byte[w.Length * 4];
        Buffer.BlockCopy(w, 0, bin, 0, bin.Length);
        File.WriteAllBytes(Path.Combine(dir, "weights.bin"), bin);
        var init = new TensorProto { Name = "w", DataType = (int)DType.Float32, DataLocation = 1, Dims = { w.Length } };
        init.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = "weights.bin" });
        init.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = "0" });
        init.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = bin.Length.ToString() });
        var graph = new GraphProto { Name = "g", Initializer = { init } };
        graph.Node.Add(new NodeProto { OpType = "Add", Input = { "x", "w" }, Output = { "y" }, Name = "add" });
        graph.Input.Add(Value("x", DType.Float32, [w.Length]));
        graph.Output.Add(Value("y", DType.Float32, [w.Length]));
        var model = new ModelProto { IrVersion = 8, Graph = graph, ProducerName = "gate-tests" };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        var path = Path.Combine(dir, "external.onnx");
        File.WriteAllBytes(path, model.ToByteArray());
        return path;
    }

    /// <summary>A well-formed protobuf that ORT must reject: its only node is an operator no opset defines.</summary>
    public static byte[] UnknownOp() => Single("NoSuchOp", DType.Float32, [1]);
}
