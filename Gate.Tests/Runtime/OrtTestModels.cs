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

    /// <summary>A well-formed protobuf that ORT must reject: its only node is an operator no opset defines.</summary>
    public static byte[] UnknownOp() => Single("NoSuchOp", DType.Float32, [1]);
}
