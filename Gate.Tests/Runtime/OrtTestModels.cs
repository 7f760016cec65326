using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Runtime;

/// <summary>Tiny ONNX models built in code for binding tests (IR 8, opset 17, through <see cref="OnnxBuilder"/>).</summary>
internal static class OrtTestModels
{
    private static OnnxBuilder Builder() => new(opset: 17, irVersion: 8);

    private static byte[] Single(string opType, DType type, int[] shape)
    {
        var dims = shape.Select(d => (long)d).ToArray();
        return Builder().Input("x", type, dims).Output("y", type, dims).Node(opType, ["x"], ["y"], "n0").Bytes();
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
        return Builder().ExternalInitializer("w", [w.Length], "weights.bin", offset: 0, length: bin.Length)
            .Node("Add", ["x", "w"], ["y"], "add")
            .Input("x", w.Length).Output("y", w.Length)
            .Save(Path.Combine(dir, "external.onnx"));
    }

    /// <summary>A well-formed protobuf that ORT must reject: its only node is an operator no opset defines.</summary>
    public static byte[] UnknownOp() => Single("NoSuchOp", DType.Float32, [1]);
}
