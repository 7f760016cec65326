using Gate.Core.Tensors;

namespace Gate.Core.Model;

/// <summary>A dimension of a declared shape: a fixed size, or a symbolic/unknown one (e.g. batch "N").</summary>
public readonly record struct Dim(long? Value, string? Param)
{
    public override string ToString() => Value?.ToString() ?? Param ?? "?";
}

/// <summary>
/// A declared graph input/output/intermediate: name, element type and (possibly partial) shape. <see cref="Type"/> is
/// the full ONNX type where it is not a plain tensor (null: a tensor of <see cref="ElementType"/>).
/// </summary>
public sealed record ValueInfo(string Name, DType ElementType, Dim[]? Shape, OnnxType? Type = null)
{
    public string ShapeString => Shape is null ? "?" : "[" + string.Join(",", Shape.Select(d => d.ToString())) + "]";
    /// <summary>tensor, sequence, optional, map, sparse_tensor or unknown.</summary>
    public string Kind => Type?.Kind ?? "tensor";
}

/// <summary>
/// An ONNX TypeProto as far as Gate needs it: a tensor's element type, a map's key type, and the element of a
/// sequence or optional (or a map's value). Written like ONNX's type strings with Gate's element names, e.g.
/// sequence(map(string,tensor(float32))).
/// </summary>
public sealed record OnnxType(string Kind, DType ElementType = DType.Undefined, OnnxType? Element = null, DType KeyType = DType.Undefined)
{
    public static OnnxType Tensor(DType t) => new("tensor", t);

    /// <summary>A sequence of int64→float maps: ai.onnx.ml ZipMap's class probabilities with integer class labels, the
    /// one non-tensor output the checks read (as [samples, classes]).</summary>
    public bool IsClassProbabilityMaps =>
        Kind == "sequence" && Element is { Kind: "map", KeyType: DType.Int64, Element: { Kind: "tensor", ElementType: DType.Float32 } };

    public override string ToString() => Kind switch
    {
        "tensor" => $"tensor({ElementType.OnnxName()})",
        "map" => $"map({KeyType.OnnxName()},{Element})",
        "sequence" or "optional" => $"{Kind}({Element?.ToString() ?? "?"})",
        _ => Kind,
    };
}

public enum AttributeKind { Float = 1, Int = 2, String = 3, Tensor = 4, Graph = 5, Floats = 6, Ints = 7, Strings = 8, Tensors = 9, Graphs = 10, SparseTensor = 11, SparseTensors = 12, TypeProto = 13, TypeProtos = 14 }

public sealed class NodeAttribute
{
    public required string Name { get; init; }
    public required AttributeKind Kind { get; init; }
    public float F { get; init; }
    public long I { get; init; }
    public string S { get; init; } = "";
    public Tensor? T { get; init; }
    public Graph? G { get; init; }
    public float[] Floats { get; init; } = [];
    public long[] Ints { get; init; } = [];
    public string[] Strings { get; init; } = [];
}

/// <summary>One operator application. Inputs may contain "" for an omitted optional input.</summary>
public sealed class Node
{
    public required int Index { get; init; }
    public required string Name { get; init; }
    public required string OpType { get; init; }
    public required string Domain { get; init; }
    public required string[] Inputs { get; init; }
    public required string[] Outputs { get; init; }
    public required IReadOnlyDictionary<string, NodeAttribute> Attributes { get; init; }

    /// <summary>Name used in messages: the node's own name when it has one, else op type and index.</summary>
    public string DisplayName => string.IsNullOrEmpty(Name) ? $"{OpType}#{Index}" : $"{Name} ({OpType})";

    public NodeAttribute? Attr(string name) => Attributes.TryGetValue(name, out var a) ? a : null;
    public long GetInt(string name, long @default) => Attr(name)?.I ?? @default;
    /// <summary>An int attribute that ONNX uses as a flag (keepdims, ceil_mode, …): any non-zero value is true.</summary>
    public bool GetBool(string name, bool @default) => Attr(name) is { } a ? a.I != 0 : @default;
    public float GetFloat(string name, float @default) => Attr(name)?.F ?? @default;
    public string GetString(string name, string @default) => Attr(name)?.S ?? @default;
    public long[]? GetInts(string name) => Attr(name)?.Ints;
    public float[]? GetFloats(string name) => Attr(name)?.Floats;
}

/// <summary>
/// A graph in topological order. Graph inputs exclude initializers; <see cref="Initializers"/> holds the constant
/// weights. Every node input is produced by an earlier node, a graph input or an initializer (checked at load).
/// </summary>
public sealed class Graph
{
    public required string Name { get; init; }
    public required IReadOnlyList<ValueInfo> Inputs { get; init; }
    public required IReadOnlyList<ValueInfo> Outputs { get; init; }
    public required IReadOnlyDictionary<string, Tensor> Initializers { get; init; }
    /// <summary>The model's parameters: every element of its initializers (static inspection's limit, auto's size rule, budget scaling).</summary>
    public long ParameterCount => Initializers.Values.Sum(t => (long)t.Length);
    public required IReadOnlyList<Node> Nodes { get; init; }
    public required IReadOnlyDictionary<string, ValueInfo> ValueInfos { get; init; }
    /// <summary>Names of initializers stored outside the model file (relative paths inside the model's folder).</summary>
    public IReadOnlyDictionary<string, string> ExternalData { get; init; } = new Dictionary<string, string>();
    /// <summary>Names of sparse initializers (flagged by static inspection; not executable by the built-in engine).</summary>
    public IReadOnlyList<string> SparseInitializers { get; init; } = [];
}

/// <summary>A loaded, validated ONNX model. Produced only by <see cref="OnnxModelLoader"/>.</summary>
public sealed class OnnxModel
{
    public required string SourcePath { get; init; }
    public required string Sha256 { get; init; }
    public required long SizeBytes { get; init; }
    public required long IrVersion { get; init; }
    /// <summary>Operator set per domain; the default domain is "" (ai.onnx).</summary>
    public required IReadOnlyDictionary<string, long> Opsets { get; init; }
    public required string ProducerName { get; init; }
    public required string ProducerVersion { get; init; }
    public required IReadOnlyDictionary<string, string> Metadata { get; init; }
    public required Graph Graph { get; init; }
    /// <summary>The original bytes: the production runtime gets exactly what was hashed.</summary>
    public required byte[] Bytes { get; init; }
    /// <summary>Domains other than ai.onnx / ai.onnx.ml used by nodes: custom operators the gate cannot reason about.</summary>
    public IReadOnlyList<string> CustomDomains { get; init; } = [];
    public IReadOnlyList<string> LocalFunctions { get; init; } = [];

    public long DefaultOpset => Opsets.TryGetValue("", out var v) ? v : Opsets.TryGetValue("ai.onnx", out var w) ? w : 0;
    public string FileName => Path.GetFileName(SourcePath);
}
