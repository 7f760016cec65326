using Gate.Core.Model;
using Gate.Core.Model.Proto;
using Google.Protobuf;

namespace Gate.Tests.Verification;

/// <summary>Builds small ONNX models in memory (through the real loader) for bound and prover tests.</summary>
public sealed class OnnxBuilder
{
    private readonly GraphProto _g = new() { Name = "test" };
    private readonly int _opset;
    private int _next;
    public string Input { get; }

    public OnnxBuilder(int[] inputShape, int opset = 13, string input = "x")
    {
        _opset = opset;
        Input = input;
        _g.Input.Add(Value(input, inputShape, batchSymbolic: true));
    }

    private static ValueInfoProto Value(string name, int[] shape, bool batchSymbolic)
    {
        var ts = new TensorShapeProto();
        for (int i = 0; i < shape.Length; i++)
            ts.Dim.Add(i == 0 && batchSymbolic ? new TensorShapeProto.Types.Dimension { DimParam = "N" } : new TensorShapeProto.Types.Dimension { DimValue = shape[i] });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = 1, Shape = ts } } };
    }

    public string Init(float[] data, params int[] shape)
    {
        var name = $"w{_next++}";
        var t = new TensorProto { Name = name, DataType = 1 };
        t.Dims.AddRange(shape.Select(d => (long)d));
        t.FloatData.AddRange(data);
        _g.Initializer.Add(t);
        return name;
    }

    public string InitLong(long[] data, params int[] shape)
    {
        var name = $"w{_next++}";
        var t = new TensorProto { Name = name, DataType = 7 };
        t.Dims.AddRange(shape.Select(d => (long)d));
        t.Int64Data.AddRange(data);
        _g.Initializer.Add(t);
        return name;
    }

    public string Node(string op, string[] inputs, params (string name, object value)[] attrs)
    {
        var output = $"t{_next++}";
        var n = new NodeProto { OpType = op, Name = $"{op}_{_next}" };
        n.Input.AddRange(inputs);
        n.Output.Add(output);
        foreach (var (name, v) in attrs)
            n.Attribute.Add(v switch
            {
                float f => new AttributeProto { Name = name, Type = 1, F = f },
                int i => new AttributeProto { Name = name, Type = 2, I = i },
                long[] ints => Ints(name, ints),
                _ => throw new ArgumentException($"attribute {name}: unsupported value {v}"),
            });
        _g.Node.Add(n);
        return output;
    }

    private static AttributeProto Ints(string name, long[] v) { var a = new AttributeProto { Name = name, Type = 7 }; a.Ints.AddRange(v); return a; }

    /// <summary>Gemm with random weights (Glorot-like scale) and bias: x[1,k] → [1,n].</summary>
    public string Dense(string x, int k, int n, Random rng, double scale = 1)
    {
        var w = Enumerable.Range(0, n * k).Select(_ => (float)((rng.NextDouble() * 2 - 1) * scale * Math.Sqrt(6.0 / (k + n)))).ToArray();
        var b = Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() * 2 - 1) * 0.3)).ToArray();
        return Node("Gemm", [x, Init(w, n, k), Init(b, n)], ("transB", 1));
    }

    public OnnxModel Build(string output, int[] outputShape)
    {
        _g.Output.Add(Value(output, outputShape, batchSymbolic: true));
        var m = new ModelProto { IrVersion = 7, Graph = _g, ProducerName = "gate-tests" };
        m.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = _opset });
        return OnnxModelLoader.Parse(m.ToByteArray(), "in-memory.onnx");
    }

    public static byte[] Bytes(OnnxModel m) => m.Bytes;
}
