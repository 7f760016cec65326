using Gate.Core.Model;
using Gate.Core.Model.Proto;
using Gate.Core.Tensors;
using Google.Protobuf;

namespace Gate.Tests.Support;

/// <summary>
/// Builds small ONNX models in memory (through our own generated protobuf classes) for tests. Two styles on one
/// graph: explicit (<see cref="Input(string, long[])"/>, <see cref="Node(string, string[], string[], string?, AttributeProto[])"/>,
/// <see cref="Bytes"/>) for hand-made and malformed files, and networks with generated tensor names
/// (<see cref="OnnxBuilder(int[], long, string)"/>, <see cref="Init"/>, <see cref="Node(string, string[], ValueTuple{string, object}[])"/>,
/// <see cref="Dense"/>, <see cref="Build"/>) for bound and prover tests.
/// </summary>
internal sealed class OnnxBuilder
{
    private int _next;
    public ModelProto Model { get; } = new() { ProducerName = "gate-tests", Graph = new GraphProto { Name = "g" } };
    public GraphProto Graph => Model.Graph;

    public OnnxBuilder(long opset = 13, long irVersion = 7)
    {
        Model.IrVersion = irVersion;
        Model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
    }

    /// <summary>A network whose one float input <paramref name="input"/> has <paramref name="inputShape"/>, its first axis a symbolic batch.</summary>
    public OnnxBuilder(int[] inputShape, long opset = 13, string input = "x") : this(opset)
    {
        InputName = input;
        Input(input, Batched(inputShape));
    }

    /// <summary>The input given to <see cref="OnnxBuilder(int[], long, string)"/>.</summary>
    public string InputName { get; } = "";

    private static long[] Batched(int[] shape) => shape.Select((d, i) => i == 0 ? -1L : d).ToArray();

    /// <summary>A float input or output; a negative dimension is a symbolic one ("N").</summary>
    public OnnxBuilder Input(string name, params long[] dims) => Input(name, DType.Float32, dims);
    public OnnxBuilder Output(string name, params long[] dims) => Output(name, DType.Float32, dims);
    public OnnxBuilder Input(string name, DType type, params long[] dims) { Graph.Input.Add(ValueInfo(name, type, dims)); return this; }
    public OnnxBuilder Output(string name, DType type, params long[] dims) { Graph.Output.Add(ValueInfo(name, type, dims)); return this; }

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

    public OnnxBuilder ExternalInitializer(string name, long[] dims, string location, long? offset = null, long? length = null)
    {
        var t = new TensorProto { Name = name, DataType = 1, DataLocation = 1 };
        t.Dims.AddRange(dims);
        t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
        if (offset is { } o) t.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = o.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        if (length is { } l) t.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = l.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        Graph.Initializer.Add(t);
        return this;
    }

    /// <summary>A float initializer with a generated name, which it returns.</summary>
    public string Init(float[] data, params int[] shape)
    {
        var name = $"w{_next++}";
        Initializer(name, shape.Select(d => (long)d).ToArray(), data);
        return name;
    }

    /// <summary>An int64 initializer with a generated name, which it returns.</summary>
    public string InitLong(long[] data, params int[] shape)
    {
        var name = $"w{_next++}";
        var t = new TensorProto { Name = name, DataType = 7 };
        t.Dims.AddRange(shape.Select(d => (long)d));
        t.Int64Data.AddRange(data);
        Graph.Initializer.Add(t);
        return name;
    }

    /// <summary>A one-output node with a generated output name, which it returns; attributes as (name, float | int | long[]).</summary>
    public string Node(string op, string[] inputs, params (string name, object value)[] attrs)
    {
        var output = $"t{_next++}";
        Node(op, inputs, [output], $"{op}_{_next}", attrs.Select(a => a.value switch
        {
            float f => Float(a.name, f),
            int i => Int(a.name, i),
            long[] ints => Ints(a.name, ints),
            _ => throw new ArgumentException($"attribute {a.name}: unsupported value {a.value}"),
        }).ToArray());
        return output;
    }

    /// <summary>Gemm with random weights (Glorot-like scale) and bias: x[1,k] → [1,n].</summary>
    public string Dense(string x, int k, int n, Random rng, double scale = 1)
    {
        var w = Enumerable.Range(0, n * k).Select(_ => (float)((rng.NextDouble() * 2 - 1) * scale * Math.Sqrt(6.0 / (k + n)))).ToArray();
        var b = Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() * 2 - 1) * 0.3)).ToArray();
        return Node("Gemm", [x, Init(w, n, k), Init(b, n)], ("transB", 1));
    }

    /// <summary>Declares <paramref name="output"/> (first axis a symbolic batch) and loads the model through the real loader.</summary>
    public OnnxModel Build(string output, int[] outputShape)
    {
        Output(output, Batched(outputShape));
        return OnnxModelLoader.Parse(Bytes(), "in-memory.onnx");
    }

    public static AttributeProto Ints(string name, params long[] v) { var a = new AttributeProto { Name = name, Type = 7 }; a.Ints.AddRange(v); return a; }
    public static AttributeProto Int(string name, long v) => new() { Name = name, Type = 2, I = v };
    public static AttributeProto Float(string name, float v) => new() { Name = name, Type = 1, F = v };

    private static ValueInfoProto ValueInfo(string name, DType type, long[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d < 0 ? new TensorShapeProto.Types.Dimension { DimParam = "N" } : new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } } };
    }

    public byte[] Bytes() => Model.ToByteArray();
    public string Save(string path) { File.WriteAllBytes(path, Bytes()); return path; }
}
