using Gate.Core.Model.Proto;
using Google.Protobuf;

namespace Gate.Tests.Support;

/// <summary>Builds small ONNX models in memory (through our own generated protobuf classes) for tests.</summary>
internal sealed class OnnxBuilder
{
    public ModelProto Model { get; } = new() { IrVersion = 7, ProducerName = "gate-tests", Graph = new GraphProto { Name = "g" } };
    public GraphProto Graph => Model.Graph;

    public OnnxBuilder(long opset = 13) => Model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });

    public OnnxBuilder Input(string name, params long[] dims) { Graph.Input.Add(ValueInfo(name, dims)); return this; }
    public OnnxBuilder Output(string name, params long[] dims) { Graph.Output.Add(ValueInfo(name, dims)); return this; }

    public OnnxBuilder Node(string op, string[] inputs, string[] outputs, string? name = null, params AttributeProto[] attrs)
    {
        var n = new NodeProto { OpType = op, Name = name ?? "" };
        n.Input.AddRange(inputs);
        n.Output.AddRange(outputs);
        n.Attribute.AddRange(attrs);
        Graph.Node.Add(n);
        return this;
    }

    public OnnxBuilder Initializer(string name, long[] dims, float[] values)
    {
        var t = new TensorProto { Name = name, DataType = 1 };
        t.Dims.AddRange(dims);
        t.FloatData.AddRange(values);
        Graph.Initializer.Add(t);
        return this;
    }

    public OnnxBuilder ExternalInitializer(string name, long[] dims, string location)
    {
        var t = new TensorProto { Name = name, DataType = 1, DataLocation = 1 };
        t.Dims.AddRange(dims);
        t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
        Graph.Initializer.Add(t);
        return this;
    }

    public static AttributeProto Ints(string name, params long[] v) { var a = new AttributeProto { Name = name, Type = 7 }; a.Ints.AddRange(v); return a; }
    public static AttributeProto Int(string name, long v) => new() { Name = name, Type = 2, I = v };
    public static AttributeProto Float(string name, float v) => new() { Name = name, Type = 1, F = v };

    private static ValueInfoProto ValueInfo(string name, long[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d < 0 ? new TensorShapeProto.Types.Dimension { DimParam = "N" } : new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = 1, Shape = shape } } };
    }

    public byte[] Bytes() => Model.ToByteArray();
    public string Save(string path) { File.WriteAllBytes(path, Bytes()); return path; }
}
