using Gate.Core.Model;
using Gate.Core.Tensors;

namespace Gate.Tests.Engine;

/// <summary>Builds an in-memory one-node ONNX model (every input a graph input) for operator-level tests.</summary>
public static class SingleNodeModel
{
    public static OnnxModel Create(string opType, IEnumerable<NodeAttribute> attrs, IReadOnlyList<(string Name, DType Type)> inputs, int outputs, long opset = 18)
    {
        var outNames = Enumerable.Range(0, outputs).Select(i => $"y{i}").ToArray();
        var node = new Node
        {
            Index = 0, Name = "", OpType = opType, Domain = "",
            Inputs = inputs.Select(i => i.Name).ToArray(), Outputs = outNames,
            Attributes = attrs.ToDictionary(a => a.Name),
        };
        var graph = new Graph
        {
            Name = "g",
            Inputs = inputs.Select(i => new ValueInfo(i.Name, i.Type, null)).ToList(),
            Outputs = outNames.Select(n => new ValueInfo(n, DType.Undefined, null)).ToList(),
            Initializers = new Dictionary<string, Tensor>(),
            Nodes = [node],
            ValueInfos = new Dictionary<string, ValueInfo>(),
        };
        return new OnnxModel
        {
            SourcePath = $"{opType}.onnx", Sha256 = "", SizeBytes = 0, IrVersion = 9,
            Opsets = new Dictionary<string, long> { [""] = opset }, ProducerName = "test", ProducerVersion = "",
            Metadata = new Dictionary<string, string>(), Graph = graph, Bytes = [],
        };
    }

    public static NodeAttribute Int(string name, long v) => new() { Name = name, Kind = AttributeKind.Int, I = v };
    public static NodeAttribute Float(string name, float v) => new() { Name = name, Kind = AttributeKind.Float, F = v };
    public static NodeAttribute Ints(string name, params long[] v) => new() { Name = name, Kind = AttributeKind.Ints, Ints = v };
    public static NodeAttribute Str(string name, string v) => new() { Name = name, Kind = AttributeKind.String, S = v };
}
