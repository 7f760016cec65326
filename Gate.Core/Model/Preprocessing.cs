using System.Globalization;
using Gate.Core.Model.Proto;
using Google.Protobuf;

namespace Gate.Core.Model;

/// <summary>
/// Image preprocessing declared on a model input (<c>spec.model.inputs.&lt;name&gt;.preprocess</c>). It splits in
/// two so that the threat model stays in pixel space:
/// <list type="bullet">
/// <item><b>Geometry</b> (<see cref="Resize"/>, <see cref="CenterCrop"/>) is applied when image files are decoded
/// (<see cref="Tensors.ImageDataset"/>): it decides which pixel grid exists at all, so every sample of a batch has
/// one shape. The decoded pixels, RGB in [0, 1] (byte / 255, as torchvision's ToTensor), are the dataset, the
/// digest recorded in the decision, and what an adversary perturbs: ε = 8/255 is eight levels of one 8-bit pixel.</item>
/// <item><b>Normalisation</b> (<see cref="Channels"/>, <see cref="Scale"/>, <see cref="Mean"/>, <see cref="Std"/>)
/// becomes ONNX nodes prepended to the model graph (<see cref="Compose"/>): the model as judged takes pixels,
/// both runtimes execute the normalisation, and the engine differentiates through it, so gradient attacks act on
/// pixels. It applies to every dataset of the input, .npy included.</item>
/// </list>
/// </summary>
public sealed record Preprocessing
{
    /// <summary>[size] resizes the shorter side to size (aspect kept, torchvision Resize(int)); [h, w] resizes exactly. Bilinear.</summary>
    public int[]? Resize { get; init; }
    /// <summary>[h, w] cut from the centre after resizing (torchvision CenterCrop offsets).</summary>
    public int[]? CenterCrop { get; init; }
    /// <summary>"rgb" (as decoded) or "bgr": the channel order the network expects.</summary>
    public string Channels { get; init; } = "rgb";
    /// <summary>Multiplies the [0, 1] pixels first (255 for networks trained on 0..255 values).</summary>
    public double Scale { get; init; } = 1;
    /// <summary>Per channel, in the network's channel order, after scaling: (x·scale − mean) / std.</summary>
    public double[]? Mean { get; init; }
    public double[]? Std { get; init; }

    /// <summary>What decoding applies (resize, centre crop); the rest happens in the graph.</summary>
    public Tensors.ImageGeometry Geometry => new(Resize, CenterCrop);

    /// <summary>Whether anything happens inside the graph (otherwise <see cref="Compose"/> returns the model unchanged).</summary>
    public bool ChangesGraph => Channels == "bgr" || Scale != 1 || Mean is not null || Std is not null;

    /// <summary>One line for reviews and plans: "pixels in [0,1] → bgr → ×255 → (x − [..]) / [..]".</summary>
    public string Describe()
    {
        var parts = new List<string>();
        if (Resize is { } r) parts.Add(r.Length == 1 ? $"resize shorter side to {r[0]}" : $"resize to {r[0]}×{r[1]}");
        if (CenterCrop is { } c) parts.Add($"centre crop {c[0]}×{c[1]}");
        parts.Add("RGB pixels in [0, 1]");
        if (Channels == "bgr") parts.Add("reorder to BGR");
        if (Scale != 1) parts.Add($"× {N(Scale)}");
        if (Mean is not null || Std is not null)
            parts.Add($"(x − [{string.Join(", ", (Mean ?? [0]).Select(N))}]) / [{string.Join(", ", (Std ?? [1]).Select(N))}]");
        return string.Join(" → ", parts);
    }

    private static string N(double v) => v.ToString("G6", CultureInfo.InvariantCulture);

    /// <summary>
    /// The model as judged: <paramref name="model"/> with the normalisation of each declared input prepended as
    /// Gather (channel order) / Mul / Sub / Div nodes on axis 1 (NCHW). The graph input keeps its name and now takes
    /// pixels. <see cref="OnnxModel.Sha256"/> stays the digest of the file (what the policy and decision name);
    /// <see cref="OnnxModel.Bytes"/> are the composed model both runtimes load.
    /// </summary>
    public static OnnxModel Compose(OnnxModel model, IEnumerable<(string Input, Preprocessing Prep)> inputs)
    {
        var list = inputs.Where(i => i.Prep.ChangesGraph).ToList();
        if (list.Count == 0) return model;
        var proto = new ModelProto();
        proto.MergeFrom(new CodedInputStream(model.Bytes));
        var g = proto.Graph;
        var prepended = new List<NodeProto>();
        foreach (var (input, prep) in list)
        {
            string prefix = $"gate.preprocess.{input}";
            string Fresh(string what) => $"{prefix}.{what}";
            // Every consumer of the pixel input now reads the normalised tensor instead.
            string normalised = Fresh("out");
            foreach (var node in g.Node)
                for (int i = 0; i < node.Input.Count; i++)
                    if (node.Input[i] == input) node.Input[i] = normalised;
            for (int i = 0; i < g.Output.Count; i++)
                if (g.Output[i].Name == input)
                    throw new GateInputException($"{model.FileName}: input '{input}' is also a graph output; preprocessing cannot be composed with it");

            string current = input;
            var steps = new List<(string Op, TensorProto? Constant, AttributeProto? Attr)>();
            if (prep.Channels == "bgr") steps.Add(("Gather", Int64s(Fresh("bgr"), [2, 1, 0]), new AttributeProto { Name = "axis", Type = 2, I = 1 }));
            if (prep.Scale != 1) steps.Add(("Mul", Floats(Fresh("scale"), [prep.Scale], scalar: true), null));
            if (prep.Mean is { } mean) steps.Add(("Sub", Floats(Fresh("mean"), mean, scalar: false), null));
            if (prep.Std is { } std) steps.Add(("Div", Floats(Fresh("std"), std, scalar: false), null));
            for (int s = 0; s < steps.Count; s++)
            {
                var (op, constant, attr) = steps[s];
                string output = s == steps.Count - 1 ? normalised : Fresh($"{s}.{op.ToLowerInvariant()}");
                var node = new NodeProto { Name = Fresh($"{s}.{op}"), OpType = op };
                node.Input.Add(current);
                if (constant is not null) { node.Input.Add(constant.Name); g.Initializer.Add(constant); }
                node.Output.Add(output);
                if (attr is not null) node.Attribute.Add(attr);
                prepended.Add(node);
                current = output;
            }
        }
        var nodes = prepended.Concat(g.Node.Select(n => n)).ToList();
        g.Node.Clear();
        g.Node.AddRange(nodes);
        var composed = OnnxModelLoader.Parse(proto.ToByteArray(), model.SourcePath);
        return new OnnxModel
        {
            SourcePath = model.SourcePath, Sha256 = model.Sha256, SizeBytes = model.SizeBytes, IrVersion = composed.IrVersion,
            Opsets = composed.Opsets, ProducerName = composed.ProducerName, ProducerVersion = composed.ProducerVersion,
            Metadata = composed.Metadata, Graph = composed.Graph, Bytes = composed.Bytes,
            CustomDomains = composed.CustomDomains, LocalFunctions = composed.LocalFunctions,
        };
    }

    /// <summary>A float32 constant broadcasting along axis 1 of NCHW ([1, C, 1, 1]), or a scalar.</summary>
    private static TensorProto Floats(string name, double[] values, bool scalar)
    {
        var t = new TensorProto { Name = name, DataType = 1 };
        if (!scalar) t.Dims.AddRange([1, values.Length, 1, 1]);
        t.FloatData.AddRange(values.Select(v => (float)v));
        return t;
    }

    private static TensorProto Int64s(string name, long[] values)
    {
        var t = new TensorProto { Name = name, DataType = 7 };
        t.Dims.Add(values.Length);
        t.Int64Data.AddRange(values);
        return t;
    }
}
