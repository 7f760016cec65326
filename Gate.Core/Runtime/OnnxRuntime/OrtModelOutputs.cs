using Gate.Core.Model;
using Gate.Core.Model.Proto;
using Google.Protobuf;

namespace Gate.Core.Runtime.OnnxRuntime;

/// <summary>
/// ORT can only return graph outputs. To read an intermediate tensor (gate run --capture, layer probes) the model is
/// re-serialized with that tensor added as an extra graph output; nothing else in the model changes (unknown
/// protobuf fields are preserved by the parser and written back).
/// </summary>
internal static class OrtModelOutputs
{
    public static byte[] WithExtraOutputs(OnnxModel model, IReadOnlyCollection<string> names)
    {
        var produced = model.Graph.Nodes.SelectMany(n => n.Outputs).Where(o => o.Length > 0)
            .Concat(model.Graph.Inputs.Select(i => i.Name)).Concat(model.Graph.Initializers.Keys).ToHashSet(StringComparer.Ordinal);
        foreach (var name in names)
            if (!produced.Contains(name))
                throw new GateInputException($"{model.FileName}: no tensor named '{name}' in the graph (capture names are node output names, e.g. " +
                                             $"{string.Join(", ", model.Graph.Nodes.Take(3).SelectMany(n => n.Outputs).Select(o => $"'{o}'"))})");

        var proto = new ModelProto();
        proto.MergeFrom(new CodedInputStream(model.Bytes));
        var existing = proto.Graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var name in names)
        {
            if (!existing.Add(name)) continue;
            // Reuse the declared type where the exporter recorded one; otherwise ORT infers it.
            var declared = proto.Graph.ValueInfo.FirstOrDefault(v => v.Name == name);
            proto.Graph.Output.Add(declared?.Clone() ?? new ValueInfoProto { Name = name });
        }
        return proto.ToByteArray();
    }
}
