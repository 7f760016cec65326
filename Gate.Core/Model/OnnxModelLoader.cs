using Gate.Core.IO;
using System.Security.Cryptography;
using Gate.Core.Model.Proto;
using Gate.Core.Tensors;
using Google.Protobuf;

namespace Gate.Core.Model;

/// <summary>Limits that bound what loading an untrusted model can cost.</summary>
public sealed record ModelLimits
{
    public long MaxFileBytes { get; init; } = 2L << 30;
    public long MaxTensorElements { get; init; } = 1L << 28;
    public long MaxDim { get; init; } = 1L << 28;
    public int MaxRank { get; init; } = 16;
    public int MaxNodes { get; init; } = 200_000;
    public int MaxSubgraphDepth { get; init; } = 8;
    public long MaxExternalBytes { get; init; } = 4L << 30;
    public static ModelLimits Default { get; } = new();
}

/// <summary>
/// Loads an ONNX model without trusting it: bounded sizes, acyclic graph, every input defined, external data
/// confined to the model's own folder. Every failure is a <see cref="GateInputException"/> naming the file and
/// the offending node or tensor.
/// </summary>
public static class OnnxModelLoader
{
    private static readonly HashSet<string> StandardDomains = ["", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training"];

    public static OnnxModel Load(string path, ModelLimits? limits = null)
    {
        limits ??= ModelLimits.Default;
        var full = Path.GetFullPath(path);
        return Parse(RegularFile.ReadAll(full, "model file", limits.MaxFileBytes, shownAs: path), full, limits);
    }

    public static OnnxModel Parse(byte[] bytes, string path, ModelLimits? limits = null)
    {
        limits ??= ModelLimits.Default;
        if (bytes.Length == 0) throw new GateInputException($"{path}: model file is empty");
        ModelProto mp;
        try
        {
            // Depth limit guards against deeply nested messages crafted to exhaust the stack.
            var cis = new CodedInputStream(bytes);
            mp = new ModelProto();
            mp.MergeFrom(cis);
            if (!cis.IsAtEnd) throw new GateInputException($"{path}: not a valid ONNX model (trailing bytes after the protobuf message)");
        }
        catch (InvalidProtocolBufferException e) { throw new GateInputException($"{path}: not a valid ONNX model (protobuf parse failed: {e.Message})"); }
        if (mp.Graph is null) throw new GateInputException($"{path}: not a valid ONNX model: no graph (is this an ONNX file?)");
        if (mp.IrVersion <= 0) throw new GateInputException($"{path}: not a valid ONNX model: ir_version is missing");
        if (mp.OpsetImport.Count == 0) throw new GateInputException($"{path}: model declares no opset_import");

        var opsets = new Dictionary<string, long>();
        foreach (var o in mp.OpsetImport) opsets[o.Domain == "ai.onnx" ? "" : o.Domain] = o.Version;
        string modelDir = Path.GetDirectoryName(Path.GetFullPath(path)) ?? "/";
        var ctx = new LoadContext(path, modelDir, limits);
        var graph = ConvertGraph(mp.Graph, ctx, depth: 0, outerScope: new HashSet<string>());
        var custom = graph.Nodes.Select(n => n.Domain).Where(d => !StandardDomains.Contains(d)).Distinct().OrderBy(d => d).ToList();
        return new OnnxModel
        {
            SourcePath = path,
            Sha256 = Convert.ToHexStringLower(SHA256.HashData(bytes)),
            SizeBytes = bytes.LongLength,
            IrVersion = mp.IrVersion,
            Opsets = opsets,
            ProducerName = mp.ProducerName,
            ProducerVersion = mp.ProducerVersion,
            Metadata = mp.MetadataProps.GroupBy(p => p.Key).ToDictionary(g => g.Key, g => g.Last().Value),
            Graph = graph,
            Bytes = bytes,
            CustomDomains = custom,
            LocalFunctions = mp.Functions.Select(f => $"{f.Domain}.{f.Name}").ToList(),
        };
    }

    private sealed record LoadContext(string Path, string ModelDir, ModelLimits Limits)
    {
        public long ExternalBytes;
    }

    private static Graph ConvertGraph(GraphProto gp, LoadContext ctx, int depth, HashSet<string> outerScope)
    {
        if (depth > ctx.Limits.MaxSubgraphDepth) throw new GateInputException($"{ctx.Path}: subgraphs nested deeper than {ctx.Limits.MaxSubgraphDepth}");
        if (gp.Node.Count > ctx.Limits.MaxNodes) throw new GateInputException($"{ctx.Path}: graph has {gp.Node.Count} nodes (limit {ctx.Limits.MaxNodes})");
        string where = depth == 0 ? ctx.Path : $"{ctx.Path}: subgraph '{gp.Name}'";

        var initializers = new Dictionary<string, Tensor>();
        var external = new Dictionary<string, string>();
        foreach (var tp in gp.Initializer)
        {
            if (string.IsNullOrEmpty(tp.Name)) throw new GateInputException($"{where}: an initializer has no name");
            if (!initializers.TryAdd(tp.Name, TensorProtoCodec.ToTensor(tp, where, ctx.Limits, t => LoadExternal(t, ctx))))
                throw new GateInputException($"{where}: initializer '{tp.Name}' is defined twice");
            if (tp.DataLocation == 1) external[tp.Name] = tp.ExternalData.FirstOrDefault(e => e.Key == "location")?.Value ?? "";
        }
        var sparse = gp.SparseInitializer.Select(s => s.Values?.Name ?? "").ToList();

        var inputs = new List<ValueInfo>();
        var defined = new HashSet<string>(outerScope);
        foreach (var vi in gp.Input)
        {
            if (string.IsNullOrEmpty(vi.Name)) throw new GateInputException($"{where}: a graph input has no name");
            if (!defined.Add(vi.Name) && !outerScope.Contains(vi.Name)) throw new GateInputException($"{where}: graph input '{vi.Name}' is declared twice");
            if (!initializers.ContainsKey(vi.Name)) inputs.Add(ConvertValueInfo(vi, where, ctx.Limits));
        }
        foreach (var name in initializers.Keys) defined.Add(name);
        foreach (var s in sparse) defined.Add(s);

        // Topological sort (Kahn). Producers are indexed first so that we can report undefined inputs by name.
        var producer = new Dictionary<string, int>();
        for (int i = 0; i < gp.Node.Count; i++)
            foreach (var o in gp.Node[i].Output)
            {
                if (o.Length == 0) continue;
                if (defined.Contains(o) && !outerScope.Contains(o)) throw new GateInputException($"{where}: node {NodeLabel(gp.Node[i], i)} writes '{o}', which is already a graph input or initializer");
                if (!producer.TryAdd(o, i)) throw new GateInputException($"{where}: tensor '{o}' is produced by two nodes ({NodeLabel(gp.Node[producer[o]], producer[o])} and {NodeLabel(gp.Node[i], i)})");
            }
        var indegree = new int[gp.Node.Count];
        var consumers = new List<int>[gp.Node.Count];
        for (int i = 0; i < gp.Node.Count; i++) consumers[i] = [];
        for (int i = 0; i < gp.Node.Count; i++)
        {
            foreach (var inp in NodeReads(gp.Node[i]))
            {
                if (inp.Length == 0) continue;
                if (producer.TryGetValue(inp, out var p)) { indegree[i]++; consumers[p].Add(i); }
                else if (!defined.Contains(inp))
                    throw new GateInputException($"{where}: node {NodeLabel(gp.Node[i], i)} reads '{inp}', which no node, graph input or initializer defines");
            }
        }
        var ready = new Queue<int>(Enumerable.Range(0, gp.Node.Count).Where(i => indegree[i] == 0));
        var order = new List<int>(gp.Node.Count);
        while (ready.Count > 0)
        {
            int i = ready.Dequeue();
            order.Add(i);
            foreach (var c in consumers[i]) if (--indegree[c] == 0) ready.Enqueue(c);
        }
        if (order.Count != gp.Node.Count)
        {
            var stuck = Enumerable.Range(0, gp.Node.Count).Where(i => indegree[i] > 0).Take(5).Select(i => NodeLabel(gp.Node[i], i));
            throw new GateInputException($"{where}: graph has a cycle through node(s) {string.Join(", ", stuck)}");
        }

        var scopeForSubgraphs = new HashSet<string>(defined);
        foreach (var k in producer.Keys) scopeForSubgraphs.Add(k);
        var nodes = new List<Node>(order.Count);
        foreach (var i in order)
        {
            var np = gp.Node[i];
            if (string.IsNullOrEmpty(np.OpType)) throw new GateInputException($"{where}: node #{i} has no op_type");
            var attrs = new Dictionary<string, NodeAttribute>();
            foreach (var a in np.Attribute)
                if (!attrs.TryAdd(a.Name, ConvertAttribute(a, $"{where}: node {NodeLabel(np, i)}", ctx, depth, scopeForSubgraphs)))
                    throw new GateInputException($"{where}: node {NodeLabel(np, i)} has attribute '{a.Name}' twice");
            nodes.Add(new Node
            {
                Index = nodes.Count,
                Name = np.Name,
                OpType = np.OpType,
                Domain = np.Domain == "ai.onnx" ? "" : np.Domain,
                Inputs = np.Input.ToArray(),
                Outputs = np.Output.ToArray(),
                Attributes = attrs,
            });
        }

        var available = new HashSet<string>(defined);
        foreach (var k in producer.Keys) available.Add(k);
        var outputs = new List<ValueInfo>();
        foreach (var vi in gp.Output)
        {
            if (!available.Contains(vi.Name)) throw new GateInputException($"{where}: graph output '{vi.Name}' is not produced by any node");
            outputs.Add(ConvertValueInfo(vi, where, ctx.Limits));
        }
        var valueInfos = new Dictionary<string, ValueInfo>();
        foreach (var vi in gp.ValueInfo) if (!string.IsNullOrEmpty(vi.Name)) valueInfos[vi.Name] = ConvertValueInfo(vi, where, ctx.Limits);

        return new Graph
        {
            Name = gp.Name,
            Inputs = inputs,
            Outputs = outputs,
            Initializers = initializers,
            Nodes = nodes,
            ValueInfos = valueInfos,
            ExternalData = external,
            SparseInitializers = sparse,
        };
    }

    /// <summary>Inputs a node reads, including names its subgraphs capture from the enclosing scope.</summary>
    private static IEnumerable<string> NodeReads(NodeProto n)
    {
        foreach (var i in n.Input) yield return i;
        // Outer-scope references of subgraphs are resolved when the subgraph is converted; ordering of the
        // outer graph only needs direct inputs because ONNX requires captured values to be defined earlier.
    }

    private static string NodeLabel(NodeProto n, int i) => string.IsNullOrEmpty(n.Name) ? $"#{i} ({n.OpType})" : $"'{n.Name}' ({n.OpType})";

    private static ValueInfo ConvertValueInfo(ValueInfoProto vi, string where, ModelLimits limits)
    {
        var tt = vi.Type?.TensorType;
        if (tt is null) return new ValueInfo(vi.Name, DType.Undefined, null, ConvertType(vi.Type, 0));
        Dim[]? shape = null;
        if (tt.Shape is not null)
        {
            if (tt.Shape.Dim.Count > limits.MaxRank) throw new GateInputException($"{where}: '{vi.Name}' declares rank {tt.Shape.Dim.Count} (limit {limits.MaxRank})");
            shape = new Dim[tt.Shape.Dim.Count];
            for (int i = 0; i < shape.Length; i++)
            {
                var d = tt.Shape.Dim[i];
                if (d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue)
                {
                    if (d.DimValue < 0 || d.DimValue > limits.MaxDim)
                        throw new GateInputException($"{where}: '{vi.Name}' declares dimension {d.DimValue} at axis {i} (allowed 0..{limits.MaxDim})");
                    shape[i] = new Dim(d.DimValue, null);
                }
                else shape[i] = new Dim(null, d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimParam ? d.DimParam : null);
            }
        }
        return new ValueInfo(vi.Name, (DType)tt.ElemType, shape);
    }

    /// <summary>A non-tensor type; nesting is bounded like subgraphs, so a hostile model cannot recurse without end.</summary>
    private static OnnxType ConvertType(TypeProto? t, int depth)
    {
        if (t is null || depth > 8) return new OnnxType("unknown");
        return t.ValueCase switch
        {
            TypeProto.ValueOneofCase.TensorType => OnnxType.Tensor((DType)t.TensorType.ElemType),
            TypeProto.ValueOneofCase.SequenceType => new OnnxType("sequence", Element: ConvertType(t.SequenceType.ElemType, depth + 1)),
            TypeProto.ValueOneofCase.OptionalType => new OnnxType("optional", Element: ConvertType(t.OptionalType.ElemType, depth + 1)),
            TypeProto.ValueOneofCase.MapType => new OnnxType("map", Element: ConvertType(t.MapType.ValueType, depth + 1), KeyType: (DType)t.MapType.KeyType),
            TypeProto.ValueOneofCase.SparseTensorType => new OnnxType("sparse_tensor"),
            _ => new OnnxType("unknown"),
        };
    }

    private static NodeAttribute ConvertAttribute(AttributeProto a, string where, LoadContext ctx, int depth, HashSet<string> scope)
    {
        var kind = (AttributeKind)(a.Type != 0 ? a.Type : InferAttributeType(a));
        return new NodeAttribute
        {
            Name = a.Name,
            Kind = kind,
            F = a.F,
            I = a.I,
            S = a.S.ToStringUtf8(),
            T = a.T is not null && kind == AttributeKind.Tensor ? TensorProtoCodec.ToTensor(a.T, where, ctx.Limits, t => LoadExternal(t, ctx)) : null,
            G = a.G is not null && kind == AttributeKind.Graph ? ConvertGraph(a.G, ctx, depth + 1, scope) : null,
            Floats = a.Floats.ToArray(),
            Ints = a.Ints.ToArray(),
            Strings = a.Strings.Select(s => s.ToStringUtf8()).ToArray(),
        };
    }

    // Old IR versions may omit the attribute type; infer it from which field is set.
    private static int InferAttributeType(AttributeProto a) =>
        a.Ints.Count > 0 ? 7 : a.Floats.Count > 0 ? 6 : a.Strings.Count > 0 ? 8 : a.T is not null ? 4 : a.G is not null ? 5 :
        !a.S.IsEmpty ? 3 : a.I != 0 ? 2 : 1;

    /// <summary>
    /// Reads an external tensor file, allowed only inside the model's own folder: absolute paths, ".." segments
    /// and symbolic links that resolve outside the folder are refused before anything is opened.
    /// </summary>
    private static byte[] LoadExternal(TensorProto tp, LoadContext ctx)
    {
        string? location = null; long offset = 0; long length = -1;
        foreach (var e in tp.ExternalData)
        {
            switch (e.Key)
            {
                case "location": location = e.Value; break;
                case "offset": if (!long.TryParse(e.Value, out offset) || offset < 0) throw new GateInputException($"{ctx.Path}: tensor '{tp.Name}': bad external data offset '{e.Value}'"); break;
                case "length": if (!long.TryParse(e.Value, out length) || length < 0) throw new GateInputException($"{ctx.Path}: tensor '{tp.Name}': bad external data length '{e.Value}'"); break;
            }
        }
        if (string.IsNullOrEmpty(location)) throw new GateInputException($"{ctx.Path}: tensor '{tp.Name}' uses external data without a location");
        if (Path.IsPathRooted(location) || location.StartsWith('/') || location.StartsWith('\\') || (location.Length > 1 && location[1] == ':'))
            throw new GateInputException($"{ctx.Path}: tensor '{tp.Name}': external data location '{location}' is an absolute path; only files inside the model's folder are allowed");
        var segments = location.Split('/', '\\');
        if (segments.Any(s => s == ".."))
            throw new GateInputException($"{ctx.Path}: tensor '{tp.Name}': external data location '{location}' leaves the model's folder ('..' is not allowed)");
        var dir = Path.GetFullPath(ctx.ModelDir);
        var candidate = Path.GetFullPath(Path.Combine(dir, location));
        var resolved = ResolveLinks(candidate);
        var realDir = ResolveLinks(dir);
        if (!resolved.StartsWith(realDir.TrimEnd('/') + "/", StringComparison.Ordinal))
            throw new GateInputException($"{ctx.Path}: tensor '{tp.Name}': external data location '{location}' resolves outside the model's folder (symbolic link?)");
        // A FIFO, device or directory is refused before it is opened (a FIFO would block, /dev/zero never ends).
        string what = $"tensor '{tp.Name}': external data file '{location}'";
        using var fs = RegularFile.OpenRead(resolved, what, shownAs: ctx.Path);
        // Read exactly what the tensor's shape and type need: a length claimed in the model is checked against that,
        // never trusted to size an allocation.
        var type = (DType)tp.DataType;
        long count = tp.Dims.Aggregate(1L, (a, d) => a * d); // dims were bounded by the caller
        long needed = TensorProtoCodec.RawByteLength(type, count)
            ?? throw new GateInputException($"{ctx.Path}: tensor '{tp.Name}' has element type {type.OnnxName()}, which cannot be stored as external data");
        string shape = $"[{string.Join(",", tp.Dims)}] of {type.OnnxName()}";
        if (length >= 0 && length != needed)
            throw new GateInputException($"{ctx.Path}: {what}: length {length} does not match the {needed} bytes that shape {shape} needs");
        if (needed > Array.MaxLength) throw new GateInputException($"{ctx.Path}: tensor '{tp.Name}' needs {needed} bytes; one tensor may have at most {Array.MaxLength}");
        if (offset > fs.Length || needed > fs.Length - offset)
            throw new GateInputException($"{ctx.Path}: {what}: bytes {offset}..{offset + needed} (shape {shape}) lie beyond the end of the file ({fs.Length} bytes)");
        ctx.ExternalBytes += needed;
        if (ctx.ExternalBytes > ctx.Limits.MaxExternalBytes) throw new GateInputException($"{ctx.Path}: external data exceeds {ctx.Limits.MaxExternalBytes} bytes");
        return RegularFile.ReadExactly(fs, offset, (int)needed, what, ctx.Path);
    }

    /// <summary>Resolves symbolic links in every component of a path.</summary>
    private static string ResolveLinks(string path)
    {
        var full = Path.GetFullPath(path);
        var parts = full.Split('/', StringSplitOptions.RemoveEmptyEntries);
        string current = "/";
        int hops = 0;
        for (int i = 0; i < parts.Length; i++)
        {
            var next = Path.Combine(current, parts[i]);
            var fi = new FileInfo(next);
            if (fi.Exists || Directory.Exists(next))
            {
                FileSystemInfo fsi = fi.Exists ? fi : new DirectoryInfo(next);
                if (fsi.LinkTarget is not null)
                {
                    if (++hops > 40) throw new GateInputException($"{path}: too many symbolic links");
                    var target = fsi.LinkTarget;
                    var resolved = Path.GetFullPath(Path.IsPathRooted(target) ? target : Path.Combine(current, target));
                    var rest = string.Join('/', parts.Skip(i + 1));
                    return ResolveLinks(rest.Length > 0 ? Path.Combine(resolved, rest) : resolved);
                }
            }
            current = next;
        }
        return current;
    }
}
